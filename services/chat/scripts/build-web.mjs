// Bundles the web client (and socket.io-client with it) into dist/public: the page needs no CDN,
// so it works offline and inside a cluster.
import { build } from "esbuild";
import { cp, mkdir, rm } from "node:fs/promises";

const out = new URL("../dist/public/", import.meta.url);
await mkdir(out, { recursive: true });
// No source map: whatever is in dist/public is served, and a map would hand out the source.
await rm(new URL("app.js.map", out), { force: true });
await build({
  entryPoints: [new URL("../web/main.ts", import.meta.url).pathname],
  outfile: new URL("app.js", out).pathname,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  logLevel: "warning",
});
for (const file of ["index.html", "style.css"]) await cp(new URL(`../web/${file}`, import.meta.url), new URL(file, out));
