import { afterAll, describe, expect, it } from "vitest";
import { collectDefaultMetrics, Registry } from "prom-client";
import { waitFor } from "@chat/testkit";
import { registerEventLoopLag } from "../src/event-loop-lag.js";

/** One scrape's event-loop-delay gauges, in seconds. */
async function scrape(registry: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const metric of await registry.getMetricsAsJSON()) {
    const m = /^nodejs_eventloop_lag_(\w+)_seconds$/.exec(metric.name);
    if (m) out[m[1]!] = metric.values[0]?.value ?? NaN;
  }
  return out;
}

function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* the event loop is stalled on purpose */
  }
}

describe("the event-loop-delay gauges", () => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 60_000 });
  const lag = registerEventLoopLag(registry, { resolutionMs: 50 });
  afterAll(() => registry.clear());

  it("replace prom-client's gauges of the same names, once each", async () => {
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith("nodejs_eventloop_lag_"));
    expect(names.sort()).toEqual(
      ["max", "mean", "min", "p50", "p90", "p99", "stddev"]
        .map((s) => `nodejs_eventloop_lag_${s}_seconds`)
        .concat("nodejs_eventloop_lag_seconds")
        .sort(),
    );
  });

  it("read the delay past each sample: an idle loop reads about 0, not the sampling interval", async () => {
    await scrape(registry); // starts a fresh period
    await waitFor(() => lag.samplesSinceScrape() >= 4, { what: "4 samples of the idle loop" });
    const idle = await scrape(registry);
    // prom-client's monitor reads its whole sampling interval here (10 ms by default; 50 ms at this resolution).
    expect(idle.p50).toBeLessThan(0.02);
    expect(idle.p99).toBeLessThan(0.03);
    expect(lag.samplesSinceScrape()).toBe(0);
  });

  it("read a stall of the loop as its length", async () => {
    await scrape(registry);
    // Node's monitor starts measuring at its first sample after a reset (a scrape): a stall before that is not seen.
    await waitFor(() => lag.samplesSinceScrape() >= 1, { what: "a sample after the scrape" });
    block(200);
    // The sample the stall delayed is taken once the loop runs again.
    await waitFor(() => lag.samplesSinceScrape() >= 2, { what: "the samples around the stall" });
    const stalled = await scrape(registry);
    expect(stalled.max).toBeGreaterThanOrEqual(0.15);
    expect(stalled.max).toBeLessThan(0.3);
  });
});
