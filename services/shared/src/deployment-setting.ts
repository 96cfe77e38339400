import type { Logger } from "./logger.js";

/**
 * A setting of this process contradicts the deployment's, which Redis keeps (the bus mode, the
 * auth mode): no retry would fix it, and serving anyway would lose messages or let people in as
 * others. Libraries throw it; the composition root (`runService`) ends the process.
 */
export class DeploymentConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** How long to wait before asking an unreachable Redis again. */
const RETRY_MS = 500;

/**
 * Runs `resolve` until Redis answers it: while Redis is unreachable it waits and tries again,
 * logging once that it is waiting to learn `what`. A `DeploymentConflict` is thrown to the caller.
 */
export async function untilRedisAnswers<T>(what: string, resolve: () => Promise<T>, log: Logger): Promise<T> {
  let warned = false;
  for (;;) {
    try {
      return await resolve();
    } catch (err) {
      if (err instanceof DeploymentConflict) throw err;
      if (!warned) log.warn({ err: (err as Error).message }, `waiting for Redis to learn ${what}`);
      warned = true;
      await new Promise((done) => setTimeout(done, RETRY_MS));
    }
  }
}
