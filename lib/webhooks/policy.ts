/**
 * The delivery policy as pure functions: what an attempt's result means, and when
 * to try again. No I/O and no clock of their own, so tests can drive them exactly.
 *
 * @module
 */

/** How retries are spaced and when they stop. */
export interface RetryPolicy {
  /** Delay before the second attempt; each later one doubles it. */
  readonly baseMs: number;
  /** The longest delay between two attempts. */
  readonly maxDelayMs: number;
  /** Give up on an event this long after it was queued. */
  readonly horizonMs: number;
  /** Fraction of each delay that is random (0: none, 0.25: delay × [0.75, 1]). */
  readonly jitter: number;
}

/** The defaults: 1 s, 2 s, 4 s … capped at 10 min, for 24 h, with 25 % jitter. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  baseMs: 1000,
  maxDelayMs: 10 * 60_000,
  horizonMs: 24 * 3_600_000,
  jitter: 0.25,
};

/** What one HTTP attempt came back with. */
export interface AttemptResult {
  /** The response status, when a response arrived. */
  readonly status?: number;
  /** Why no response arrived (refused, reset, timeout, DNS …). */
  readonly error?: string;
  readonly durationMs: number;
  /** A `Retry-After` the receiver asked for, in milliseconds. */
  readonly retryAfterMs?: number;
  /** The start of the response body, for the deliveries log. */
  readonly responseSnippet?: string;
}

/** What to do with an event after an attempt. */
export type Verdict = "delivered" | "retry" | "final";

/**
 * A 2xx ends the event; a 4xx other than 408 and 429 is final (the receiver said
 * the request itself is wrong, and resending it will not change that); anything
 * else — no response, timeout, 3xx, 408, 429, 5xx — is worth another try.
 */
export function classify(result: AttemptResult): Verdict {
  const s = result.status;
  if (s === undefined) return "retry";
  if (s >= 200 && s < 300) return "delivered";
  if (s >= 400 && s < 500 && s !== 408 && s !== 429) return "final";
  return "retry";
}

/**
 * The delay after the `attempt`-th failed attempt (1-based): `base × 2^(attempt-1)`
 * capped at `maxDelayMs`, minus up to `jitter` of it so receivers that failed
 * together are not retried together. `random` is in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const exp = Math.min(
    policy.maxDelayMs,
    policy.baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 52),
  );
  return Math.max(1, Math.round(exp * (1 - policy.jitter * random())));
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds from `now`. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The next step for a queued event after a failed (non-final) attempt. */
export type RetryDecision =
  | { readonly kind: "retry"; readonly at: number }
  | { readonly kind: "give-up" };

/**
 * When to try again after failed attempt number `attempt` of an event queued at
 * `queuedAt`: after the backoff delay (or the receiver's `Retry-After`, both capped
 * at `maxDelayMs`), but never past the horizon; an attempt failing at or after the
 * horizon is the last.
 */
export function nextRetry(
  attempt: number,
  queuedAt: number,
  now: number,
  policy: RetryPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): RetryDecision {
  const deadline = queuedAt + policy.horizonMs;
  if (now >= deadline) return { kind: "give-up" };
  let delay = backoffDelay(attempt, policy, random);
  if (retryAfterMs !== undefined) {
    delay = Math.max(delay, Math.min(retryAfterMs, policy.maxDelayMs));
  }
  return { kind: "retry", at: Math.min(now + delay, deadline) };
}
