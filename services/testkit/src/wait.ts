import { createServer } from "node:net";

export interface WaitOptions {
  /** Generous: a loaded 2-core CI machine is slow, and a condition that holds ends the wait at once. @default 20_000 */
  timeoutMs?: number;
  /** @default 20 */
  intervalMs?: number;
  /** Named in the error when the time runs out (a function is read only then). */
  what?: string | (() => string);
}

/** Polls `condition` until it holds; fails with a clear message when it does not in time. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 20_000, intervalMs = 20, what = "condition" }: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "function" ? what() : what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
