/**
 * The RTMP handshake, server side: C0/C1 → S0/S1/S2 → C2. Clients that sign C1
 * with the Flash Player digest scheme (librtmp, ffmpeg, OBS) get a signed S1/S2
 * back; plain clients get the simple echo.
 *
 * @module
 */
import { createHmac, randomFillSync } from "node:crypto";
import { RtmpError } from "./errors.ts";

/** Size of C1/S1/C2/S2. */
export const HANDSHAKE_SIZE = 1536;

const DIGEST_SIZE = 32;
const text = new TextEncoder();
// Protocol constants published with the handshake scheme: a fixed 32-byte tail
// follows each identity string to form the full HMAC keys.
const KEY_TAIL = new Uint8Array([
  0xf0,
  0xee,
  0xc2,
  0x4a,
  0x80,
  0x68,
  0xbe,
  0xe8,
  0x2e,
  0x00,
  0xd0,
  0xd1,
  0x02,
  0x9e,
  0x7e,
  0x57,
  0x6e,
  0xec,
  0x5d,
  0x2d,
  0x29,
  0x80,
  0x6f,
  0xab,
  0x93,
  0xb8,
  0xe6,
  0x36,
  0xcf,
  0xeb,
  0x31,
  0xae,
]);
const PLAYER_ID = text.encode("Genuine Adobe Flash Player 001");
const SERVER_ID = text.encode("Genuine Adobe Flash Media Server 001");
const SERVER_KEY_FULL = concat(SERVER_ID, KEY_TAIL);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}

/** Offset of the 32-byte digest in a 1536-byte block for scheme 0 or 1. */
function digestOffset(block: Uint8Array, scheme: 0 | 1): number {
  const base = scheme === 0 ? 8 : 772;
  const sum = block[base] + block[base + 1] + block[base + 2] + block[base + 3];
  return (sum % 728) + base + 4;
}

function blockDigest(block: Uint8Array, offset: number, key: Uint8Array): Uint8Array {
  return hmac(key, block.subarray(0, offset), block.subarray(offset + DIGEST_SIZE));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Finds the client's digest in C1: returns the digest bytes and the scheme used,
 * or undefined for a simple (unsigned) C1.
 */
export function findClientDigest(
  c1: Uint8Array,
): { scheme: 0 | 1; digest: Uint8Array } | undefined {
  if (c1.length !== HANDSHAKE_SIZE) {
    throw new RtmpError(`handshake: C1 must be ${HANDSHAKE_SIZE} bytes, got ${c1.length}`);
  }
  // A zero "version" field means the simple handshake.
  if (c1[4] === 0 && c1[5] === 0 && c1[6] === 0 && c1[7] === 0) return undefined;
  for (const scheme of [1, 0] as const) {
    const offset = digestOffset(c1, scheme);
    const digest = c1.subarray(offset, offset + DIGEST_SIZE);
    if (equal(digest, blockDigest(c1, offset, PLAYER_ID))) return { scheme, digest };
  }
  return undefined;
}

/**
 * Builds S0+S1+S2 for a given C1. For a signed C1 the S1 carries the server digest
 * and S2 is signed with a key derived from the client's digest; otherwise S2 echoes C1.
 */
export function buildServerHandshake(c1: Uint8Array, now = Date.now()): Uint8Array {
  const client = findClientDigest(c1);
  const out = new Uint8Array(1 + 2 * HANDSHAKE_SIZE);
  out[0] = 3;
  const s1 = out.subarray(1, 1 + HANDSHAKE_SIZE);
  const s2 = out.subarray(1 + HANDSHAKE_SIZE);
  randomFillSync(s1);
  const view = new DataView(s1.buffer, s1.byteOffset, s1.byteLength);
  view.setUint32(0, Math.floor(now / 1000) >>> 0);
  if (client) {
    // Server version, as servers that speak the signed scheme announce it.
    s1.set([0x04, 0x05, 0x00, 0x01], 4);
    const offset = digestOffset(s1, client.scheme);
    s1.set(blockDigest(s1, offset, SERVER_ID), offset);
    randomFillSync(s2);
    const key = hmac(SERVER_KEY_FULL, client.digest);
    const signature = hmac(key, s2.subarray(0, HANDSHAKE_SIZE - DIGEST_SIZE));
    s2.set(signature, HANDSHAKE_SIZE - DIGEST_SIZE);
  } else {
    view.setUint32(4, 0);
    s2.set(c1);
    // Echo C1's time; the second field is when we read it.
    new DataView(s2.buffer, s2.byteOffset, 8).setUint32(4, Math.floor(now / 1000) >>> 0);
  }
  return out;
}

/** Test helper for clients: builds a signed C1 the way librtmp does (scheme 0 or 1). */
export function buildSignedClientC1(scheme: 0 | 1 = 0): Uint8Array {
  const c1 = new Uint8Array(HANDSHAKE_SIZE);
  randomFillSync(c1);
  c1.set([0, 0, 0, 0, 0x80, 0x00, 0x07, 0x02]);
  const offset = digestOffset(c1, scheme);
  c1.set(blockDigest(c1, offset, PLAYER_ID), offset);
  return c1;
}

/** Verifies an S2 produced for a signed C1 (what a strict client checks). */
export function verifyServerS2(s2: Uint8Array, clientDigest: Uint8Array): boolean {
  const key = hmac(SERVER_KEY_FULL, clientDigest);
  const expected = hmac(key, s2.subarray(0, HANDSHAKE_SIZE - DIGEST_SIZE));
  return equal(expected, s2.subarray(HANDSHAKE_SIZE - DIGEST_SIZE));
}

/** Verifies the server digest in S1 (what ffmpeg checks when it plays). */
export function verifyServerS1(s1: Uint8Array): boolean {
  for (const scheme of [0, 1] as const) {
    const offset = digestOffset(s1, scheme);
    if (equal(s1.subarray(offset, offset + DIGEST_SIZE), blockDigest(s1, offset, SERVER_ID))) {
      return true;
    }
  }
  return false;
}
