/**
 * The delivery loop: takes the due head of each (subscription, room) queue from the
 * store, sends it, and settles the outcome — in order per room and subscriber, with
 * bounded concurrency overall and per subscriber, so a slow receiver delays only its
 * own queues and never the media path.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { classify, nextRetry, type RetryPolicy } from "./policy.ts";
import type { AttemptResult } from "./policy.ts";
import type { OutgoingRequest, Sender } from "./sender.ts";
import { signatureHeader } from "./signature.ts";
import type { DeliveryOutcome, DueDelivery, Subscription, WebhookStore } from "./store.ts";
import { redactUrl } from "./validate.ts";

/** Time and timers, injectable so tests can run hours of retries in no time. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as number),
};

/** Options of a {@linkcode Dispatcher}. */
export interface DispatcherOptions {
  readonly store: WebhookStore;
  readonly sender: Sender;
  readonly retry: RetryPolicy;
  /** Attempts in flight at once, all subscribers together. */
  readonly maxInFlight: number;
  /** Attempts in flight at once to one subscriber (over different rooms). */
  readonly maxInFlightPerSubscription: number;
  /** The subscription of an id (defaults to reading the store). */
  readonly subscription?: (id: string) => Subscription | undefined;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly log?: Logger;
  readonly userAgent?: string;
  /** Called after each settled attempt (tests, metrics). */
  readonly onSettled?: (delivery: DueDelivery, outcome: DeliveryOutcome) => void;
}

// setTimeout's longest delay; a later due time just wakes the loop once more.
const MAX_TIMER_MS = 2 ** 31 - 1;
// Heads read per pass; enough to fill every free slot past blocked queues.
const HEADS_PER_PASS = 1000;
// How long a queue waits after an attempt failed inside Sluice.
const COOLDOWN_MS = 5000;

/** The default `User-Agent` of deliveries. */
export const USER_AGENT = "Sluice-Webhooks/1";

/** The request of one attempt: the stored body, signed now, with the event headers. */
export function signedRequest(
  subscription: Pick<Subscription, "id" | "url" | "secret">,
  event: { readonly eventId: string; readonly type: string; readonly body: string },
  attempt: number,
  nowMs: number,
  userAgent = USER_AGENT,
): OutgoingRequest {
  const t = Math.floor(nowMs / 1000);
  return {
    url: subscription.url,
    body: event.body,
    headers: {
      "content-type": "application/json",
      "user-agent": userAgent,
      "sluice-event-id": event.eventId,
      "sluice-event-type": event.type,
      "sluice-webhook-id": subscription.id,
      "sluice-delivery-attempt": String(attempt),
      "sluice-signature": signatureHeader(subscription.secret, t, event.body),
    },
  };
}

/** Runs deliveries until stopped. */
export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #subscription: (id: string) => Subscription | undefined;
  readonly #inFlight = new Map<string, AbortController>();
  readonly #perSubscription = new Map<string, number>();
  readonly #running = new Set<Promise<void>>();
  /** Queues whose last attempt failed inside Sluice (not at the receiver), until when. */
  readonly #cooldown = new Map<string, number>();
  readonly #drainWaiters = new Set<{ deadline: number; resolve: (idle: boolean) => void }>();
  #timer: unknown;
  #pumpQueued = false;
  #started = false;
  #stopped = false;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#subscription = options.subscription ?? ((id) => options.store.getSubscription(id));
  }

  /** Attempts in flight now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Starts the loop (queued deliveries from an earlier run go first). */
  start(): void {
    this.#started = true;
    this.wake();
  }

  /** There may be new work (an event was queued, a subscription enabled). */
  wake(): void {
    if (!this.#started || this.#stopped || this.#pumpQueued) return;
    this.#pumpQueued = true;
    queueMicrotask(() => this.#pump());
  }

  #pump(): void {
    this.#pumpQueued = false;
    if (this.#stopped) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = this.#clock.now();
    try {
      if (this.#inFlight.size < this.#o.maxInFlight) {
        for (const d of this.#o.store.dueHeads(now, HEADS_PER_PASS)) {
          if (this.#inFlight.size >= this.#o.maxInFlight) break;
          const key = `${d.subscriptionId}\n${d.room}`;
          if (this.#inFlight.has(key)) continue;
          if ((this.#cooldown.get(key) ?? 0) > now) continue;
          this.#cooldown.delete(key);
          if (
            (this.#perSubscription.get(d.subscriptionId) ?? 0) >= this.#o.maxInFlightPerSubscription
          ) {
            continue;
          }
          const subscription = this.#subscription(d.subscriptionId);
          if (!subscription) continue;
          this.#begin(key, d, subscription);
        }
      }
      const next = this.#o.store.nextDueAfter(now);
      if (next !== undefined) {
        this.#timer = this.#clock.setTimeout(
          () => {
            this.#timer = undefined;
            this.wake();
          },
          Math.min(MAX_TIMER_MS, next - now),
        );
      }
    } catch (err) {
      this.#o.log?.error("webhook dispatcher failed: {error}", { error: String(err) });
    }
    this.#checkDrains();
  }

  #begin(key: string, d: DueDelivery, subscription: Subscription): void {
    const controller = new AbortController();
    this.#inFlight.set(key, controller);
    this.#perSubscription.set(
      subscription.id,
      (this.#perSubscription.get(subscription.id) ?? 0) + 1,
    );
    const run = this.#attempt(d, subscription, controller.signal)
      .catch((err) => {
        // E.g. the disk is full and the outcome could not be stored: the event is still
        // due, so hold its queue back a while instead of resending it in a tight loop.
        this.#o.log?.error("webhook delivery {event} failed unexpectedly: {error}", {
          event: d.eventId,
          error: String(err),
        });
        this.#cooldown.set(key, this.#clock.now() + COOLDOWN_MS);
        this.#clock.setTimeout(() => this.wake(), COOLDOWN_MS);
      })
      .finally(() => {
        this.#inFlight.delete(key);
        const n = (this.#perSubscription.get(subscription.id) ?? 1) - 1;
        if (n > 0) this.#perSubscription.set(subscription.id, n);
        else this.#perSubscription.delete(subscription.id);
        this.#running.delete(run);
        this.wake();
        this.#checkDrains();
      });
    this.#running.add(run);
  }

  async #attempt(d: DueDelivery, s: Subscription, signal: AbortSignal): Promise<void> {
    const startedAt = this.#clock.now();
    const attempt = d.attempts + 1;
    const request = signedRequest(s, d, attempt, startedAt, this.#o.userAgent);
    const result = await this.#o.sender(request, signal);
    // Stopping: leave the event queued untouched; the next start sends it again.
    if (signal.aborted || this.#stopped) return;
    this.#settle(d, s, attempt, startedAt, result);
  }

  #settle(
    d: DueDelivery,
    s: Subscription,
    attempt: number,
    startedAt: number,
    result: AttemptResult,
  ): void {
    const store = this.#o.store;
    const now = this.#clock.now();
    const verdict = classify(result);
    const error = result.error ?? (verdict === "delivered" ? null : `HTTP ${result.status}`);
    let outcome: DeliveryOutcome;
    let nextAt: number | null = null;
    if (verdict === "delivered") {
      outcome = "delivered";
    } else if (verdict === "final") {
      outcome = "failed";
    } else {
      const decision = nextRetry(
        attempt,
        d.queuedAt,
        now,
        this.#o.retry,
        result.retryAfterMs,
        this.#random,
      );
      if (decision.kind === "retry") {
        outcome = "retrying";
        nextAt = decision.at;
      } else {
        outcome = "gave_up";
      }
    }
    store.transaction(() => {
      if (nextAt !== null) store.reschedule(d.seq, attempt, nextAt, error ?? "");
      else store.finish(d.seq);
      store.recordAttempt({
        subscriptionId: s.id,
        eventId: d.eventId,
        type: d.type,
        room: d.room,
        attempt,
        at: startedAt,
        outcome,
        status: result.status ?? null,
        durationMs: result.durationMs,
        error,
        response: outcome === "delivered" ? null : result.responseSnippet || null,
        nextAt,
      });
    });
    const props = {
      event: d.eventId,
      type: d.type,
      room: d.room,
      webhook: s.id,
      url: redactUrl(s.url),
      attempt,
      error,
      retryInMs: nextAt === null ? undefined : nextAt - now,
    };
    const log = this.#o.log;
    if (outcome === "delivered") {
      log?.debug("webhook {webhook}: {type} {event} of room {room} delivered", props);
    } else if (outcome === "failed") {
      log?.warn(
        "webhook {webhook} ({url}) refused {type} {event} of room {room} with {error}; not retried",
        props,
      );
    } else if (outcome === "gave_up") {
      log?.warn(
        "webhook {webhook} ({url}): gave up on {type} {event} of room {room} after {attempt} attempts ({error})",
        props,
      );
    } else if (attempt === 1) {
      // The first failure says the receiver is in trouble; the retries after it only repeat that.
      log?.warn(
        "webhook {webhook} ({url}): {type} {event} of room {room} failed ({error}); retrying with backoff",
        props,
      );
    } else {
      log?.debug("webhook {webhook}: attempt {attempt} of {event} failed ({error})", props);
    }
    this.#o.onSettled?.(d, outcome);
  }

  #checkDrains(): void {
    if (this.#drainWaiters.size === 0) return;
    let earliest: number | undefined;
    try {
      earliest = this.#inFlight.size > 0 ? -1 : this.#o.store.nextDueAfter(-1);
    } catch {
      earliest = undefined;
    }
    for (const w of this.#drainWaiters) {
      if (earliest === undefined || earliest > w.deadline) {
        this.#drainWaiters.delete(w);
        w.resolve(true);
      }
    }
  }

  /**
   * Waits until nothing is in flight and nothing comes due within `timeoutMs`
   * (true), or `timeoutMs` passes (false). Deliveries keep running meanwhile.
   */
  drain(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const deadline = this.#clock.now() + timeoutMs;
      const timer = this.#clock.setTimeout(() => {
        this.#drainWaiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      const waiter = {
        deadline,
        resolve: (idle: boolean) => {
          this.#clock.clearTimeout(timer);
          resolve(idle);
        },
      };
      this.#drainWaiters.add(waiter);
      this.wake();
      this.#checkDrains();
    });
  }

  /** Stops the loop, aborting attempts in flight (their events stay queued). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const c of this.#inFlight.values()) c.abort();
    await Promise.allSettled([...this.#running]);
    for (const w of this.#drainWaiters) w.resolve(false);
    this.#drainWaiters.clear();
  }
}
