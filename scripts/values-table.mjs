#!/usr/bin/env node
// Regenerates the chart's values table in docs/deploy.md from charts/chat/values.yaml (its
// "# --" comments and defaults). `--check` fails when the table is out of date or a value is
// undocumented (scripts/check-chart.mjs runs the same check).
import { readFileSync, writeFileSync } from "node:fs";
import { docsPath, docsWithTable, documentedValues } from "./lib/values-table.mjs";

const { rows, undocumented } = documentedValues();
if (undocumented.length) {
  console.error(`values-table: values without a "# --" comment in charts/chat/values.yaml: ${undocumented.join(", ")}`);
  process.exit(1);
}
const current = readFileSync(docsPath, "utf8");
const next = docsWithTable(current);
if (process.argv.includes("--check")) {
  if (next !== current) {
    console.error("values-table: the table in docs/deploy.md is out of date: run node scripts/values-table.mjs");
    process.exit(1);
  }
  console.log(`values-table: docs/deploy.md lists all ${rows.length} values`);
} else {
  writeFileSync(docsPath, next);
  console.log(`values-table: wrote ${rows.length} rows into docs/deploy.md`);
}
