import type { Router } from "express";
import type { Cluster, Redis } from "ioredis";
import { z } from "zod";
import { WEBHOOK_STREAM, WEBHOOK_STREAM_MAXLEN, deadLetterStreamOf, type Logger } from "@chat/shared";
import { bodyOf, jsonBody, withRedis } from "./api-replies.js";

const replayBody = z.strictObject(
  {
    url: z.url({ error: "must be one of WEBHOOK_URLS" }).optional(),
    limit: z.number({ error: "must be a number" }).int("must be a whole number").min(1, "must be at least 1").max(1000, "must be at most 1000").optional(),
  },
  { error: "the body must be a JSON object { url?, limit? }" },
);

/** Moves at most `limit` dead letters (of `url` only, when given) back to the stream, oldest first, in one MULTI. */
const REPLAY_SCRIPT = `
local moved = 0
local cursor = '-'
while moved < tonumber(ARGV[1]) do
  local rows = redis.call('XRANGE', KEYS[1], cursor, '+', 'COUNT', 100)
  if #rows == 0 then break end
  for _, row in ipairs(rows) do
    local f = {}
    for i = 1, #row[2], 2 do f[row[2][i]] = row[2][i + 1] end
    if (ARGV[2] == '' or f['url'] == ARGV[2]) and moved < tonumber(ARGV[1]) then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'type', f['type'], 'room', f['room'], 'data', f['data'], 'ts', f['ts'], 'id', f['id'], 'only', f['url'])
      redis.call('XDEL', KEYS[1], row[1])
      moved = moved + 1
    end
    cursor = '(' .. row[1]
  end
end
return moved`;

/**
 * `POST /v1/webhooks/replay {url?, limit?}`: dead letters go back to the webhook stream, each for
 * the endpoint that failed it only and with its original event id, so receivers that saw it
 * before recognise it.
 */
export function webhookRoutes(
  v1: Router,
  {
    redis,
    log,
    urls,
    redisReady,
  }: {
    redis: Redis | Cluster;
    log: Logger;
    urls: string[];
    redisReady: () => boolean;
  },
): void {
  // `WEBHOOK_DEAD_STREAM` on one server; on a cluster in the webhook stream's slot, which the script also writes.
  const deadStream = deadLetterStreamOf(WEBHOOK_STREAM, { cluster: redis.isCluster });
  v1.post("/webhooks/replay", ...jsonBody, async (req, res) => {
    const body = bodyOf(res, replayBody, req.body);
    if (!body) return;
    if (body.url !== undefined && !urls.includes(body.url)) {
      return res.status(400).json({ error: { code: "bad_request", message: "url: must be one of WEBHOOK_URLS" } });
    }
    await withRedis(
      res,
      "nothing was replayed",
      redisReady,
      async () => {
        const replayed = (await redis.eval(REPLAY_SCRIPT, 2, deadStream, WEBHOOK_STREAM, body.limit ?? 100, body.url ?? "", WEBHOOK_STREAM_MAXLEN)) as number;
        const left = await redis.xlen(deadStream);
        log.info({ replayed, left }, "webhook dead letters replayed");
        res.json({ replayed, deadLetters: left });
      },
      log,
    );
  });
}
