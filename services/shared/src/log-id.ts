// Log ids, with no dependency: the browser client imports this file on its own.

/**
 * Log ids: `<milliseconds>-<sequence>`, the ids of the per-room Redis Stream. They grow
 * monotonically within a room, so a client can say "everything after this one".
 */
export const LOG_ID_PATTERN = /^\d{1,15}-\d{1,15}$/;

/** The id a room's first entry points back to. */
export const LOG_START = "0-0";

/** Orders log ids: negative when `a` is older than `b`. */
export function compareLogIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}

/**
 * The log id of a room entry: `id` (servers before `eventId` existed put a notification's log id
 * in `logId` and its event id in `id`; today `logId` is a deprecated alias equal to `id`).
 */
export function logIdOf(entry: { id: string; logId?: string }): string {
  return entry.logId ?? entry.id;
}
