import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP round-robin load balancer in front of several pods, like a Kubernetes Service: each new
 * connection goes to the next backend, skipping backends that refuse it (a dead pod).
 */
export interface Balancer {
  port: number;
  url: string;
  /** Connections currently proxied, per backend port. */
  connections(): Map<number, number>;
  /** Replaces the backends new connections go to (like endpoints leaving a Service). */
  setBackends(ports: number[]): void;
  /** Cuts every proxied connection, and keeps listening (a network partition, with setBackends([])). */
  dropConnections(): void;
  close(): Promise<void>;
}

export async function startBalancer(initialPorts: number[]): Promise<Balancer> {
  let backendPorts = [...initialPorts];
  let next = 0;
  const open = new Set<Socket>();
  const perBackend = new Map<number, number>();

  function pipeTo(client: Socket, attempt: number): void {
    if (attempt >= backendPorts.length) {
      client.destroy();
      return;
    }
    const port = backendPorts[next++ % backendPorts.length]!;
    const upstream = connect(port, "127.0.0.1");
    upstream.once("error", () => {
      if (!upstream.readyState.includes("open") && !client.destroyed) pipeTo(client, attempt + 1);
    });
    upstream.once("connect", () => {
      open.add(upstream);
      perBackend.set(port, (perBackend.get(port) ?? 0) + 1);
      upstream.on("error", () => client.destroy());
      upstream.once("close", () => {
        open.delete(upstream);
        perBackend.set(port, (perBackend.get(port) ?? 1) - 1);
        client.destroy();
      });
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  const server: Server = createServer((client) => {
    open.add(client);
    client.on("error", () => undefined);
    client.once("close", () => open.delete(client));
    // Paused until piped to a backend: nothing the client sends first may be lost.
    client.pause();
    pipeTo(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections: () => new Map(perBackend),
    setBackends(ports) {
      backendPorts = [...ports];
    },
    dropConnections() {
      for (const socket of open) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
