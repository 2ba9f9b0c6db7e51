/**
 * One room's RTP: packetizes each access unit once for every viewer of the room,
 * keeps the current GOP as packets for viewers that join or ask for a keyframe,
 * and keeps sequence numbers and timestamps continuous across publisher reconnects.
 *
 * @module
 */
import type { MediaUnit, VideoFrame } from "../media.ts";
import type { Room, RoomSubscriber } from "../room/mod.ts";
import { iterateAvccNalUnits } from "../codec/mod.ts";
import { packetizeH264 } from "./h264_packetizer.ts";
import type { SharedRtp } from "./transport.ts";
import type { Logger } from "../log.ts";

/** A viewer as the room stream sees it. */
export interface StreamViewer {
  /** One access unit's packets, room timeline. */
  video(packets: readonly SharedRtp[], keyframe: boolean): void;
  audio(packet: SharedRtp): void;
  /** The room went live or ended. */
  roomState(state: "live" | "ended"): void;
}

/** One packetized access unit. */
export interface PacketizedFrame {
  readonly packets: readonly SharedRtp[];
  readonly keyframe: boolean;
  readonly bytes: number;
}

const VIDEO_CLOCK = 90;
/** The gap a reconnect leaves in the video timeline: one frame at 30 fps. */
const RECONNECT_STEP = 3000;

function random32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/** The RTP producer of one room. */
export class RoomStream implements RoomSubscriber {
  readonly room: Room;
  readonly #viewers = new Set<StreamViewer>();
  readonly #log: Logger;
  readonly #maxGopBytes: number;
  #seq = random32() & 0xffff;
  #tsBase: number | undefined;
  #lastTs: number | undefined;
  #gop: PacketizedFrame[] = [];
  #gopBytes = 0;
  #gopValid = false;
  #frames = 0;

  constructor(room: Room, log: Logger, maxGopBytes: number) {
    this.room = room;
    this.#log = log;
    this.#maxGopBytes = maxGopBytes;
    // Joining a room mid-GOP: packetize what the room cached since its last keyframe.
    for (const unit of room.gop()) this.unit(unit);
  }

  /** Viewers attached to this stream. */
  get size(): number {
    return this.#viewers.size;
  }

  /** The sequence number the next shared packet will carry. */
  get nextSequenceNumber(): number {
    return this.#seq;
  }

  /** Frames packetized so far (for tests and metrics). */
  get framesPacketized(): number {
    return this.#frames;
  }

  /** The current GOP as packets, from its keyframe on; empty when none is held. */
  gop(): readonly PacketizedFrame[] {
    return this.#gopValid ? this.#gop : [];
  }

  add(viewer: StreamViewer): void {
    this.#viewers.add(viewer);
  }

  remove(viewer: StreamViewer): void {
    this.#viewers.delete(viewer);
  }

  state(state: "live" | "ended"): void {
    if (state === "live") {
      // A new publish: its clock starts anew; rebase on its first frame.
      this.#tsBase = undefined;
    }
    this.#gop = [];
    this.#gopBytes = 0;
    this.#gopValid = false;
    for (const v of this.#viewers) v.roomState(state);
  }

  unit(unit: MediaUnit): void {
    if (unit.kind !== "video" || unit.codec !== "h264") return;
    const frame = this.#packetize(unit);
    if (!frame) return;
    this.#remember(frame);
    for (const v of this.#viewers) v.video(frame.packets, frame.keyframe);
  }

  #timestamp(frame: VideoFrame): number {
    const pts = (frame.dts + frame.cts) * VIDEO_CLOCK;
    if (this.#tsBase === undefined) {
      const start = this.#lastTs === undefined ? random32() : this.#lastTs + RECONNECT_STEP;
      this.#tsBase = (start - pts) >>> 0;
    }
    return (pts + this.#tsBase) >>> 0;
  }

  #packetize(frame: VideoFrame): PacketizedFrame | undefined {
    const avc = this.room.avc;
    let nals: Uint8Array[];
    try {
      nals = [...iterateAvccNalUnits(frame.data, avc?.nalLengthSize ?? 4)];
    } catch (err) {
      this.#log.debug("room {room}: dropping a malformed video frame: {error}", {
        room: this.room.name,
        error: (err as Error).message,
      });
      return undefined;
    }
    const payloads = packetizeH264(nals, avc ? [...avc.sps, ...avc.pps] : []);
    if (payloads.length === 0) return undefined;
    const timestamp = this.#timestamp(frame);
    this.#lastTs = timestamp;
    let bytes = 0;
    const packets = payloads.map(({ payload, marker }) => {
      bytes += payload.length;
      const packet = { sequenceNumber: this.#seq, timestamp, marker, payload };
      this.#seq = (this.#seq + 1) & 0xffff;
      return packet;
    });
    this.#frames++;
    return { packets, keyframe: frame.keyframe, bytes };
  }

  #remember(frame: PacketizedFrame): void {
    if (frame.keyframe) {
      this.#gop = [];
      this.#gopBytes = 0;
      this.#gopValid = true;
    }
    if (!this.#gopValid) return;
    if (this.#gopBytes + frame.bytes > this.#maxGopBytes) {
      this.#gop = [];
      this.#gopBytes = 0;
      this.#gopValid = false;
      return;
    }
    this.#gop.push(frame);
    this.#gopBytes += frame.bytes;
  }
}
