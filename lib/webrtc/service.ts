/**
 * WebRTC delivery for all rooms: one {@linkcode RoomStream} per watched room, one
 * {@linkcode ViewerSession} per browser, whatever signaling (WebSocket or WHEP)
 * brought it.
 *
 * @module
 */
import type { Room, RoomRegistry, StreamInfo } from "../room/mod.ts";
import type { Logger } from "../log.ts";
import { RoomStream } from "./room_stream.ts";
import {
  createWeriftTransport,
  type IceOptions,
  type IceRestartAnswer,
  type IceRestartOffer,
  type RTCIceCandidateLike,
  type ViewerTransport,
} from "./transport.ts";
import { Viewer, type ViewerLimits, type ViewerTotals } from "./viewer.ts";
import type { AudioStats } from "./room_stream.ts";
import type { TranscodePolicy } from "./video_transcode.ts";
import type { NativeUdp } from "./fast/udp.ts";
import type { FastTotals } from "./fast/sender.ts";
import type { Admission } from "./admission.ts";

/** Room state as viewers are told it. */
export type ViewerRoomState = "waiting" | "live" | "ended";

/** Callbacks from a session to its signaling channel. */
export interface SessionEvents {
  candidate(candidate: RTCIceCandidateLike | null): void;
  state(state: ViewerRoomState, stream: StreamInfo | undefined): void;
  /** The peer connection failed or closed; the signaling should end too. */
  closed(reason: string): void;
}

/** Options of the {@linkcode WebRtcService}. */
export interface WebRtcOptions extends ViewerLimits {
  readonly ice: IceOptions;
  readonly maxGopBytes: number;
  /** How long a peer may take from offer to connected. */
  readonly connectTimeoutMs: number;
  /** How long viewers wait (state `waiting`) for a dropped publisher before `ended`. */
  readonly reconnectGraceMs?: number;
  /** When and how rooms' video is transcoded; absent: never. */
  readonly transcode?: TranscodePolicy;
  /** Where the audio path reports (metrics). */
  readonly audioStats?: AudioStats;
  /** The native sockets of the media fast path; absent: werift sends the media. */
  readonly fast?: NativeUdp;
  /** Who may still join; absent: only the rooms' own limits apply. */
  readonly admission?: Admission;
  /** Told of every refused viewer (metrics). */
  readonly refused?: (reason: "configured" | "capacity" | "room-full" | "rooms-full") => void;
}

/** Why {@linkcode WebRtcService.open} refused a viewer. */
export interface OpenRefused {
  readonly error: string;
  /** 503: the server is full (retry later); 429: this room, or the room table, is full. */
  readonly status: 429 | 503;
  readonly code: "server-full" | "room-full" | "rooms-full";
  readonly retryAfterS?: number;
}

let nextSessionId = 1;

/** One browser watching one room. */
export class ViewerSession {
  readonly id = nextSessionId++;
  readonly room: Room;
  readonly createdAt = performance.now();
  connectedAt: number | undefined;
  readonly #service: WebRtcService;
  readonly #transport: ViewerTransport;
  readonly #viewer: Viewer;
  readonly #events: SessionEvents;
  readonly #stream: RoomStream;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    service: WebRtcService,
    room: Room,
    stream: RoomStream,
    events: SessionEvents,
    options: WebRtcOptions,
    totals: ViewerTotals,
  ) {
    this.#service = service;
    this.room = room;
    this.#stream = stream;
    this.#events = events;
    this.#transport = createWeriftTransport(options.ice, {
      onSendPath: (path, reason) => service.sendPath(this, path, reason),
      onCandidate: (c) => events.candidate(c),
      onKeyframeRequest: () => this.#viewer.keyframeRequest(),
      onState: (state) => {
        if (state === "connected") {
          clearTimeout(this.#timer);
          this.connectedAt = performance.now();
          this.#viewer.connected();
        } else if (!this.#closed) {
          this.close(state === "failed" ? "ICE failed" : "peer closed");
        }
      },
    }, options.fast && { udp: options.fast, totals: service.fastTotals });
    this.#viewer = new Viewer(this.#transport, stream, options, (state) => {
      events.state(state, state === "live" ? room.info() : undefined);
    }, totals);
    this.#timer = setTimeout(
      () => this.close("the peer did not connect in time"),
      options.connectTimeoutMs,
    );
    stream.add(this.#viewer);
  }

  /** The viewer's counters. */
  get viewer(): Viewer {
    return this.#viewer;
  }

  /** The room's state now, as a viewer sees it. */
  currentState(): ViewerRoomState {
    return this.room.live ? "live" : "waiting";
  }

  /** Applies the browser's offer; returns the answer SDP (with every candidate when `gather`). */
  answer(offerSdp: string, gather = false): Promise<string> {
    return this.#transport.answer(offerSdp, gather);
  }

  /** Adds a trickled remote candidate. */
  addCandidate(candidate: RTCIceCandidateLike | null): Promise<void> {
    return this.#transport.addCandidate(candidate);
  }

  /** ICE restart: the browser's new credentials in, the server's new ones out. */
  restartIce(remote: IceRestartOffer): Promise<IceRestartAnswer> {
    return this.#transport.restartIce(remote);
  }

  /** The browser's ICE username fragment of the current generation. */
  get remoteUfrag(): string | undefined {
    return this.#transport.remoteUfrag;
  }

  /** Ends the session and releases everything it held. */
  close(reason = "closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#stream.remove(this.#viewer);
    void this.#transport.close();
    this.#service.release(this);
    this.#events.closed(reason);
  }
}

/** Every viewer session of the server. */
export class WebRtcService {
  readonly #rooms: RoomRegistry;
  readonly #options: WebRtcOptions;
  readonly #log: Logger;
  readonly #streams = new Map<string, RoomStream>();
  readonly #sessions = new Set<ViewerSession>();
  readonly #totals = new Map<string, ViewerTotals>();
  readonly #paths = new Map<ViewerSession, "native" | "werift">();
  /** Kernel drops and NACK retransmissions of the native send path. */
  readonly fastTotals: FastTotals = { dropped: 0, retransmitted: 0 };

  constructor(rooms: RoomRegistry, options: WebRtcOptions, log: Logger) {
    this.#rooms = rooms;
    this.#options = options;
    this.#log = log;
  }

  /** The ICE servers browsers should use. */
  get iceServers(): IceOptions["iceServers"] {
    return this.#options.ice.iceServers;
  }

  /** Viewer sessions open now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /**
   * Opens a session for a room (created if nobody publishes yet, so a viewer can
   * wait for the stream). Returns an error message when the room name is invalid
   * or the room or server is full.
   */
  open(
    roomName: string,
    events: SessionEvents,
  ): ViewerSession | OpenRefused {
    const refusal = this.#options.admission?.check(this.#sessions.size);
    if (refusal) {
      this.#options.refused?.(refusal.reason);
      this.#log.info("viewer refused: room {room}: {message}", {
        room: roomName,
        message: refusal.message,
      });
      return {
        error: refusal.message,
        status: 503,
        code: "server-full",
        retryAfterS: refusal.retryAfterS,
      };
    }
    const room = this.#rooms.open(roomName);
    if (!room) {
      this.#options.refused?.("rooms-full");
      return { error: "the server has no room for more rooms", status: 429, code: "rooms-full" };
    }
    if (!room.join()) {
      this.#rooms.release(roomName);
      this.#options.refused?.("room-full");
      return { error: `room ${roomName} is full`, status: 429, code: "room-full" };
    }
    let stream = this.#streams.get(roomName);
    if (!stream) {
      stream = new RoomStream(
        room,
        this.#log,
        this.#options.maxGopBytes,
        this.#options.audioStats,
        this.#options.reconnectGraceMs,
        this.#options.transcode,
      );
      room.subscribe(stream);
      this.#streams.set(roomName, stream);
    }
    let totals = this.#totals.get(roomName);
    if (!totals) this.#totals.set(roomName, totals = { packets: 0, bytes: 0, framesDropped: 0 });
    const session = new ViewerSession(this, room, stream, events, this.#options, totals);
    this.#sessions.add(session);
    this.#log.info("viewer joined: room {room} (session {id}, {viewers} watching)", {
      room: roomName,
      id: session.id,
      viewers: room.viewers,
    });
    return session;
  }

  /** Called by a session when its media path is known. */
  sendPath(session: ViewerSession, path: "native" | "werift", reason?: string): void {
    if (this.#sessions.has(session)) this.#paths.set(session, path);
    if (path === "native") this.#log.debug("session {id}: native send path", { id: session.id });
    else if (this.#options.fast) {
      this.#log.warn("session {id}: media through werift: {reason}", { id: session.id, reason });
    }
  }

  /** Called by a session when it closes. */
  release(session: ViewerSession): void {
    if (!this.#sessions.delete(session)) return;
    this.#paths.delete(session);
    const room = session.room;
    room.leave();
    const c = session.viewer.counters;
    this.#log.info(
      "viewer left: room {room} (session {id}, {viewers} watching; sent {frames} frames, " +
        "{replays} replays, {requests} keyframe requests, {dropped} dropped)",
      {
        room: room.name,
        id: session.id,
        viewers: room.viewers,
        frames: c.framesSent,
        replays: c.replays,
        requests: c.keyframeRequests,
        dropped: c.framesDropped,
      },
    );
    const stream = this.#streams.get(room.name);
    if (stream && stream.size === 0) {
      room.unsubscribe(stream);
      stream.dispose();
      this.#streams.delete(room.name);
    }
    this.#rooms.release(room.name);
    if (!this.#rooms.get(room.name)) this.#totals.delete(room.name);
  }

  /** Connected viewers by the path their media takes. */
  viewersByPath(): { native: number; werift: number } {
    const out = { native: 0, werift: 0 };
    for (const p of this.#paths.values()) out[p]++;
    return out;
  }

  /** Cumulative output per room of the rooms that exist now. */
  totals(): IterableIterator<[string, ViewerTotals]> {
    return this.#totals.entries();
  }

  /** Closes every session (shutdown). */
  closeAll(reason: string): void {
    for (const s of [...this.#sessions]) s.close(reason);
  }
}
