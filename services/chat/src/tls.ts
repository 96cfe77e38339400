import { X509Certificate } from "node:crypto";
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { createServer as createPlainServer, type RequestListener, type Server as HttpServer } from "node:http";
import { createServer as createTlsServer, type Server as HttpsServer } from "node:https";
import { dirname } from "node:path";
import type { Logger } from "@chat/shared";

/** Where the chat's own certificate is, for https/wss on its port. */
export interface TlsFiles {
  /** `TLS_CERT_FILE`: PEM certificate chain. */
  certFile: string;
  /** `TLS_KEY_FILE`: PEM private key. */
  keyFile: string;
}

/** The chat's listener: plain HTTP, or HTTPS that reloads its certificate; `close` stops watching. */
export interface Listener {
  server: HttpServer;
  /** Stops watching the certificate files (the server itself is closed by its owner). */
  stopWatching(): void;
}

function readPair({ certFile, keyFile }: TlsFiles): { cert: Buffer; key: Buffer; subject: string; validTo: string } {
  const cert = readFileSync(certFile);
  const key = readFileSync(keyFile);
  const x509 = new X509Certificate(cert);
  return { cert, key, subject: x509.subject.replace(/\n/g, ", "), validTo: x509.validTo };
}

/**
 * An HTTP server, or with `tls` an HTTPS one whose certificate is reloaded when its files change:
 * a Kubernetes Secret volume (cert-manager renewing it, say) swaps both files at once by renaming
 * a directory symlink, so the directories are watched rather than the files. A pair that does not
 * load (a half-written file, a key that does not match) is logged and the current one kept; the
 * next change tries again. Connections already open keep the certificate they started with.
 */
export function createListener(app: RequestListener, tls: TlsFiles | undefined, log: Logger): Listener {
  if (!tls) return { server: createPlainServer(app), stopWatching: () => {} };
  const first = readPair(tls);
  const server: HttpsServer = createTlsServer({ cert: first.cert, key: first.key }, app);
  log.info({ subject: first.subject, validTo: first.validTo }, "serving TLS");

  let timer: NodeJS.Timeout | undefined;
  const reload = () => {
    timer = undefined;
    try {
      const pair = readPair(tls);
      server.setSecureContext({ cert: pair.cert, key: pair.key });
      log.info({ subject: pair.subject, validTo: pair.validTo }, "TLS certificate reloaded");
    } catch (err) {
      log.warn({ err: (err as Error).message }, "TLS certificate files changed but do not load; keeping the current certificate");
    }
  };
  const watchers: FSWatcher[] = [...new Set([dirname(tls.certFile), dirname(tls.keyFile)])].map((dir) =>
    watch(dir, () => {
      // One swap fires several events: reload once they settle.
      clearTimeout(timer);
      timer = setTimeout(reload, 200);
    }),
  );
  for (const w of watchers) w.on("error", (err) => log.warn({ err: err.message }, "cannot watch the TLS certificate files"));
  return {
    // https.Server serves the same requests and upgrades as http.Server; Socket.IO takes either.
    server: server as unknown as HttpServer,
    stopWatching() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
