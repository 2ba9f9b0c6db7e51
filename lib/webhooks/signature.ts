/**
 * Webhook signatures: `Sluice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
 * "<t>.<raw body>")>`, the scheme Stripe made familiar. The timestamp is signed with the
 * body so a captured delivery cannot be replayed later with a fresh `t`. HMAC runs
 * synchronously (node:crypto): a few microseconds, and no thread hop per delivery.
 *
 * @module
 */

import { createHmac } from "node:crypto";

const encoder = new TextEncoder();

/** The name of the signature header. */
export const SIGNATURE_HEADER = "Sluice-Signature";

/** Bytes of randomness in a generated secret (256 bits). */
const SECRET_BYTES = 32;

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** A new random signing secret, `whsec_` + 43 base64url characters. */
export function generateSecret(): string {
  return `whsec_${base64url(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)))}`;
}

function hmacHex(secret: string, message: Uint8Array): string {
  return createHmac("sha256", secret).update(message).digest("hex");
}

function signedMessage(timestamp: number, body: string | Uint8Array): Uint8Array {
  const prefix = encoder.encode(`${timestamp}.`);
  const raw = typeof body === "string" ? encoder.encode(body) : body;
  const out = new Uint8Array(prefix.length + raw.length);
  out.set(prefix);
  out.set(raw, prefix.length);
  return out;
}

/**
 * The `Sluice-Signature` value for `body` sent at `timestamp` (unix seconds). The key is
 * the UTF-8 bytes of the whole secret string, `whsec_` prefix included.
 */
export function signatureHeader(
  secret: string,
  timestamp: number,
  body: string | Uint8Array,
): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError(`timestamp: expected unix seconds, got ${timestamp}`);
  }
  return `t=${timestamp},v1=${hmacHex(secret, signedMessage(timestamp, body))}`;
}

/** A parsed `Sluice-Signature` value. */
export interface ParsedSignature {
  readonly timestamp: number;
  /** Every `v1=` value (a receiver accepts any that matches, for secret rotation). */
  readonly v1: readonly string[];
}

/** Parses `t=<n>,v1=<hex>[,v1=<hex>…]`; undefined when malformed. */
export function parseSignatureHeader(value: string): ParsedSignature | undefined {
  let timestamp: number | undefined;
  const v1: string[] = [];
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) return undefined;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === "t") {
      if (!/^\d{1,12}$/.test(v)) return undefined;
      timestamp = Number(v);
    } else if (k === "v1") {
      if (!/^[0-9a-f]{64}$/.test(v)) return undefined;
      v1.push(v);
    }
  }
  return timestamp === undefined || v1.length === 0 ? undefined : { timestamp, v1 };
}

/** Why {@linkcode verifySignature} refused. */
export type VerifyFailure = "malformed" | "stale" | "mismatch";

/**
 * Checks a delivery the way a receiver should: parse the header, refuse timestamps
 * further than `toleranceSeconds` from `now`, compare the HMAC in constant time.
 */
export function verifySignature(
  secret: string,
  header: string | null,
  body: string | Uint8Array,
  options: { toleranceSeconds?: number; now?: number } = {},
): { ok: true } | { ok: false; reason: VerifyFailure } {
  const parsed = header ? parseSignatureHeader(header) : undefined;
  if (!parsed) return { ok: false, reason: "malformed" };
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(now - parsed.timestamp) > (options.toleranceSeconds ?? 300)) {
    return { ok: false, reason: "stale" };
  }
  const expected = hmacHex(secret, signedMessage(parsed.timestamp, body));
  return parsed.v1.some((v) => constantTimeEqual(v, expected))
    ? { ok: true }
    : { ok: false, reason: "mismatch" };
}

/** String equality whose time does not depend on where the strings differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
