import { Counter, type Registry } from "prom-client";

/**
 * A counter read from plain numbers at scrape time: the hot path adds to `counts` (a field per
 * label value, or `total` without a label) and never calls prom-client.
 */
export function tally(registry: Registry, name: string, help: string, label: string | undefined, counts: Record<string, number>): void {
  let reported = { ...counts };
  new Counter({
    name,
    help,
    labelNames: label ? [label] : [],
    registers: [registry],
    collect() {
      for (const [key, value] of Object.entries(counts)) {
        if (label) this.inc({ [label]: key }, value - reported[key]!);
        else this.inc(value - reported[key]!);
      }
      reported = { ...counts };
    },
  });
}
