// Diagnostic: in a heap snapshot, the nodes whose type:name matches a regex, grouped by what holds
// them (the holder's constructor name and the edge name), with count and self size.
// node bench/experiments/snapshot-owners.mjs file.heapsnapshot 'array:\(object properties\)' [--per=N]
import { readFileSync } from "node:fs";

const [file, pattern] = process.argv.slice(2);
const per = Number(process.argv.find((a) => a.startsWith("--per="))?.slice(6) ?? 1);
const re = new RegExp(pattern);
const snap = JSON.parse(readFileSync(file, "utf8"));
const {
  node_fields: nf,
  node_types: [ntypes],
  edge_fields: ef,
  edge_types: [etypes],
} = snap.snapshot.meta;
const NF = nf.length;
const EF = ef.length;
const [iT, iN, iS, iE] = ["type", "name", "self_size", "edge_count"].map((f) => nf.indexOf(f));
const [eT, eN, eTo] = ["type", "name_or_index", "to_node"].map((f) => ef.indexOf(f));
const nodes = snap.nodes;
const edges = snap.edges;
const S = snap.strings;
const label = (i) => `${ntypes[nodes[i + iT]]}:${S[nodes[i + iN]]}`.slice(0, 70);
const groups = new Map();
let e = 0;
for (let i = 0; i < nodes.length; i += NF) {
  const count = nodes[i + iE];
  for (let k = 0; k < count; k++, e += EF) {
    const to = edges[e + eTo];
    if (!re.test(label(to))) continue;
    const et = etypes[edges[e + eT]];
    if (et === "weak") continue;
    const name = et === "element" || et === "hidden" ? `[${et}]` : S[edges[e + eN]];
    const key = `${label(i)} --${name}--> ${label(to)}`;
    const g = groups.get(key) ?? { count: 0, size: 0 };
    g.count++;
    g.size += nodes[to + iS];
    groups.set(key, g);
  }
}
const rows = [...groups].sort((a, b) => b[1].size - a[1].size).slice(0, 40);
for (const [k, g] of rows) console.log(`${(g.size / per).toFixed(1).padStart(9)} ${(g.count / per).toFixed(2).padStart(7)}  ${k}`);
