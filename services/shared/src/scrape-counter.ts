import { Counter, type Registry } from "prom-client";

/**
 * A Prometheus counter read from plain numbers at scrape time: the hot path adds to `counts` (a
 * field per value of `label`, or `total` without a label) and never calls prom-client, which
 * keeps per-delivery work to an addition.
 */
export function scrapeCounter(registry: Registry, name: string, help: string, label: string | undefined, counts: Record<string, number>): void {
  let reported = { ...counts };
  new Counter({
    name,
    help,
    labelNames: label ? [label] : [],
    registers: [registry],
    collect() {
      for (const [key, value] of Object.entries(counts)) {
        if (label) this.inc({ [label]: key }, value - (reported[key] ?? 0));
        else this.inc(value - (reported[key] ?? 0));
      }
      reported = { ...counts };
    },
  });
}
