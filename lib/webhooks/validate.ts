/**
 * Validation of subscription input, from the admin API and from config files alike.
 * Every error names the field, says what was expected and shows what came.
 *
 * @module
 */
import { isValidRoomName } from "../room/mod.ts";

/** The events a subscriber can ask for. */
export const EVENT_TYPES = ["stream.started", "stream.stopped"] as const;
/** A subscribable event type. */
export type WebhookEventType = typeof EVENT_TYPES[number];

/** Bounds on subscription input. */
export const LIMITS = {
  /** Bytes of a request body to the admin API. */
  maxBodyBytes: 64 * 1024,
  maxUrlLength: 2048,
  maxRooms: 1000,
  maxDescriptionLength: 1000,
  minSecretLength: 16,
  maxSecretLength: 256,
} as const;

/** A subscription as created: every field decided. */
export interface SubscriptionInput {
  readonly url: string;
  /** null: every room. */
  readonly rooms: readonly string[] | null;
  readonly events: readonly WebhookEventType[];
  /** Absent: generate one. */
  readonly secret?: string;
  readonly description: string;
  readonly enabled: boolean;
}

/** A change to a subscription; absent fields stay as they are. */
export interface SubscriptionPatch {
  readonly url?: string;
  readonly rooms?: readonly string[] | null;
  readonly events?: readonly WebhookEventType[];
  readonly secret?: string;
  readonly description?: string;
  readonly enabled?: boolean;
}

/** Input that is not a valid subscription; the message is fit for a 400 answer. */
export class ValidationError extends Error {
  override name = "ValidationError";
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function invalid(field: string, expected: string, got: unknown): never {
  throw new ValidationError(`${field}: expected ${expected}, got ${show(got)}`);
}

/** Checks a receiver URL: absolute http or https, bounded length. */
export function validateUrl(value: unknown, field = "url"): string {
  if (typeof value !== "string" || value === "") invalid(field, "an http or https URL", value);
  if (value.length > LIMITS.maxUrlLength) {
    throw new ValidationError(`${field}: expected at most ${LIMITS.maxUrlLength} characters`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    invalid(field, "an http or https URL", value);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    invalid(field, "an http or https URL", value);
  }
  if (!url.hostname) invalid(field, "a URL with a host", value);
  return value;
}

function validateRooms(value: unknown): string[] | null {
  if (value === null) return null;
  if (!Array.isArray(value)) {
    invalid("rooms", "an array of room names (omit it for every room)", value);
  }
  if (value.length === 0) invalid("rooms", "at least one room (omit it for every room)", value);
  if (value.length > LIMITS.maxRooms) {
    throw new ValidationError(
      `rooms: expected at most ${LIMITS.maxRooms} rooms, got ${value.length}`,
    );
  }
  for (const room of value) {
    if (typeof room !== "string" || !isValidRoomName(room)) {
      invalid("rooms", "room names of 1-64 characters of A-Z a-z 0-9 _ -", room);
    }
  }
  return [...new Set(value as string[])];
}

function validateEvents(value: unknown): WebhookEventType[] {
  const expected = `a non-empty array of ${EVENT_TYPES.map((e) => `"${e}"`).join(", ")}`;
  if (!Array.isArray(value) || value.length === 0) invalid("events", expected, value);
  for (const e of value) {
    if (!(EVENT_TYPES as readonly unknown[]).includes(e)) invalid("events", expected, e);
  }
  return EVENT_TYPES.filter((e) => value.includes(e));
}

/** Checks a signing secret: printable ASCII, 16–256 characters. */
export function validateSecret(value: unknown, field = "secret"): string {
  const expected =
    `a string of ${LIMITS.minSecretLength}-${LIMITS.maxSecretLength} printable ASCII characters`;
  if (
    typeof value !== "string" || value.length < LIMITS.minSecretLength ||
    value.length > LIMITS.maxSecretLength || !/^[\x21-\x7e]+$/.test(value)
  ) {
    // Never echo a secret back, not even a wrong one.
    throw new ValidationError(`${field}: expected ${expected}`);
  }
  return value;
}

function validateDescription(value: unknown): string {
  if (typeof value !== "string") invalid("description", "a string", value);
  if (value.length > LIMITS.maxDescriptionLength) {
    throw new ValidationError(
      `description: expected at most ${LIMITS.maxDescriptionLength} characters, got ${value.length}`,
    );
  }
  return value;
}

function validateEnabled(value: unknown): boolean {
  if (typeof value !== "boolean") invalid("enabled", "true or false", value);
  return value;
}

const FIELDS = ["url", "rooms", "events", "secret", "description", "enabled"];

function asObject(body: unknown, extra: readonly string[] = []): Record<string, unknown> {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new ValidationError(`expected a JSON object, got ${show(body)}`);
  }
  for (const key of Object.keys(body)) {
    if (!FIELDS.includes(key) && !extra.includes(key)) {
      throw new ValidationError(
        `unknown field "${key.slice(0, 64)}" (expected ${[...FIELDS, ...extra].join(", ")})`,
      );
    }
  }
  return body as Record<string, unknown>;
}

/** Validates a create request (`POST /api/webhooks` or a config entry). */
export function parseSubscriptionInput(
  body: unknown,
  extraFields: readonly string[] = [],
): SubscriptionInput {
  const o = asObject(body, extraFields);
  if (o.url === undefined) throw new ValidationError("url: required");
  return {
    url: validateUrl(o.url),
    rooms: o.rooms === undefined ? null : validateRooms(o.rooms),
    events: o.events === undefined ? [...EVENT_TYPES] : validateEvents(o.events),
    secret: o.secret === undefined ? undefined : validateSecret(o.secret),
    description: o.description === undefined ? "" : validateDescription(o.description),
    enabled: o.enabled === undefined ? true : validateEnabled(o.enabled),
  };
}

/** Validates a change (`PATCH /api/webhooks/<id>`); `rooms: null` means every room again. */
export function parseSubscriptionPatch(body: unknown): SubscriptionPatch {
  const o = asObject(body);
  if (Object.keys(o).length === 0) {
    throw new ValidationError(`expected at least one of ${FIELDS.join(", ")}`);
  }
  return {
    ...(o.url !== undefined && { url: validateUrl(o.url) }),
    ...(o.rooms !== undefined && { rooms: validateRooms(o.rooms) }),
    ...(o.events !== undefined && { events: validateEvents(o.events) }),
    ...(o.secret !== undefined && { secret: validateSecret(o.secret) }),
    ...(o.description !== undefined && { description: validateDescription(o.description) }),
    ...(o.enabled !== undefined && { enabled: validateEnabled(o.enabled) }),
  };
}

/** A URL fit for logs: scheme, host and path; no credentials, query or fragment. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}
