import assert from "node:assert/strict";
import { checkViewerToken, signViewerToken } from "../../lib/http/viewer_tokens.ts";

const now = Date.UTC(2026, 10, 25);

Deno.test("viewer tokens: a token for the room and in time is good; '*' covers every room", () => {
  assert.equal(checkViewerToken("s", signViewerToken("s", "r1", 60, now), "r1", now), undefined);
  assert.equal(checkViewerToken("s", signViewerToken("s", "*", 60, now), "other", now), undefined);
});

Deno.test("viewer tokens: wrong room, expired, wrong secret, tampered, malformed are refused", () => {
  const token = signViewerToken("s", "r1", 60, now);
  assert.match(checkViewerToken("s", token, "r2", now)!, /not for room r2/);
  assert.match(checkViewerToken("s", token, "r1", now + 61_000)!, /expired/);
  assert.match(checkViewerToken("other", token, "r1", now)!, /signature/);
  const [h, p, sig] = token.split(".");
  const forged = btoa(JSON.stringify({ room: "*", exp: 9e9 })).replace(/=+$/, "");
  assert.match(checkViewerToken("s", `${h}.${forged}.${sig}`, "r1", now)!, /signature/);
  assert.match(checkViewerToken("s", `${h}.${p}`, "r1", now)!, /not a JWT/);
  assert.match(checkViewerToken("s", undefined, "r1", now)!, /required/);
  assert.match(checkViewerToken("s", "x".repeat(5000), "r1", now)!, /too long/);
});
