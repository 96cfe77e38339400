#!/usr/bin/env node
// Prints an HS256 token the chat accepts with the chart's default auth (AUTH_MODE=jwt with the
// generated <release>-auth Secret), for trying the chat out by hand (docs/deploy.md):
//   JWT_SECRET=... node scripts/dev-token.mjs [user-id] [display-name] [hours=8]
// JWT_ISSUER / JWT_AUDIENCE add iss / aud when the chart sets auth.jwt.issuer / audience.
import { createHmac } from "node:crypto";

const [sub = "alice", name = sub, hours = "8"] = process.argv.slice(2);
const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error("dev-token: set JWT_SECRET (kubectl -n chat get secret chat-auth -o jsonpath='{.data.jwt-secret}' | base64 -d)");
  process.exit(1);
}
const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
const claims = { sub, name, exp: Math.floor(Date.now() / 1000) + Number(hours) * 3600 };
if (process.env.JWT_ISSUER) claims.iss = process.env.JWT_ISSUER;
if (process.env.JWT_AUDIENCE) claims.aud = process.env.JWT_AUDIENCE;
const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
console.log(`${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`);
