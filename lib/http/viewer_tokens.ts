/**
 * Viewer tokens (`--viewer-token-secret`): JWTs signed with HS256 whose claims name
 * the room (`room`, or `"*"` for every room) and an expiry (`exp`, Unix seconds).
 * Any JWT library can mint them; WHEP takes them as `Authorization: Bearer`, the
 * WebSocket as `?token=` or a first `{ "type": "auth", "token" }` message.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

/** Largest token accepted, in characters. */
const MAX_TOKEN_LENGTH = 4096;

function base64url(data: Uint8Array | string): string {
  return Buffer.from(data).toString("base64url");
}

/** Mints a token for `room` valid for `ttlSeconds` (for operators' scripts and tests). */
export function signViewerToken(
  secret: string,
  room: string,
  ttlSeconds: number,
  now = Date.now(),
): string {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(JSON.stringify({ room, exp: Math.floor(now / 1000) + ttlSeconds }));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

/** Checks a token for `room`; returns undefined when it is good, else why not. */
export function checkViewerToken(
  secret: string,
  token: string | undefined | null,
  room: string,
  now = Date.now(),
): string | undefined {
  if (!token) return "a viewer token is required";
  if (token.length > MAX_TOKEN_LENGTH) return "the viewer token is too long";
  const parts = token.split(".");
  if (parts.length !== 3) return "the viewer token is not a JWT";
  const [header, payload, signature] = parts;
  const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return "the viewer token's signature does not match";
  }
  let head: { alg?: unknown };
  let claims: { room?: unknown; exp?: unknown };
  try {
    head = JSON.parse(Buffer.from(header, "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return "the viewer token is not valid JSON";
  }
  if (head?.alg !== "HS256") return "the viewer token must use HS256";
  if (typeof claims?.exp !== "number") return "the viewer token has no exp claim";
  if (claims.exp * 1000 <= now) return "the viewer token has expired";
  if (claims.room !== room && claims.room !== "*") {
    return `the viewer token is not for room ${room}`;
  }
  return undefined;
}
