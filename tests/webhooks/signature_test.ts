/**
 * The `Sluice-Signature` scheme: a fixed vector (computed with Python's hmac), parsing,
 * and verification refusing tampered bodies, wrong secrets, stale and malformed headers.
 */
import assert from "node:assert/strict";
import {
  constantTimeEqual,
  generateSecret,
  parseSignatureHeader,
  signatureHeader,
  verifySignature,
} from "../../lib/webhooks/mod.ts";

const SECRET = "whsec_test_secret_0123456789";
const BODY = '{"id":"evt_1","type":"stream.started"}';
// python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_test_secret_0123456789",
//   b"1700000000.{\"id\":\"evt_1\",\"type\":\"stream.started\"}",hashlib.sha256).hexdigest())'
const EXPECTED = "83b3972c06ed79fea4881f6429547e3a90fc833bef7c79e288c85aad52094d97";

Deno.test("signature: HMAC-SHA256 of '<t>.<body>' as t=…,v1=<hex>", () => {
  assert.equal(signatureHeader(SECRET, 1_700_000_000, BODY), `t=1700000000,v1=${EXPECTED}`);
  // Bytes and strings sign the same.
  assert.equal(
    signatureHeader(SECRET, 1_700_000_000, new TextEncoder().encode(BODY)),
    `t=1700000000,v1=${EXPECTED}`,
  );
});

Deno.test("signature: timestamps must be unix seconds", () => {
  assert.throws(() => signatureHeader(SECRET, -1, BODY), RangeError);
  assert.throws(() => signatureHeader(SECRET, 1.5, BODY), RangeError);
});

Deno.test("signature: parse", () => {
  assert.deepEqual(parseSignatureHeader(`t=12,v1=${EXPECTED}`), { timestamp: 12, v1: [EXPECTED] });
  assert.deepEqual(parseSignatureHeader(`t=12, v1=${EXPECTED}, v1=${"0".repeat(64)}, v0=x`), {
    timestamp: 12,
    v1: [EXPECTED, "0".repeat(64)],
  });
  for (
    const bad of [
      "",
      "t=12",
      `v1=${EXPECTED}`,
      `t=x,v1=${EXPECTED}`,
      `t=12,v1=${EXPECTED.slice(1)}`,
      `t=12,v1=${EXPECTED.toUpperCase()}`,
      `t=12;v1=${EXPECTED}`,
    ]
  ) {
    assert.equal(parseSignatureHeader(bad), undefined, bad);
  }
});

Deno.test("signature: verify accepts the real thing and refuses everything else", () => {
  const now = 1_700_000_000_000;
  const header = signatureHeader(SECRET, now / 1000, BODY);
  assert.deepEqual(verifySignature(SECRET, header, BODY, { now }), { ok: true });
  assert.deepEqual(verifySignature(SECRET, header, BODY.replace("1", "2"), { now }), {
    ok: false,
    reason: "mismatch",
  });
  assert.deepEqual(verifySignature(SECRET + "x", header, BODY, { now }), {
    ok: false,
    reason: "mismatch",
  });
  assert.deepEqual(verifySignature(SECRET, header, BODY, { now: now + 301_000 }), {
    ok: false,
    reason: "stale",
  });
  assert.deepEqual(
    verifySignature(SECRET, header, BODY, { now: now + 3_600_000, toleranceSeconds: 3600 }),
    { ok: true },
  );
  assert.deepEqual(verifySignature(SECRET, null, BODY, { now }), {
    ok: false,
    reason: "malformed",
  });
  // A replay with a fresh t but the old v1 does not verify: t is signed.
  const replay = header.replace("t=1700000000", "t=1700000100");
  assert.deepEqual(verifySignature(SECRET, replay, BODY, { now: now + 100_000 }), {
    ok: false,
    reason: "mismatch",
  });
});

Deno.test("signature: generated secrets are long, random and prefixed", () => {
  const a = generateSecret();
  const b = generateSecret();
  assert.match(a, /^whsec_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, b);
});

Deno.test("signature: constant-time equality", () => {
  assert.ok(constantTimeEqual("abc", "abc"));
  assert.ok(!constantTimeEqual("abc", "abd"));
  assert.ok(!constantTimeEqual("abc", "abcd"));
});
