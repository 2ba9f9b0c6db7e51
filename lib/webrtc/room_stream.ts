/**
 * One room's RTP: packetizes each access unit once for every viewer of the room,
 * keeps the current GOP as packets for viewers that join or ask for a keyframe,
 * and keeps sequence numbers and timestamps continuous across publisher reconnects.
 *
 * @module
 */
import { flushFanout } from "./fast/sender.ts";
import type { MediaUnit, VideoFrame } from "../media.ts";
import type { Room, RoomSubscriber, StopReason } from "../room/mod.ts";
import { iterateAvccNalUnits } from "../codec/mod.ts";
import { packetizeH264 } from "./h264_packetizer.ts";
import type { SharedRtp } from "./transport.ts";
import type { Logger } from "../log.ts";
import { AudioPipeline } from "../codec/audio_pipeline.ts";
import { RoomTranscode, type TranscodePolicy } from "./video_transcode.ts";

/** A viewer as the room stream sees it. */
export interface StreamViewer {
  /** One access unit's packets, room timeline. */
  video(packets: readonly SharedRtp[], keyframe: boolean): void;
  audio(packet: SharedRtp): void;
  /**
   * The room went live, lost its publisher (`waiting`: it may come back within the
   * reconnect grace period) or ended.
   */
  roomState(state: "live" | "waiting" | "ended"): void;
}

/** Counters the audio path reports into (metrics). */
export interface AudioStats {
  corrupt(): void;
  dropped(n: number): void;
  transcoded(micros: number): void;
  /**
   * Seconds from a video frame reaching the stream (the RTMP message handed to the
   * room, or the transcoder's output) to its last RTP packet handed to every viewer.
   */
  fannedOut?(seconds: number): void;
}

const noAudioStats: AudioStats = { corrupt() {}, dropped() {}, transcoded() {} };

/** One packetized access unit. */
export interface PacketizedFrame {
  readonly packets: readonly SharedRtp[];
  readonly keyframe: boolean;
  readonly bytes: number;
}

const VIDEO_CLOCK = 90;
const AUDIO_CLOCK = 48;
const OPUS_SAMPLE_RATE = 48000;
/** Samples of one 20 ms Opus packet at 48 kHz. */
const OPUS_FRAME = 960;
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
  // Audio: AAC → Opus off the event loop, then RTP at 48 kHz continuing across publishes.
  #audio: AudioPipeline | undefined;
  #audioSeq = random32() & 0xffff;
  #audioTs: number | undefined;
  #lastAudioTs: number | undefined;
  #audioRebase = true;
  #corruptFrames = 0;
  #lastCorruptWarning = -Infinity;
  readonly #audioStats: AudioStats;
  readonly #graceMs: number;
  readonly #policy: TranscodePolicy | undefined;
  #transcode: RoomTranscode | undefined;
  /** When the policy last said no (it is asked again after a while, not every frame). */
  #declinedAt = -Infinity;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    room: Room,
    log: Logger,
    maxGopBytes: number,
    audioStats: AudioStats = noAudioStats,
    reconnectGraceMs = 15_000,
    transcodePolicy?: TranscodePolicy,
  ) {
    this.room = room;
    this.#graceMs = reconnectGraceMs;
    this.#policy = transcodePolicy;
    this.#log = log;
    this.#maxGopBytes = maxGopBytes;
    this.#audioStats = audioStats;
    // Joining a room mid-GOP: packetize the video the room cached since its last keyframe
    // (its audio is in the past: the audio clock starts with the next frame).
    // (A room that needs transcoding feeds that GOP to its transcoder instead.)
    if (!this.#maybeTranscode()) {
      for (const unit of room.gop()) if (unit.kind === "video") this.unit(unit);
    }
    if (room.audioConfig) this.#configureAudio(room.audioConfig.record);
  }

  /** Stops the audio worker; the stream is going away. */
  dispose(): void {
    clearTimeout(this.#graceTimer);
    this.#stopTranscode();
    this.#audio?.close();
    this.#audio = undefined;
  }

  #configureAudio(asc: Uint8Array): void {
    this.#audio ??= new AudioPipeline({
      packets: (packets) => this.#sendAudio(packets),
      corrupt: () => {
        this.#corruptFrames++;
        this.#audioStats.corrupt();
        const now = performance.now();
        if (now - this.#lastCorruptWarning > 10_000) {
          this.#lastCorruptWarning = now;
          this.#log.warn(
            "room {room}: corrupt AAC frames replaced by silence ({count} so far)",
            { room: this.room.name, count: this.#corruptFrames },
          );
        }
      },
      dropped: (n) => {
        this.#audioStats.dropped(n);
        // Keep the audio clock on the RTMP clock: the dropped frames' time passes anyway.
        const asc = this.room.audioInfo;
        // 1024 samples at the core rate per frame (HE-AAC: 2048 at the doubled rate).
        const rate = asc?.sampleRate ?? OPUS_SAMPLE_RATE;
        if (this.#audioTs !== undefined) {
          this.#audioTs = (this.#audioTs + Math.round(n * 1024 * OPUS_SAMPLE_RATE / rate)) >>> 0;
        }
      },
      timing: (micros) => this.#audioStats.transcoded(micros),
      error: (message) =>
        this.#log.warn("room {room}: audio cannot be transcoded: {message}", {
          room: this.room.name,
          message,
        }),
    });
    this.#audio.configure(asc);
  }

  #sendAudio(packets: Uint8Array[]): void {
    for (const payload of packets) {
      if (this.#audioTs === undefined) return;
      const packet = {
        sequenceNumber: this.#audioSeq,
        timestamp: this.#audioTs,
        marker: false,
        payload,
      };
      this.#audioSeq = (this.#audioSeq + 1) & 0xffff;
      this.#lastAudioTs = this.#audioTs;
      this.#audioTs = (this.#audioTs + OPUS_FRAME) >>> 0;
      for (const v of this.#viewers) v.audio(packet);
    }
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

  state(state: "live" | "ended", _room?: Room, reason?: StopReason): void {
    clearTimeout(this.#graceTimer);
    // A new publish decides anew whether it needs transcoding.
    this.#stopTranscode();
    this.#declinedAt = -Infinity;
    if (state === "ended" && reason !== "unpublished" && reason !== "shutdown") {
      // The publisher dropped: viewers keep their peers and wait for it to come back.
      this.#graceTimer = setTimeout(() => {
        for (const v of this.#viewers) v.roomState("ended");
      }, this.#graceMs);
      for (const v of this.#viewers) v.roomState("waiting");
      this.#resetGop();
      return;
    }
    if (state === "live") {
      // A new publish: its clock starts anew; rebase on its first frame.
      this.#tsBase = undefined;
      this.#audioRebase = true;
    }
    this.#resetGop();
    for (const v of this.#viewers) v.roomState(state);
  }

  #resetGop(): void {
    this.#gop = [];
    this.#gopBytes = 0;
    this.#gopValid = false;
  }

  unit(unit: MediaUnit): void {
    if (unit.kind === "audio-config" && unit.codec === "aac") {
      this.#configureAudio(unit.record);
      return;
    }
    if (unit.kind === "audio" && unit.codec === "aac") {
      if (this.#audioRebase) {
        // First audio of a publish: continue the previous timeline, or start one
        // derived from the RTMP clock.
        this.#audioRebase = false;
        this.#audioTs = this.#lastAudioTs === undefined
          ? (unit.dts * AUDIO_CLOCK + random32()) >>> 0
          : (this.#lastAudioTs + OPUS_FRAME) >>> 0;
      }
      this.#audio?.push(unit.data);
      return;
    }
    if (unit.kind === "video-config" && this.#transcode) {
      this.#transcode.setConfig(unit.record);
      return;
    }
    if (unit.kind !== "video" || unit.codec !== "h264") return;
    if (this.#transcode?.closed) this.#stopTranscode();
    if (this.#transcode || this.#maybeTranscode()) {
      this.#transcode!.push(unit);
      return;
    }
    this.#forward(unit, this.room.avc?.nalLengthSize ?? 4, true);
  }

  /** A viewer needs a picture now (joined, PLI/FIR): transcoded rooms make an IDR. */
  keyframeWanted(): void {
    this.#transcode?.requestKeyframe();
  }

  /** Starts transcoding when the policy says this room needs it; true when running. */
  #maybeTranscode(): boolean {
    const policy = this.#policy;
    if (!policy || !this.room.live || !this.room.videoConfig) return false;
    if (this.#transcode) return true;
    if (policy.mode === "auto" && !this.room.bFrames) return false;
    if (performance.now() - this.#declinedAt < 10_000) return false;
    const decision = policy.decide(this.room);
    this.room.setTranscode({
      active: decision.transcode,
      reason: decision.reason,
      engine: decision.engine,
    });
    if (!decision.transcode) {
      this.#declinedAt = performance.now();
      return false;
    }
    this.#resetGop();
    this.#transcode = RoomTranscode.start(
      this.room,
      policy,
      decision.engine!,
      this.#log,
      (frame) => {
        this.#forward(frame, 4, false);
      },
    );
    return true;
  }

  #stopTranscode(): void {
    if (!this.#transcode) return;
    this.#transcode.close();
    this.#transcode = undefined;
    this.room.setTranscode(undefined);
  }

  /** Packetizes one access unit once and hands it to every viewer. */
  #forward(frame: VideoFrame, lengthSize: 1 | 2 | 4, withAvcC: boolean): void {
    const start = performance.now();
    const packetized = this.#packetize(frame, lengthSize, withAvcC);
    if (!packetized) return;
    this.#remember(packetized);
    for (const v of this.#viewers) v.video(packetized.packets, packetized.keyframe);
    // Native viewers' copies leave from the send threads: the pool reports when the last did.
    const pooled = flushFanout(start);
    if (this.#viewers.size && !pooled) {
      this.#audioStats.fannedOut?.((performance.now() - start) / 1000);
    }
  }

  #timestamp(frame: VideoFrame): number {
    const pts = (frame.dts + frame.cts) * VIDEO_CLOCK;
    if (this.#tsBase === undefined) {
      const start = this.#lastTs === undefined ? random32() : this.#lastTs + RECONNECT_STEP;
      this.#tsBase = (start - pts) >>> 0;
    }
    return (pts + this.#tsBase) >>> 0;
  }

  #packetize(
    frame: VideoFrame,
    lengthSize: 1 | 2 | 4,
    withAvcC: boolean,
  ): PacketizedFrame | undefined {
    // Transcoded keyframes carry their SPS/PPS in band; source ones get the avcC's.
    const avc = withAvcC ? this.room.avc : undefined;
    let nals: Uint8Array[];
    try {
      nals = [...iterateAvccNalUnits(frame.data, lengthSize)];
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
