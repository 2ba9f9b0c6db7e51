/**
 * Test doubles for the webhook unit tests: a manual clock, a scripted sender that
 * records every request, and a quiet logger.
 *
 * @module
 */
import type { AttemptResult, Clock, OutgoingRequest, Sender } from "../../lib/webhooks/mod.ts";
import { logger } from "../../lib/log.ts";

/** A logger that goes nowhere (logging is not configured in unit tests). */
export const quietLog = logger("test", "webhooks");

/** Lets pending promise chains and real async ops (WebCrypto) run. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0));
}

/** A clock that moves only when told to, firing its timers in order. */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.parse("2026-01-01T00:00:00Z")) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers armed now. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer due on the way (and what they cause). */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    while (true) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}

/** One request the fake sender saw. */
export interface SentRequest {
  readonly at: number;
  readonly request: OutgoingRequest;
  readonly eventId: string;
  readonly body: { id: string; type: string; at: string; room?: string; reason?: string };
}

/** How the fake receiver answers a request (a status, a failure, or a promise of either). */
export type Answer = number | { error: string } | Promise<number | { error: string }>;

/** A sender whose receiver is a function; every request is recorded. */
export class FakeReceiver {
  readonly sent: SentRequest[] = [];
  inFlight = 0;
  maxInFlight = 0;
  answer: (r: SentRequest) => Answer = () => 200;
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  readonly sender: Sender = async (request, signal): Promise<AttemptResult> => {
    const r: SentRequest = {
      at: this.#clock.now(),
      request,
      eventId: request.headers["sluice-event-id"],
      body: JSON.parse(request.body),
    };
    this.sent.push(r);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const aborted = new Promise<{ error: string }>((resolve) => {
        if (signal.aborted) resolve({ error: "aborted" });
        signal.addEventListener("abort", () => resolve({ error: "aborted" }), { once: true });
      });
      const a = await Promise.race([Promise.resolve(this.answer(r)), aborted]);
      return typeof a === "number"
        ? { status: a, durationMs: 1, responseSnippet: a >= 300 ? `answer ${a}` : "" }
        : { error: a.error, durationMs: 1 };
    } finally {
      this.inFlight--;
    }
  };

  /** The requests for `url`'s subscriber, or all. */
  to(url?: string): SentRequest[] {
    return url ? this.sent.filter((s) => s.request.url === url) : this.sent;
  }
}

/** A promise with its resolve function outside. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}
