#!/usr/bin/env node
// Day-two steps of the kind end-to-end job (.github/workflows/ci.yml), from the runner through the
// chat Service's address, with the official socket.io-client and HS256 tokens signed here:
//   node scripts/e2e-day-two.mjs send     <url> <room> <text>   # JWT_SECRET signs; the send must be acked
//   node scripts/e2e-day-two.mjs history  <url> <room> <text>   # a join returns <text> from the room's log
//   node scripts/e2e-day-two.mjs refused  <url>                 # a token signed with JWT_SECRET is refused
//   node scripts/e2e-day-two.mjs notified <url> <room> <id>     # joins, touches READY_FILE, waits for notification <id>
// Exit 0 when the step holds, 1 with a line saying what happened instead.
import { writeFileSync } from "node:fs";
import { io } from "socket.io-client";
import { signHs256 } from "./helm-test-client.mjs";

const [mode, url, room, arg] = process.argv.slice(2);
const secret = process.env.JWT_SECRET;
const fail = (msg) => {
  console.error(`e2e-day-two ${mode}: FAIL: ${msg}`);
  process.exit(1);
};
if (!url || !secret) fail("usage: e2e-day-two.mjs <send|history|refused|notified> <url> [room] [arg], with JWT_SECRET set");
setTimeout(() => fail("timed out after 60s"), 60_000).unref();

function connect(name) {
  const token = signHs256({ sub: name, name, exp: Math.floor(Date.now() / 1000) + 300 }, secret);
  const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false, forceNew: true, timeout: 10_000 });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function join(socket, body) {
  const ack = await socket.timeout(10_000).emitWithAck("join", body);
  if (!ack.ok) fail(`join ${body.room}: ${ack.error.code}: ${ack.error.message}`);
  return ack;
}

if (mode === "refused") {
  const outcome = await connect("e2e-old-token").then(
    (s) => (s.close(), { code: "connected" }),
    (err) => ({ code: err.data?.code, message: err.message }),
  );
  if (outcome.code === "connected") fail("a token signed with the old secret still connects");
  // Refused by the chat for its token, not a network error.
  if (outcome.code !== "unauthorized") fail(`expected an unauthorized refusal, got ${outcome.code ?? "no code"}: ${outcome.message}`);
  console.log(`e2e-day-two refused: ok (${outcome.message})`);
  process.exit(0);
}
const socket = await connect(`e2e-${mode}`).catch((err) => fail(`connect: ${err.message}`));
if (mode === "send") {
  await join(socket, { room });
  const ack = await socket.timeout(10_000).emitWithAck("message", { room, text: arg });
  if (!ack.ok) fail(`message: ${ack.error.code}: ${ack.error.message}`);
  console.log(`e2e-day-two send: ok (${arg} in ${room})`);
} else if (mode === "history") {
  const ack = await join(socket, { room, since: "0-0" });
  const texts = (ack.messages ?? []).map((m) => m.text);
  if (!texts.includes(arg)) fail(`${arg} is not in ${room}'s history (${texts.length} entries: ${texts.slice(-5).join(", ")})`);
  console.log(`e2e-day-two history: ok (${arg} still in ${room})`);
} else if (mode === "notified") {
  await join(socket, { room });
  const got = new Promise((resolve) => socket.on("notification", (n) => n.eventId === arg && resolve(n)));
  if (process.env.READY_FILE) writeFileSync(process.env.READY_FILE, "ready\n");
  await got;
  console.log(`e2e-day-two notified: ok (${arg} in ${room})`);
} else fail(`unknown mode ${mode}`);
socket.close();
process.exit(0);
