import type { IncomingMessage } from "node:http";
import proxyaddr from "proxy-addr";
import type { Socket } from "socket.io";

/** The client's address of a connection, as far as the configured proxies can be trusted. */
export type ClientAddress = (socket: Socket) => string;

/**
 * `TRUST_PROXY`, parsed: a number of proxy hops (the old form, which trusts `X-Forwarded-For` from
 * any peer), or the addresses/CIDRs of the proxies whose `X-Forwarded-For` is read.
 */
export type TrustProxy = { hops: number } | { proxies: string[] };

/**
 * proxy-addr's trust function for a setting: with a list, only a peer (and then each further hop)
 * that is one of the listed proxies is believed about the address before it; with a hop count,
 * that many hops are believed whoever the peer is.
 */
export function compileTrust(trust: TrustProxy): (address: string, hop: number) => boolean {
  if ("proxies" in trust) return proxyaddr.compile(trust.proxies);
  const { hops } = trust;
  return (_address, hop) => hop < hops;
}

/** Whether `address` (a TCP peer) is one of the configured proxies; never with a hop count. */
export function isTrustedProxy(trust: TrustProxy, address: string | undefined): boolean {
  if (!address || !("proxies" in trust)) return false;
  return compileTrust(trust)(address, 0);
}

/** The client address of an HTTP request: its peer, or the last untrusted hop of X-Forwarded-For. */
export function requestAddress(trust: TrustProxy): (req: IncomingMessage) => string {
  const trusted = compileTrust(trust);
  const none = "hops" in trust && trust.hops === 0;
  return (req) => (none ? (req.socket.remoteAddress ?? "") : proxyaddr(req, trusted));
}

export function createClientAddress(trust: TrustProxy): ClientAddress {
  const address = requestAddress(trust);
  return (socket) => address(socket.request);
}
