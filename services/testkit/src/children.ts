import type { ChildProcess } from "node:child_process";

const alive = new Set<ChildProcess>();
let hooked = false;

/**
 * Tracks a process a test started, so that it cannot outlive the test file: `killAllChildren()`
 * (vitest.setup.ts runs it after each file's own `afterAll`) and this process's `exit` SIGKILL
 * whatever is still running.
 *
 * Why: a test file that fails before its `afterAll`, or whose hook times out, would otherwise leave
 * its chat pods, notifiers and Redis servers running. A pod left behind keeps reconnecting to its
 * Redis's port, and joins whichever Redis a later file starts on that port (freePort() may hand it
 * out again): that file's test then shares its bus with a stranger.
 */
export function killOnExit(child: ChildProcess): void {
  alive.add(child);
  child.once("exit", () => alive.delete(child));
  if (hooked) return;
  hooked = true;
  process.once("exit", killAllChildren);
}

/** SIGKILLs every tracked process still running, and returns how many there were. */
export function killAllChildren(): number {
  let killed = 0;
  for (const child of alive) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      killed++;
    }
  }
  alive.clear();
  return killed;
}
