import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  buildServerHandshake,
  buildSignedClientC1,
  findClientDigest,
  HANDSHAKE_SIZE,
  verifyServerS1,
  verifyServerS2,
} from "../../lib/rtmp/handshake.ts";
import { RtmpError } from "../../lib/rtmp/errors.ts";
import { mulberry32 } from "../support/prng.ts";

const NOW = 1_700_000_123_456;
const NOW_SECONDS = Math.floor(NOW / 1000);

function randomBlock(rand: () => number): Uint8Array {
  const block = new Uint8Array(HANDSHAKE_SIZE);
  for (let i = 0; i < block.length; i++) block[i] = Math.floor(rand() * 256);
  return block;
}

function u32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at);
}

/** Splits S0+S1+S2 into its parts. */
function split(reply: Uint8Array): { s0: number; s1: Uint8Array; s2: Uint8Array } {
  strictEqual(reply.length, 1 + 2 * HANDSHAKE_SIZE);
  return {
    s0: reply[0],
    s1: reply.subarray(1, 1 + HANDSHAKE_SIZE),
    s2: reply.subarray(1 + HANDSHAKE_SIZE),
  };
}

/** Asserts that S2 is C1 with only the second time field (bytes 4..8) replaced. */
function assertEcho(c1: Uint8Array, s2: Uint8Array): void {
  deepStrictEqual(s2.subarray(0, 4), c1.subarray(0, 4));
  strictEqual(u32(s2, 4), NOW_SECONDS);
  deepStrictEqual(s2.subarray(8), c1.subarray(8));
}

Deno.test("handshake: a simple C1 (zero version) gets S0 3, a plain S1 and S2 echoing C1", () => {
  const c1 = randomBlock(mulberry32(1));
  c1.set([0, 0, 0, 0], 4);
  strictEqual(findClientDigest(c1), undefined);
  const { s0, s1, s2 } = split(buildServerHandshake(c1, NOW));
  strictEqual(s0, 3);
  strictEqual(u32(s1, 0), NOW_SECONDS);
  strictEqual(u32(s1, 4), 0, "a simple S1 carries a zero version");
  assertEcho(c1, s2);
  ok(!verifyServerS1(s1), "a simple S1 must not carry a server digest by accident");
});

for (const scheme of [0, 1] as const) {
  Deno.test(`handshake: a signed C1 (scheme ${scheme}) gets a signed S1 and S2`, () => {
    const c1 = buildSignedClientC1(scheme);
    const found = findClientDigest(c1);
    ok(found, "the client digest is found");
    strictEqual(found.scheme, scheme);
    strictEqual(found.digest.length, 32);

    const { s0, s1, s2 } = split(buildServerHandshake(c1, NOW));
    strictEqual(s0, 3);
    strictEqual(u32(s1, 0), NOW_SECONDS);
    notDeepStrictEqual(s1.subarray(4, 8), new Uint8Array(4), "a signed S1 has a version");
    ok(verifyServerS1(s1), "S1 carries a valid server digest");
    ok(verifyServerS2(s2, found.digest), "S2 is signed with the key from the client digest");
    notDeepStrictEqual(s2, c1, "a signed S2 is not an echo");

    // What a strict client would reject.
    const otherDigest = findClientDigest(buildSignedClientC1(scheme))!.digest;
    ok(!verifyServerS2(s2, otherDigest), "S2 does not verify against another client's digest");
    const tamperedS1 = s1.slice();
    tamperedS1[HANDSHAKE_SIZE - 1] ^= 1;
    ok(!verifyServerS1(tamperedS1), "a tampered S1 fails");
    const tamperedS2 = s2.slice();
    tamperedS2[0] ^= 1;
    ok(!verifyServerS2(tamperedS2, found.digest), "a tampered S2 fails");
  });
}

Deno.test("handshake: C1 of the wrong size is an RtmpError", () => {
  for (const size of [0, 1, HANDSHAKE_SIZE - 1, HANDSHAKE_SIZE + 1, 2 * HANDSHAKE_SIZE]) {
    const c1 = new Uint8Array(size);
    if (size > 4) c1[4] = 9;
    throws(() => findClientDigest(c1), RtmpError, `findClientDigest, ${size} bytes`);
    throws(() => buildServerHandshake(c1, NOW), RtmpError, `buildServerHandshake, ${size} bytes`);
  }
});

Deno.test("handshake: a C1 with a version but no valid digest falls back to the simple echo", () => {
  const rand = mulberry32(0xc1c1);
  for (let i = 0; i < 50; i++) {
    const c1 = randomBlock(rand);
    c1.set([0x80, 0x00, 0x07, 0x02], 4);
    strictEqual(findClientDigest(c1), undefined, `case ${i}`);
    const { s0, s1, s2 } = split(buildServerHandshake(c1, NOW));
    strictEqual(s0, 3);
    strictEqual(u32(s1, 4), 0);
    assertEcho(c1, s2);
  }
  // A signed C1 with one digest byte flipped is no longer signed.
  const broken = buildSignedClientC1(0);
  const { digest } = findClientDigest(broken)!;
  const at = digest.byteOffset;
  broken[at] ^= 0xff;
  strictEqual(findClientDigest(broken), undefined);
  assertEcho(broken, split(buildServerHandshake(broken, NOW)).s2);
});

Deno.test("handshake: ffmpeg's recorded C1 is found signed with scheme 0", async () => {
  const session = await Deno.readFile(
    new URL("../fixtures/ffmpeg-publish-session.bin", import.meta.url),
  );
  strictEqual(session[0], 3, "C0 asks for RTMP 3");
  const c1 = session.slice(1, 1 + HANDSHAKE_SIZE);
  const found = findClientDigest(c1);
  ok(found);
  strictEqual(found.scheme, 0);
  const { s1, s2 } = split(buildServerHandshake(c1, NOW));
  ok(verifyServerS1(s1));
  ok(verifyServerS2(s2, found.digest));
});
