import { monitorEventLoopDelay } from "node:perf_hooks";
import { Gauge, type Registry } from "prom-client";

export interface EventLoopLagOptions {
  /**
   * How often the event loop is sampled, in milliseconds.
   * @default 100
   */
  resolutionMs?: number;
}

/** prom-client's names for the event-loop-delay histogram, kept so that dashboards need no change. */
const STATS = ["min", "max", "mean", "stddev", "p50", "p90", "p99"] as const;
type Stat = (typeof STATS)[number];

/**
 * The `nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds` gauges, sampled every
 * `resolutionMs` and reporting the delay beyond it.
 *
 * Why not prom-client's own: its monitor samples every 10 ms and reports the whole interval
 * between samples, so an idle loop reads 10 ms, and its timer wakes every pod 100 times a second.
 * On an idle pod that was most of its CPU beyond the baseline's (docs/performance.md); under load
 * those wake-ups cost about 1% of a fan-out run. Here the loop is sampled 10 times a second and
 * each sample is the delay past its due time: an idle loop reads 0, a 40 ms stall reads 40 ms,
 * whatever the resolution. Like prom-client's, the histogram restarts at every scrape.
 * `collectDefaultMetrics` must have run first: its gauges of the same names are replaced.
 */
export function registerEventLoopLag(registry: Registry, { resolutionMs = 100 }: EventLoopLagOptions = {}): { samplesSinceScrape(): number } {
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  const beyond = (ns: number) => Math.max(0, ns / 1e9 - resolutionMs / 1000);
  const read: Record<Stat, () => number> = {
    min: () => beyond(histogram.min),
    max: () => beyond(histogram.max),
    mean: () => beyond(histogram.mean),
    // A spread is the same with or without the interval in every sample.
    stddev: () => histogram.stddev / 1e9,
    p50: () => beyond(histogram.percentile(50)),
    p90: () => beyond(histogram.percentile(90)),
    p99: () => beyond(histogram.percentile(99)),
  };
  const gauges = {} as Record<Stat, Gauge>;
  for (const stat of STATS) {
    const name = `nodejs_eventloop_lag_${stat}_seconds`;
    registry.removeSingleMetric(name);
    gauges[stat] = new Gauge({
      name,
      help: `The ${stat} of the event loop's delay past each ${resolutionMs} ms sample since the last scrape, in seconds.`,
      registers: [registry],
      // The first of the gauges to be collected sets them all, then starts the next period.
      collect: stat === "min" ? collectAll : undefined,
    });
  }
  function collectAll(): void {
    // No sample since the last scrape (two scrapes within one interval): keep the last values.
    if (histogram.count === 0) return;
    for (const stat of STATS) gauges[stat].set(read[stat]());
    histogram.reset();
  }
  return { samplesSinceScrape: () => histogram.count };
}
