// Diagnostic: a heap snapshot's objects grouped by type and constructor name, with count and self
// size; given two snapshots, the difference (per connection with --per=N), largest first.
// node bench/experiments/snapshot-summary.mjs a.heapsnapshot [b.heapsnapshot] [--per=N] [--top=60]
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith("--"));
const per = Number(args.find((a) => a.startsWith("--per="))?.slice(6) ?? 1);
const top = Number(args.find((a) => a.startsWith("--top="))?.slice(6) ?? 60);
function summarize(file) {
  const snap = JSON.parse(readFileSync(file, "utf8"));
  const {
    node_fields: fields,
    node_types: [types],
  } = snap.snapshot.meta;
  const F = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const groups = new Map();
  const nodes = snap.nodes;
  for (let i = 0; i < nodes.length; i += F) {
    const type = types[nodes[i + iType]];
    let name = type === "string" || type === "concatenated string" || type === "sliced string" ? "(string)" : snap.strings[nodes[i + iName]];
    if (type === "code" || type === "hidden") name = name.slice(0, 40);
    const key = `${type}:${name.slice(0, 80)}`;
    const g = groups.get(key) ?? { count: 0, size: 0 };
    g.count++;
    g.size += nodes[i + iSize];
    groups.set(key, g);
  }
  return groups;
}
const a = summarize(files[0]);
const b = files[1] ? summarize(files[1]) : new Map();
const keys = new Set([...a.keys(), ...b.keys()]);
const rows = [...keys].map((k) => {
  const x = a.get(k) ?? { count: 0, size: 0 };
  const y = b.get(k) ?? { count: 0, size: 0 };
  return files[1] ? { k, count: (y.count - x.count) / per, size: (y.size - x.size) / per } : { k, count: x.count / per, size: x.size / per };
});
rows.sort((p, q) => Math.abs(q.size) - Math.abs(p.size));
let total = 0;
for (const r of rows) total += r.size;
console.log(`total ${total.toFixed(0)} bytes${per > 1 ? " per connection" : ""}`);
for (const r of rows.slice(0, top)) console.log(`${r.size.toFixed(1).padStart(10)} ${r.count.toFixed(2).padStart(9)}  ${r.k}`);
