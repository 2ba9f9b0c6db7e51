/**
 * The durable side of webhooks: subscriptions, the delivery queue, the recent
 * attempts and the rooms live now, in one SQLite file under `--data-dir`.
 *
 * Why `node:sqlite`: it is built into Deno 2 (no native addon to ship, works in
 * `deno compile` binaries), synchronous (a room event is queued before the listener
 * returns, so nothing sits only in memory), and SQLite's WAL gives crash safety.
 * With `synchronous=NORMAL` a committed transaction survives a kill -9 of Sluice
 * (the WAL is in the OS page cache); only a power loss can drop the last commits,
 * and in exchange no commit waits for an fsync on the event loop that carries media.
 * `locking_mode=EXCLUSIVE` keeps a second Sluice off the same queue; the OS drops the
 * lock when the process dies, however it dies.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import type { WebhookEventType } from "./validate.ts";

/** Where a subscription came from: the admin API, or `--webhook`/`--webhooks-file`. */
export type SubscriptionSource = "api" | "config";

/** A stored subscription, secret included (never serialise this as is). */
export interface Subscription {
  readonly id: string;
  readonly url: string;
  readonly secret: string;
  /** null: every room. */
  readonly rooms: readonly string[] | null;
  readonly events: readonly WebhookEventType[];
  readonly description: string;
  readonly enabled: boolean;
  readonly source: SubscriptionSource;
  /** Unix milliseconds. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** An event to queue: its id, its room, and the exact body every subscriber gets. */
export interface QueuedEvent {
  readonly id: string;
  readonly type: string;
  readonly room: string;
  readonly body: string;
}

/** The head of one (subscription, room) queue, due for an attempt. */
export interface DueDelivery {
  readonly seq: number;
  readonly subscriptionId: string;
  readonly eventId: string;
  readonly type: string;
  readonly room: string;
  readonly body: string;
  /** When the event was queued (unix ms); the retry horizon counts from here. */
  readonly queuedAt: number;
  readonly nextAt: number;
  /** Attempts made so far. */
  readonly attempts: number;
}

/** How one attempt ended, as the deliveries log keeps it. */
export type DeliveryOutcome = "delivered" | "retrying" | "failed" | "gave_up";

/** One attempt in the deliveries log. */
export interface DeliveryRecord {
  readonly subscriptionId: string;
  readonly eventId: string;
  readonly type: string;
  readonly room: string | null;
  /** 1 for the first attempt of this event to this subscriber. */
  readonly attempt: number;
  /** When the attempt started (unix ms). */
  readonly at: number;
  readonly outcome: DeliveryOutcome;
  readonly status: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  readonly response: string | null;
  /** For `retrying`: when the next attempt is due (unix ms). */
  readonly nextAt: number | null;
}

/** A room that was live when last seen, with the stream it had. */
export interface LiveRoom {
  readonly room: string;
  readonly stream: string;
  readonly startedAt: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS subscriptions (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  secret TEXT NOT NULL,
  rooms TEXT,
  events TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  enabled INTEGER NOT NULL DEFAULT 1,
  source TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  room TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
  event_id TEXT NOT NULL REFERENCES events(id),
  room TEXT NOT NULL,
  queued_at INTEGER NOT NULL,
  next_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS queue_by_stream ON queue(subscription_id, room, seq);
CREATE INDEX IF NOT EXISTS queue_by_event ON queue(event_id);
CREATE TABLE IF NOT EXISTS deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  room TEXT,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  status INTEGER,
  duration_ms INTEGER NOT NULL,
  error TEXT,
  response TEXT,
  next_at INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_by_subscription ON deliveries(subscription_id, id);
CREATE TABLE IF NOT EXISTS live_rooms (
  room TEXT PRIMARY KEY,
  stream TEXT NOT NULL,
  started_at INTEGER NOT NULL
);
`;

// The head of each (subscription, room) queue: only it may be attempted, which is
// what keeps a room's events in order for each subscriber.
const HEADS = `
WITH heads AS (SELECT MIN(seq) AS seq FROM queue GROUP BY subscription_id, room)
SELECT q.seq, q.subscription_id, q.event_id, q.room, q.queued_at, q.next_at, q.attempts,
       e.type, e.body
FROM heads h
JOIN queue q ON q.seq = h.seq
JOIN events e ON e.id = q.event_id
JOIN subscriptions s ON s.id = q.subscription_id
WHERE s.enabled = 1`;

type Row = Record<string, SQLInputValue>;

function toSubscription(r: Row): Subscription {
  return {
    id: r.id as string,
    url: r.url as string,
    secret: r.secret as string,
    rooms: r.rooms === null ? null : JSON.parse(r.rooms as string),
    events: JSON.parse(r.events as string),
    description: r.description as string,
    enabled: r.enabled === 1,
    source: r.source as SubscriptionSource,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
  };
}

function toDue(r: Row): DueDelivery {
  return {
    seq: r.seq as number,
    subscriptionId: r.subscription_id as string,
    eventId: r.event_id as string,
    type: r.type as string,
    room: r.room as string,
    body: r.body as string,
    queuedAt: r.queued_at as number,
    nextAt: r.next_at as number,
    attempts: r.attempts as number,
  };
}

/** The webhook database. One per process; all calls are synchronous and short. */
export class WebhookStore {
  readonly #db: DatabaseSync;
  /** Bound on rows the deliveries log keeps per subscription. */
  readonly #keepDeliveries: number;

  /** Opens (creating when missing) the database at `path`, or `":memory:"`. */
  constructor(path: string, options: { keepDeliveries?: number } = {}) {
    this.#keepDeliveries = options.keepDeliveries ?? 100;
    this.#db = new DatabaseSync(path);
    try {
      this.#db.exec("PRAGMA locking_mode = EXCLUSIVE");
      this.#db.exec("PRAGMA journal_mode = WAL");
      this.#db.exec("PRAGMA synchronous = NORMAL");
      this.#db.exec("PRAGMA foreign_keys = ON");
      // Take the exclusive lock now, so a second Sluice on this data dir fails at start.
      this.#db.exec("BEGIN IMMEDIATE");
      this.#db.exec(SCHEMA);
      const version = (this.#db.prepare("PRAGMA user_version").get() as Row).user_version as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(`schema version ${version} is newer than this Sluice (${SCHEMA_VERSION})`);
      }
      this.#db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      this.#db.exec("COMMIT");
    } catch (err) {
      this.#db.close();
      const message = (err as Error).message;
      throw new Error(
        /locked|busy/i.test(message)
          ? `${path} is in use by another Sluice process (${message})`
          : `${path}: ${message}`,
      );
    }
  }

  #inTransaction = false;

  #tx<T>(fn: () => T): T {
    if (this.#inTransaction) return fn();
    this.#db.exec("BEGIN IMMEDIATE");
    this.#inTransaction = true;
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    } finally {
      this.#inTransaction = false;
    }
  }

  /** Every subscription, oldest first. */
  listSubscriptions(): Subscription[] {
    return this.#db.prepare("SELECT * FROM subscriptions ORDER BY created_at, rowid").all()
      .map((r) => toSubscription(r as Row));
  }

  /** One subscription, if it exists. */
  getSubscription(id: string): Subscription | undefined {
    const r = this.#db.prepare("SELECT * FROM subscriptions WHERE id = ?").get(id);
    return r ? toSubscription(r as Row) : undefined;
  }

  /** Inserts or replaces a subscription (queued deliveries of a replaced one stay). */
  putSubscription(s: Subscription): void {
    this.#db.prepare(
      `INSERT INTO subscriptions
         (id, url, secret, rooms, events, description, enabled, source, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
         rooms = excluded.rooms, events = excluded.events, description = excluded.description,
         enabled = excluded.enabled, source = excluded.source, updated_at = excluded.updated_at`,
    ).run(
      s.id,
      s.url,
      s.secret,
      s.rooms === null ? null : JSON.stringify(s.rooms),
      JSON.stringify(s.events),
      s.description,
      s.enabled ? 1 : 0,
      s.source,
      s.createdAt,
      s.updatedAt,
    );
  }

  /** Deletes a subscription with its queue and log; false when there was none. */
  deleteSubscription(id: string): boolean {
    return this.#tx(() => {
      const { changes } = this.#db.prepare("DELETE FROM subscriptions WHERE id = ?").run(id);
      this.#dropOrphanEvents();
      return changes > 0;
    });
  }

  #dropOrphanEvents(): void {
    this.#db.exec("DELETE FROM events WHERE id NOT IN (SELECT event_id FROM queue)");
  }

  /** Queues `event` for each of `subscriptionIds` (in one transaction); also tracks live rooms. */
  enqueue(event: QueuedEvent, subscriptionIds: readonly string[], now: number): void {
    this.#tx(() => {
      if (subscriptionIds.length > 0) {
        this.#db.prepare("INSERT INTO events (id, type, room, body) VALUES (?, ?, ?, ?)")
          .run(event.id, event.type, event.room, event.body);
        const insert = this.#db.prepare(
          "INSERT INTO queue (subscription_id, event_id, room, queued_at, next_at) VALUES (?, ?, ?, ?, ?)",
        );
        for (const id of subscriptionIds) insert.run(id, event.id, event.room, now, now);
      }
    });
  }

  /** Heads of the queues that are due at `now`, oldest due first. */
  dueHeads(now: number, limit: number): DueDelivery[] {
    return this.#db.prepare(`${HEADS} AND q.next_at <= ? ORDER BY q.next_at, q.seq LIMIT ?`)
      .all(now, limit).map((r) => toDue(r as Row));
  }

  /** The earliest time after `now` at which a queue head becomes due, if any. */
  nextDueAfter(now: number): number | undefined {
    const r = this.#db.prepare(
      `SELECT MIN(next_at) AS at FROM (${HEADS} AND q.next_at > ?)`,
    ).get(now) as Row | undefined;
    return r?.at === null || r?.at === undefined ? undefined : r.at as number;
  }

  /** Removes a queued delivery (delivered, failed for good, or given up). */
  finish(seq: number): void {
    this.#tx(() => {
      const row = this.#db.prepare("SELECT event_id FROM queue WHERE seq = ?").get(seq) as
        | Row
        | undefined;
      if (!row) return;
      this.#db.prepare("DELETE FROM queue WHERE seq = ?").run(seq);
      this.#db.prepare(
        "DELETE FROM events WHERE id = ? AND NOT EXISTS (SELECT 1 FROM queue WHERE event_id = ?)",
      ).run(row.event_id, row.event_id);
    });
  }

  /** Makes every queued delivery due at `now` at the latest (a restart retries at once). */
  dueNow(now: number): void {
    this.#db.prepare("UPDATE queue SET next_at = ? WHERE next_at > ?").run(now, now);
  }

  /** Records a failed attempt and when to try next. */
  reschedule(seq: number, attempts: number, nextAt: number, error: string): void {
    this.#db.prepare("UPDATE queue SET attempts = ?, next_at = ?, last_error = ? WHERE seq = ?")
      .run(attempts, nextAt, error, seq);
  }

  /** Appends to the deliveries log (keeping the newest few per subscription); returns its id. */
  recordAttempt(d: DeliveryRecord): number | undefined {
    if (!this.#db.prepare("SELECT 1 FROM subscriptions WHERE id = ?").get(d.subscriptionId)) {
      return undefined; // deleted while the attempt ran
    }
    return this.#tx(() => {
      const { lastInsertRowid } = this.#db.prepare(
        `INSERT INTO deliveries (subscription_id, event_id, type, room, attempt, at, outcome,
           status, duration_ms, error, response, next_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        d.subscriptionId,
        d.eventId,
        d.type,
        d.room,
        d.attempt,
        d.at,
        d.outcome,
        d.status,
        Math.round(d.durationMs),
        d.error,
        d.response,
        d.nextAt,
      );
      this.#db.prepare(
        `DELETE FROM deliveries WHERE subscription_id = ? AND id <= (
           SELECT id FROM deliveries WHERE subscription_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
      ).run(d.subscriptionId, d.subscriptionId, this.#keepDeliveries);
      return Number(lastInsertRowid);
    });
  }

  /** The newest attempts to a subscription, newest first. */
  deliveries(subscriptionId: string, limit: number): (DeliveryRecord & { id: number })[] {
    return this.#db.prepare(
      "SELECT * FROM deliveries WHERE subscription_id = ? ORDER BY id DESC LIMIT ?",
    ).all(subscriptionId, limit).map((raw) => {
      const r = raw as Row;
      return {
        id: r.id as number,
        subscriptionId: r.subscription_id as string,
        eventId: r.event_id as string,
        type: r.type as string,
        room: r.room as string | null,
        attempt: r.attempt as number,
        at: r.at as number,
        outcome: r.outcome as DeliveryOutcome,
        status: r.status as number | null,
        durationMs: r.duration_ms as number,
        error: r.error as string | null,
        response: r.response as string | null,
        nextAt: r.next_at as number | null,
      };
    });
  }

  /** Queued deliveries per subscription (subscriptions with none are absent). */
  pendingCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (
      const r of this.#db.prepare(
        "SELECT subscription_id, COUNT(*) AS n FROM queue GROUP BY subscription_id",
      ).all()
    ) {
      out.set((r as Row).subscription_id as string, (r as Row).n as number);
    }
    return out;
  }

  /** Queued deliveries in all. */
  queueLength(): number {
    return (this.#db.prepare("SELECT COUNT(*) AS n FROM queue").get() as Row).n as number;
  }

  /** Notes that `room` went live with `stream` (JSON), for recovery after a crash. */
  setLive(room: string, stream: string, at: number): void {
    this.#db.prepare(
      "INSERT OR REPLACE INTO live_rooms (room, stream, started_at) VALUES (?, ?, ?)",
    ).run(room, stream, at);
  }

  /** Notes that `room` stopped. */
  clearLive(room: string): void {
    this.#db.prepare("DELETE FROM live_rooms WHERE room = ?").run(room);
  }

  /** The rooms noted live (after a crash: the ones whose stop was never seen). */
  liveRooms(): LiveRoom[] {
    return this.#db.prepare("SELECT * FROM live_rooms ORDER BY started_at, room").all().map(
      (raw) => {
        const r = raw as Row;
        return {
          room: r.room as string,
          stream: r.stream as string,
          startedAt: r.started_at as number,
        };
      },
    );
  }

  /** Runs `fn` in one transaction. */
  transaction<T>(fn: () => T): T {
    return this.#tx(fn);
  }

  /** Closes the database (checkpointing the WAL). */
  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
