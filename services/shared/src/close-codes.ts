// No imports: @chat/client (and the web page's bundle) read this file on its own.
/**
 * The WebSocket close frame a pod sends to a connection it closes for not reading what it is sent
 * (its outbound buffer went over `MAX_CLIENT_BUFFER_BYTES`). 4000-4999 are the codes RFC 6455
 * leaves to applications. A client that reads as far as the frame learns why; either way it
 * reconnects and catches up from the room log.
 */
export const SLOW_CONSUMER_CLOSE = { code: 4008, reason: "slow_consumer" } as const;
