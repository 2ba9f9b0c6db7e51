/**
 * The JSON a receiver gets. Built once per event, stored as text, and sent as the
 * same bytes on every attempt to every subscriber, so the signature covers exactly
 * what was queued.
 *
 * @module
 */
import type { RoomEvent, StopReason, StreamInfo } from "../room/mod.ts";

/** The stream as a webhook describes it: a summary on top, the room's details below. */
export interface WebhookStream extends StreamInfo {
  /** Codec names present, video first: e.g. `["h264", "aac"]`. */
  readonly codecs: readonly string[];
  readonly width?: number;
  readonly height?: number;
  readonly fps?: number;
}

/** The body of a `stream.started` or `stream.stopped` delivery. */
export interface StreamEventPayload {
  readonly id: string;
  readonly type: RoomEvent["type"];
  readonly room: string;
  /** ISO 8601 time the stream started or stopped. */
  readonly at: string;
  readonly stream: WebhookStream;
  /** On `stream.stopped` only. */
  readonly reason?: StopReason;
}

/** The body of a test delivery (`POST /api/webhooks/<id>/test`). */
export interface PingPayload {
  readonly id: string;
  readonly type: "ping";
  readonly at: string;
  /** The subscription being tested. */
  readonly webhook: string;
}

/** Any webhook body. */
export type WebhookPayload = StreamEventPayload | PingPayload;

/** A new event id: `evt_` + 32 hex digits; the same for every subscriber of an event. */
export function newEventId(): string {
  return `evt_${crypto.randomUUID().replaceAll("-", "")}`;
}

/** The webhook view of a room's stream description. */
export function webhookStream(info: StreamInfo): WebhookStream {
  const codecs = [info.video?.codec, info.audio?.codec].filter((c): c is string => !!c);
  return {
    codecs,
    width: info.video?.width,
    height: info.video?.height,
    fps: info.video?.fps === undefined ? undefined : Math.round(info.video.fps * 100) / 100,
    ...info,
  };
}

/** The payload of a room event. */
export function roomEventPayload(id: string, event: RoomEvent): StreamEventPayload {
  return {
    id,
    type: event.type,
    room: event.room,
    at: event.at.toISOString(),
    stream: webhookStream(event.stream),
    ...(event.type === "stream.stopped" && { reason: event.reason }),
  };
}

/** The payload of a test ping to subscription `webhook`. */
export function pingPayload(id: string, webhook: string, at: Date): PingPayload {
  return { id, type: "ping", at: at.toISOString(), webhook };
}
