/** How a refused client spreads its next try: see `retryDelay`. */
export interface RetryBackoff {
  /**
   * The random window after the first refusal, in milliseconds; it doubles with each refusal in a row.
   * @default 1000
   */
  baseMs?: number;
  /**
   * The widest the window grows, in milliseconds.
   * @default 30000
   */
  maxMs?: number;
  /**
   * A number in [0, 1): injectable, so that tests are deterministic.
   * @default Math.random
   */
  random?: () => number;
}

/**
 * Milliseconds to wait before connecting again after the `attempt`-th refusal in a row (0 for the
 * first) that carried `retryAfterMs`: never sooner than the server asked, plus a uniformly random
 * extra in a window that doubles with each refusal ("full jitter"). Without the extra, every client
 * a storm refused with the same `retryAfterMs` would come back at the same instant, and be refused
 * again together.
 */
export function retryDelay(
  attempt: number,
  retryAfterMs: number | undefined,
  { baseMs = 1000, maxMs = 30_000, random = Math.random }: RetryBackoff = {},
): number {
  const window = Math.min(baseMs * 2 ** Math.min(attempt, 30), maxMs);
  return Math.max(retryAfterMs ?? 0, 0) + Math.floor(random() * window);
}
