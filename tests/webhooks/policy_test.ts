/**
 * The delivery policy: which answers end an event, which are retried, and the
 * backoff schedule with its jitter, cap, Retry-After and horizon.
 */
import assert from "node:assert/strict";
import {
  backoffDelay,
  classify,
  DEFAULT_RETRY_POLICY,
  nextRetry,
  parseRetryAfter,
  type RetryPolicy,
} from "../../lib/webhooks/mod.ts";

const noJitter = () => 0;

Deno.test("policy: 2xx delivers, 4xx but 408/429 is final, the rest is retried", () => {
  const at = (status?: number, error?: string) => classify({ status, error, durationMs: 1 });
  for (const s of [200, 201, 202, 204, 299]) assert.equal(at(s), "delivered", String(s));
  for (const s of [400, 401, 403, 404, 410, 413, 422, 499]) assert.equal(at(s), "final", String(s));
  for (const s of [408, 429, 500, 502, 503, 504, 301, 302, 100]) {
    assert.equal(at(s), "retry", String(s));
  }
  assert.equal(at(undefined, "connection refused"), "retry");
  assert.equal(at(undefined, "timed out after 10000 ms"), "retry");
});

Deno.test("policy: backoff doubles from the base up to the cap", () => {
  const p = DEFAULT_RETRY_POLICY;
  const delays = Array.from({ length: 12 }, (_, i) => backoffDelay(i + 1, p, noJitter));
  assert.deepEqual(delays, [
    1000,
    2000,
    4000,
    8000,
    16_000,
    32_000,
    64_000,
    128_000,
    256_000,
    512_000,
    600_000,
    600_000,
  ]);
  // Enormous attempt counts stay finite and capped.
  assert.equal(backoffDelay(10_000, p, noJitter), 600_000);
});

Deno.test("policy: jitter takes up to a quarter off, never adds", () => {
  const p = DEFAULT_RETRY_POLICY;
  assert.equal(backoffDelay(3, p, () => 0.999999), 3000);
  assert.equal(backoffDelay(3, p, () => 0.5), 3500);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(11, p);
    assert.ok(d > 450_000 && d <= 600_000, String(d));
    seen.add(d);
  }
  assert.ok(seen.size > 100, "jitter spreads retries");
});

Deno.test("policy: retries stop at the horizon, the last one lands on it", () => {
  const p: RetryPolicy = { baseMs: 1000, maxDelayMs: 60_000, horizonMs: 10_000, jitter: 0 };
  const queuedAt = 1_000_000;
  assert.deepEqual(nextRetry(1, queuedAt, queuedAt, p, undefined, noJitter), {
    kind: "retry",
    at: queuedAt + 1000,
  });
  // 8 s would pass the horizon: the last attempt is at the horizon itself.
  assert.deepEqual(nextRetry(4, queuedAt, queuedAt + 7000, p, undefined, noJitter), {
    kind: "retry",
    at: queuedAt + 10_000,
  });
  assert.deepEqual(nextRetry(5, queuedAt, queuedAt + 10_000, p, undefined, noJitter), {
    kind: "give-up",
  });
});

Deno.test("policy: Retry-After stretches a delay, within the cap", () => {
  const p: RetryPolicy = { baseMs: 1000, maxDelayMs: 60_000, horizonMs: 3_600_000, jitter: 0 };
  assert.deepEqual(nextRetry(1, 0, 0, p, 30_000, noJitter), { kind: "retry", at: 30_000 });
  assert.deepEqual(nextRetry(1, 0, 0, p, 3_600_000, noJitter), { kind: "retry", at: 60_000 });
  assert.deepEqual(nextRetry(1, 0, 0, p, 10, noJitter), { kind: "retry", at: 1000 });
});

Deno.test("policy: Retry-After as seconds or an HTTP date", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:01:00 GMT", now), 60_000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(parseRetryAfter("-5", now), undefined);
});
