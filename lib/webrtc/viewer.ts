/**
 * One viewer: maps the room's shared RTP onto its own sequence, starts it on a
 * picture at once (the cached GOP, squeezed in time), answers PLI/FIR from that
 * cache, and drops to the next keyframe when it cannot keep up.
 *
 * @module
 */
import type { PacketizedFrame, RoomStream, StreamViewer } from "./room_stream.ts";
import type { SharedRtp, ViewerTransport } from "./transport.ts";

/** Bounds of one viewer. */
export interface ViewerLimits {
  /** Packets in flight in the send path before the viewer counts as slow. */
  readonly maxInFlight: number;
  /** Shortest time between two keyframe replays for one viewer. */
  readonly minReplayIntervalMs: number;
}

/** Cumulative output of all viewers of a room (metrics). */
export interface ViewerTotals {
  packets: number;
  bytes: number;
  framesDropped: number;
}

/** Counters of one viewer (for stats and tests). */
export interface ViewerCounters {
  packetsSent: number;
  framesSent: number;
  framesDropped: number;
  replays: number;
  keyframeRequests: number;
}

/** One viewer of a room's stream. */
export class Viewer implements StreamViewer {
  readonly #transport: ViewerTransport;
  readonly #stream: RoomStream;
  readonly #limits: ViewerLimits;
  readonly #onRoomState: (state: "live" | "waiting" | "ended") => void;
  readonly #totals: ViewerTotals;
  /** Added to a shared sequence number to get this viewer's. */
  #seqOffset = 0;
  #lastSeq: number | undefined;
  #lastTs: number | undefined;
  /** True once this viewer is being fed from a decodable point. */
  #started = false;
  #lastReplay = -Infinity;
  readonly counters: ViewerCounters = {
    packetsSent: 0,
    framesSent: 0,
    framesDropped: 0,
    replays: 0,
    keyframeRequests: 0,
  };
  /** When the first packet went out (performance.now()), for time-to-first-frame. */
  firstPacketAt: number | undefined;

  constructor(
    transport: ViewerTransport,
    stream: RoomStream,
    limits: ViewerLimits,
    onRoomState: (state: "live" | "waiting" | "ended") => void,
    totals: ViewerTotals = { packets: 0, bytes: 0, framesDropped: 0 },
  ) {
    this.#totals = totals;
    this.#transport = transport;
    this.#stream = stream;
    this.#limits = limits;
    this.#onRoomState = onRoomState;
  }

  /** The transport connected: start on a picture now. */
  connected(): void {
    this.#stream.keyframeWanted();
    this.#replay();
  }

  /** The browser asked for a keyframe (PLI/FIR): answer from the cached GOP. */
  keyframeRequest(): void {
    this.counters.keyframeRequests++;
    this.#stream.keyframeWanted();
    const now = performance.now();
    if (now - this.#lastReplay < this.#limits.minReplayIntervalMs) return;
    this.#replay();
  }

  roomState(state: "live" | "waiting" | "ended"): void {
    this.#onRoomState(state);
  }

  audio(packet: SharedRtp): void {
    if (!this.#transport.connected) return;
    this.#transport.sendAudio(packet);
    this.#totals.packets++;
    this.#totals.bytes += packet.payload.length;
  }

  video(packets: readonly SharedRtp[], keyframe: boolean): void {
    if (!this.#transport.connected) return;
    if (this.#transport.inFlight > this.#limits.maxInFlight) {
      // Slow viewer: stop until the next keyframe rather than queue without bound.
      this.#started = false;
      this.counters.framesDropped++;
      this.#totals.framesDropped++;
      return;
    }
    if (!this.#started) {
      if (!keyframe) {
        this.counters.framesDropped++;
        this.#totals.framesDropped++;
        return;
      }
      this.#started = true;
      // Resume without a sequence gap: the viewer never asks for what it skipped.
      if (this.#lastSeq !== undefined) {
        this.#seqOffset = (this.#lastSeq + 1 - packets[0].sequenceNumber) & 0xffff;
      }
    }
    this.#sendFrame(
      packets,
      (packets[0].sequenceNumber + this.#seqOffset) & 0xffff,
      packets[0].timestamp,
    );
    this.counters.framesSent++;
  }

  /** One frame's packets under this viewer's sequence numbers from `firstSeq`. */
  #sendFrame(packets: readonly SharedRtp[], firstSeq: number, timestamp: number): void {
    if (packets.length === 0) return;
    this.firstPacketAt ??= performance.now();
    this.#transport.sendVideoFrame(packets, firstSeq, timestamp);
    let bytes = 0;
    for (const p of packets) bytes += p.payload.length;
    this.#totals.packets += packets.length;
    this.#totals.bytes += bytes;
    this.#lastSeq = (firstSeq + packets.length - 1) & 0xffff;
    this.#lastTs = timestamp;
    this.counters.packetsSent += packets.length;
  }

  /**
   * Sends the cached GOP at once with its timestamps squeezed one tick apart, so
   * the browser decodes through it and shows its newest picture immediately
   * instead of playing seconds of old video. Then live packets follow on.
   */
  #replay(): void {
    const gop: readonly PacketizedFrame[] = this.#stream.gop();
    if (gop.length === 0 || !this.#transport.connected) {
      this.#started = false; // wait for the next keyframe
      return;
    }
    this.#lastReplay = performance.now();
    this.counters.replays++;
    const total = gop.reduce((n, f) => n + f.packets.length, 0);
    const lastTs = gop[gop.length - 1].packets[0].timestamp;
    const nextShared = this.#stream.nextSequenceNumber;
    let seq = this.#lastSeq === undefined
      ? (nextShared - total) & 0xffff
      : (this.#lastSeq + 1) & 0xffff;
    let ts = this.#lastTs === undefined
      ? (lastTs - gop.length + 1) >>> 0
      : (this.#lastTs + 1) >>> 0;
    for (const frame of gop) {
      this.#sendFrame(frame.packets, seq, ts);
      seq = (seq + frame.packets.length) & 0xffff;
      ts = (ts + 1) >>> 0;
      this.counters.framesSent++;
    }
    this.#seqOffset = (seq - nextShared) & 0xffff;
    this.#started = true;
  }
}
