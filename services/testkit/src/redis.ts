import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "./wait.js";
import { killOnExit } from "./children.js";

export interface RedisServerOptions {
  /** Persist with AOF and `appendfsync always`, so a restart loses nothing that was written. */
  aof?: boolean;
  /** `requirepass` for the server. */
  password?: string;
  /** More `redis-server` arguments, e.g. `["--maxmemory", "64mb"]`. */
  args?: string[];
  /** Ports the server's own port must not be: a cluster node's bus port, which the OS may hand out again. */
  avoidPorts?: number[];
}

/** A real `redis-server` (from PATH) that this test started on a free port and alone uses. */
export interface RedisServer {
  port: number;
  /** `redis://[:password@]127.0.0.1:port` */
  url: string;
  /** Stops the server (SIGTERM, or SIGKILL with `{ kill: true }`) and waits for it to exit. */
  stop(options?: { kill?: boolean }): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it for good and removes its data directory. */
  dispose(): Promise<void>;
}

export async function startRedis({ aof = false, password, args = [], avoidPorts = [] }: RedisServerOptions = {}): Promise<RedisServer> {
  // freePort() closes what it found, so it may find the same port again: the one a cluster node was
  // given for its bus. A node listening on one port twice fails to start, on every retry alike.
  const pickPort = async () => {
    for (;;) {
      const candidate = await freePort();
      if (!avoidPorts.includes(candidate)) return candidate;
    }
  };
  let port = await pickPort();
  const dir = mkdtempSync(join(tmpdir(), "chat-redis-"));
  const argvFor = (port: number) => [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    aof ? "yes" : "no",
    ...(aof ? ["--appendfsync", "always"] : []),
    ...(password ? ["--requirepass", password] : []),
    ...args,
  ];
  let argv = argvFor(port);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    const proc = spawn("redis-server", argv, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    killOnExit(proc);
    let output = "";
    proc.stdout?.on("data", (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    proc.stderr?.on("data", (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
    exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const failed = new Promise<never>((_, reject) =>
      proc.once("error", (err) => reject(new Error(`cannot start redis-server (is it on PATH?): ${err.message}`))),
    );
    // A server that exits at once (a port taken since freePort() found it free) fails the start now,
    // rather than after the 30 s wait for an answer.
    const died = new Promise<never>((_, reject) =>
      proc.once("exit", (code) => reject(new Error(`redis-server on port ${port} exited (${code}) before answering\n${output}`))),
    );
    died.catch(() => undefined);
    await Promise.race([failed, died, waitFor(() => ping(port, password), { timeoutMs: 30_000, what: () => `redis-server on port ${port}\n${output}` })]);
  }

  async function stop({ kill = false } = {}): Promise<void> {
    if (!child || child.exitCode !== null) return;
    child.kill(kill ? "SIGKILL" : "SIGTERM");
    await exited;
  }

  // freePort() closes the port it found before redis-server binds it: another test may take it in
  // between (or a cluster node's bus port may be that number). Try a few fresh ports then.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (err) {
      if (attempt >= 5 || !/Address already in use/.test((err as Error).message)) throw err;
      port = await pickPort();
      argv = argvFor(port);
    }
  }
  return {
    port,
    url: password ? `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`,
    stop,
    start,
    async dispose() {
      await stop({ kill: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** True when a server answers PING (with AUTH first when there is a password). */
function ping(port: number, password?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    socket.setTimeout(1000, () => socket.destroy());
    socket.on("connect", () => socket.write(`${password ? `AUTH ${password}\r\n` : ""}PING\r\n`));
    socket.on("data", (data) => {
      reply += data.toString();
      if (reply.includes("+PONG")) {
        socket.end();
        resolve(true);
      } else if (reply.includes("-")) {
        socket.end();
        resolve(false);
      }
    });
    socket.on("error", () => resolve(false));
    socket.on("close", () => resolve(false));
  });
}
