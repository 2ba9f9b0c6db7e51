/**
 * The webhook service: subscriptions (from the admin API and from the config), room
 * events turned into queued deliveries, the dispatcher that sends them, and the
 * views the admin API shows. HTTP-agnostic: the API layer maps its errors to codes.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { RoomEvent, StreamInfo } from "../room/mod.ts";
import { type Clock, Dispatcher, signedRequest, systemClock } from "./dispatcher.ts";
import { newEventId, pingPayload, roomEventPayload } from "./payload.ts";
import { classify, DEFAULT_RETRY_POLICY, type RetryPolicy } from "./policy.ts";
import { httpSender, type Sender } from "./sender.ts";
import { generateSecret } from "./signature.ts";
import {
  type DeliveryOutcome,
  type DeliveryRecord,
  type DueDelivery,
  type Subscription,
  type SubscriptionSource,
  WebhookStore,
} from "./store.ts";
import type { SubscriptionInput, SubscriptionPatch, WebhookEventType } from "./validate.ts";

/** A subscription as the admin API shows it: never with its secret. */
export interface SubscriptionView {
  readonly id: string;
  readonly url: string;
  /** null: every room. */
  readonly rooms: readonly string[] | null;
  readonly events: readonly WebhookEventType[];
  readonly description: string;
  readonly enabled: boolean;
  readonly source: SubscriptionSource;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Events queued for this subscriber now (waiting, or being retried). */
  readonly pending: number;
}

/** One attempt as the admin API shows it. */
export interface DeliveryView {
  readonly id: number;
  readonly eventId: string;
  readonly type: string;
  readonly room: string | null;
  readonly attempt: number;
  readonly at: string;
  /** `delivered`, `retrying` (another attempt is scheduled), `failed` (final 4xx), `gave_up`. */
  readonly status: DeliveryOutcome;
  /** The receiver's HTTP status, when it answered. */
  readonly responseCode: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  /** The start of the receiver's answer when it was not a 2xx. */
  readonly response: string | null;
  readonly nextAttemptAt: string | null;
}

/** A subscription defined by `--webhook` or `--webhooks-file`. */
export interface ConfigSubscription extends SubscriptionInput {
  readonly id: string;
  readonly secret: string;
}

/** No subscription with that id. */
export class WebhookNotFoundError extends Error {
  override name = "WebhookNotFoundError";
}

/** The request conflicts with the state (config-defined subscription, too many). */
export class WebhookConflictError extends Error {
  override name = "WebhookConflictError";
}

/** Options of {@linkcode WebhookService.open}. */
export interface WebhookServiceOptions {
  /** Called with each attempt's outcome (metrics). */
  readonly onSettled?: (delivery: DueDelivery, outcome: DeliveryOutcome) => void;
  /** The SQLite file (`<data-dir>/webhooks.db`), or `":memory:"` in tests. */
  readonly databasePath: string;
  readonly retry?: RetryPolicy;
  /** Per-attempt timeout. */
  readonly timeoutMs: number;
  readonly maxInFlight?: number;
  readonly maxInFlightPerSubscription?: number;
  readonly maxSubscriptions?: number;
  /** Subscriptions the config defines; they replace the config ones stored before. */
  readonly configSubscriptions?: readonly ConfigSubscription[];
  readonly log: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** How attempts are sent (defaults to `fetch` with `timeoutMs`). */
  readonly sender?: Sender;
}

interface Cached {
  readonly sub: Subscription;
  readonly rooms: ReadonlySet<string> | null;
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Subscriptions, the durable queue and its dispatcher. */
export class WebhookService {
  readonly #store: WebhookStore;
  readonly #dispatcher: Dispatcher;
  readonly #subs = new Map<string, Cached>();
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #sender: Sender;
  readonly #maxSubscriptions: number;
  readonly #abort = new AbortController();
  #closed: Promise<void> | undefined;

  private constructor(store: WebhookStore, options: WebhookServiceOptions) {
    this.#store = store;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
    this.#maxSubscriptions = options.maxSubscriptions ?? 10_000;
    this.#sender = options.sender ?? httpSender({ timeoutMs: options.timeoutMs });
    for (const sub of store.listSubscriptions()) this.#cache(sub);
    this.#dispatcher = new Dispatcher({
      store,
      sender: this.#sender,
      retry: options.retry ?? DEFAULT_RETRY_POLICY,
      maxInFlight: options.maxInFlight ?? 16,
      maxInFlightPerSubscription: options.maxInFlightPerSubscription ?? 4,
      subscription: (id) => this.#subs.get(id)?.sub,
      clock: this.#clock,
      random: options.random,
      log: options.log,
      onSettled: options.onSettled,
    });
  }

  /**
   * Opens the database, applies the config's subscriptions, queues a `stream.stopped`
   * (reason `error`) for rooms that were live when Sluice last died without a
   * graceful stop, and starts delivering (what an earlier run left queued goes first,
   * without waiting for the rest of its backoff).
   */
  static open(options: WebhookServiceOptions): WebhookService {
    const store = new WebhookStore(options.databasePath);
    let service: WebhookService;
    try {
      if (options.configSubscriptions) {
        syncConfigSubscriptions(store, options.configSubscriptions, options.clock ?? systemClock);
      }
      service = new WebhookService(store, options);
      // A restart is a fresh chance: what waited for a backoff from the last run goes now.
      store.dueNow(service.#clock.now());
      service.#recoverLiveRooms();
    } catch (err) {
      store.close();
      throw err;
    }
    service.#dispatcher.start();
    const queued = store.queueLength();
    options.log.info("{subscriptions} webhook subscriptions, {queued} deliveries queued", {
      subscriptions: service.#subs.size,
      queued,
    });
    return service;
  }

  #cache(sub: Subscription): void {
    this.#subs.set(sub.id, { sub, rooms: sub.rooms === null ? null : new Set(sub.rooms) });
  }

  #recoverLiveRooms(): void {
    for (const live of this.#store.liveRooms()) {
      this.#log.warn(
        "room {room} was live when Sluice stopped without a graceful shutdown; sending stream.stopped (reason error)",
        { room: live.room },
      );
      let stream: StreamInfo;
      try {
        stream = JSON.parse(live.stream);
      } catch {
        stream = { bFrames: false, frames: { video: 0, audio: 0, keyframes: 0 } };
      }
      this.handleRoomEvent({
        type: "stream.stopped",
        room: live.room,
        at: new Date(this.#clock.now()),
        stream,
        reason: "error",
      });
    }
  }

  /**
   * Queues a room event for every matching subscriber, durably, before returning.
   * Never throws (it runs inside the room's event fan-out) and never waits on a receiver.
   */
  handleRoomEvent(event: RoomEvent): void {
    try {
      const now = this.#clock.now();
      const id = newEventId();
      const targets: string[] = [];
      for (const { sub, rooms } of this.#subs.values()) {
        if (!sub.enabled || !sub.events.includes(event.type)) continue;
        if (rooms && !rooms.has(event.room)) continue;
        targets.push(sub.id);
      }
      this.#store.transaction(() => {
        this.#store.enqueue(
          {
            id,
            type: event.type,
            room: event.room,
            body: JSON.stringify(roomEventPayload(id, event)),
          },
          targets,
          now,
        );
        if (event.type === "stream.started") {
          this.#store.setLive(event.room, JSON.stringify(event.stream), now);
        } else {
          this.#store.clearLive(event.room);
        }
      });
      if (targets.length > 0) {
        this.#log.debug("{type} of room {room} queued for {n} webhook subscribers as {event}", {
          type: event.type,
          room: event.room,
          n: targets.length,
          event: id,
        });
        this.#dispatcher.wake();
      }
    } catch (err) {
      this.#log.error("cannot queue {type} of room {room} for webhooks: {error}", {
        type: event.type,
        room: event.room,
        error: String(err),
      });
    }
  }

  #view(sub: Subscription, pending: number): SubscriptionView {
    return {
      id: sub.id,
      url: sub.url,
      rooms: sub.rooms,
      events: sub.events,
      description: sub.description,
      enabled: sub.enabled,
      source: sub.source,
      createdAt: iso(sub.createdAt),
      updatedAt: iso(sub.updatedAt),
      pending,
    };
  }

  /** Every subscription, oldest first. */
  list(): SubscriptionView[] {
    const pending = this.#store.pendingCounts();
    // The cache is in creation order: loaded oldest first, new ones appended.
    return [...this.#subs.values()].map(({ sub }) => this.#view(sub, pending.get(sub.id) ?? 0));
  }

  /** One subscription. */
  get(id: string): SubscriptionView | undefined {
    const sub = this.#subs.get(id)?.sub;
    return sub ? this.#view(sub, this.#store.pendingCounts().get(id) ?? 0) : undefined;
  }

  /** Creates a subscription; the secret (given or generated) is returned here only. */
  create(input: SubscriptionInput): { subscription: SubscriptionView; secret: string } {
    if (this.#subs.size >= this.#maxSubscriptions) {
      throw new WebhookConflictError(`too many webhooks (at most ${this.#maxSubscriptions})`);
    }
    const now = this.#clock.now();
    const sub: Subscription = {
      id: `wh_${randomHex(10)}`,
      url: input.url,
      secret: input.secret ?? generateSecret(),
      rooms: input.rooms,
      events: input.events,
      description: input.description,
      enabled: input.enabled,
      source: "api",
      createdAt: now,
      updatedAt: now,
    };
    this.#store.putSubscription(sub);
    this.#cache(sub);
    return { subscription: this.#view(sub, 0), secret: sub.secret };
  }

  #mutable(id: string): Subscription {
    const sub = this.#subs.get(id)?.sub;
    if (!sub) throw new WebhookNotFoundError(`no webhook ${id}`);
    if (sub.source === "config") {
      throw new WebhookConflictError(
        `webhook ${id} comes from the config (--webhook or --webhooks-file); change it there`,
      );
    }
    return sub;
  }

  /** Changes a subscription made through the API. Queued events stay queued. */
  update(id: string, patch: SubscriptionPatch): SubscriptionView {
    const sub = this.#mutable(id);
    const next: Subscription = {
      ...sub,
      ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
      updatedAt: this.#clock.now(),
    };
    this.#store.putSubscription(next);
    this.#cache(next);
    this.#dispatcher.wake();
    return this.get(id)!;
  }

  /** Deletes a subscription made through the API, with its queue; false when unknown. */
  delete(id: string): boolean {
    if (!this.#subs.has(id)) return false;
    this.#mutable(id);
    this.#subs.delete(id);
    return this.#store.deleteSubscription(id);
  }

  /** The newest attempts to a subscription, newest first. */
  deliveries(id: string, limit = 50): DeliveryView[] {
    if (!this.#subs.has(id)) throw new WebhookNotFoundError(`no webhook ${id}`);
    return this.#store.deliveries(id, limit).map((d) => deliveryView(d));
  }

  /** Sends one `ping` now (once, no retry), records it, and returns the attempt. */
  async ping(id: string): Promise<DeliveryView> {
    const sub = this.#subs.get(id)?.sub;
    if (!sub) throw new WebhookNotFoundError(`no webhook ${id}`);
    const startedAt = this.#clock.now();
    const eventId = newEventId();
    const body = JSON.stringify(pingPayload(eventId, id, new Date(startedAt)));
    const request = signedRequest(sub, { eventId, type: "ping", body }, 1, startedAt);
    const result = await this.#sender(request, this.#abort.signal);
    const delivered = classify(result) === "delivered";
    const record: DeliveryRecord = {
      subscriptionId: id,
      eventId,
      type: "ping",
      room: null,
      attempt: 1,
      at: startedAt,
      outcome: delivered ? "delivered" : "failed",
      status: result.status ?? null,
      durationMs: result.durationMs,
      error: result.error ?? (delivered ? null : `HTTP ${result.status}`),
      response: delivered ? null : result.responseSnippet || null,
      nextAt: null,
    };
    const recorded = this.#abort.signal.aborted ? undefined : this.#store.recordAttempt(record);
    return deliveryView({ ...record, id: recorded ?? 0 });
  }

  /** Queue and dispatcher figures. */
  stats(): { subscriptions: number; queued: number; inFlight: number } {
    return {
      subscriptions: this.#subs.size,
      queued: this.#store.queueLength(),
      inFlight: this.#dispatcher.inFlight,
    };
  }

  /**
   * Lets queued deliveries run for up to `timeoutMs` (at shutdown: the `stream.stopped`
   * events of rooms just ended); true when nothing was left due within that time.
   */
  drain(timeoutMs: number): Promise<boolean> {
    return this.#dispatcher.drain(timeoutMs);
  }

  /** Stops delivering (what is still queued stays on disk for the next start) and closes. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#abort.abort();
      await this.#dispatcher.stop();
      this.#store.close();
    })();
    return this.#closed;
  }
}

function deliveryView(d: DeliveryRecord & { id: number }): DeliveryView {
  return {
    id: d.id,
    eventId: d.eventId,
    type: d.type,
    room: d.room,
    attempt: d.attempt,
    at: iso(d.at),
    status: d.outcome,
    responseCode: d.status,
    durationMs: Math.round(d.durationMs),
    error: d.error,
    response: d.response,
    nextAttemptAt: d.nextAt === null ? null : iso(d.nextAt),
  };
}

/** Makes the stored config subscriptions exactly `wanted` (queues of kept ones stay). */
function syncConfigSubscriptions(
  store: WebhookStore,
  wanted: readonly ConfigSubscription[],
  clock: Clock,
): void {
  const now = clock.now();
  store.transaction(() => {
    const keep = new Set(wanted.map((w) => w.id));
    for (const old of store.listSubscriptions()) {
      if (old.source === "config" && !keep.has(old.id)) store.deleteSubscription(old.id);
    }
    for (const w of wanted) {
      const old = store.getSubscription(w.id);
      store.putSubscription({
        id: w.id,
        url: w.url,
        secret: w.secret,
        rooms: w.rooms,
        events: w.events,
        description: w.description,
        enabled: w.enabled,
        source: "config",
        createdAt: old?.createdAt ?? now,
        updatedAt: now,
      });
    }
  });
}
