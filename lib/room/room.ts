/**
 * A room: at most one publisher, any number of viewers, the GOP cache a new viewer
 * starts from, and the stream's measured description.
 *
 * @module
 */
import type { AudioConfig, MediaUnit, VideoConfig, VideoFrame } from "../media.ts";
import {
  type AudioSpecificConfig,
  type AvcDecoderConfig,
  containsBSlice,
  parseAudioSpecificConfig,
  parseAvcDecoderConfig,
  parseSps,
  type SpsInfo,
} from "../codec/mod.ts";
import { FrameRateMeter, RateMeter } from "./stats.ts";
import type { Logger } from "../log.ts";

/** Why a publish ended (as webhooks and logs say it). */
export type StopReason = "unpublished" | "disconnected" | "timeout" | "shutdown" | "error";

/** What a room tells its viewers and the API about its stream. */
export interface StreamInfo {
  readonly video?: {
    readonly codec: string;
    readonly profile?: string;
    readonly level?: string;
    readonly profileLevelId?: string;
    readonly width?: number;
    readonly height?: number;
    readonly fps?: number;
    readonly bitrate: number;
  };
  readonly audio?: {
    readonly codec: string;
    readonly profile?: string;
    readonly sampleRate?: number;
    readonly channels?: number;
    readonly bitrate: number;
    /** False when the codec cannot be delivered (anything but AAC). */
    readonly supported: boolean;
  };
  readonly bFrames: boolean;
  readonly encoder?: string;
  /** Whether the video is transcoded for browsers, and why (not); absent until decided. */
  readonly transcode?: {
    readonly active: boolean;
    readonly reason: string;
    /** The transcoder engine, when active. */
    readonly engine?: "native" | "wasm";
  };
  readonly frames: { readonly video: number; readonly audio: number; readonly keyframes: number };
}

/** The JSON a room shows in `/api/rooms`. */
export interface RoomSnapshot extends Partial<StreamInfo> {
  readonly name: string;
  readonly live: boolean;
  readonly since?: string;
  readonly viewers: number;
}

/** A viewer (or any consumer) attached to a room. */
export interface RoomSubscriber {
  /** A unit from the publisher, in order. Must not throw; must not block. */
  unit(unit: MediaUnit): void;
  /** The room went live (a publisher started) or ended (it stopped). */
  state(state: "live" | "ended", room: Room, reason?: StopReason): void;
}

/** Start/stop notifications for webhooks and metrics. */
export type RoomEvent =
  | {
    readonly type: "stream.started";
    readonly room: string;
    readonly at: Date;
    stream: StreamInfo;
  }
  | {
    readonly type: "stream.stopped";
    readonly room: string;
    readonly at: Date;
    readonly stream: StreamInfo;
    readonly reason: StopReason;
  };

/** Bounds of a room's caches. */
export interface RoomLimits {
  /** Most bytes the GOP cache holds before it gives up until the next keyframe. */
  readonly maxGopBytes: number;
  readonly maxViewers: number;
}

const PROFILE_NAMES: Record<number, string> = {
  66: "Baseline",
  77: "Main",
  88: "Extended",
  100: "High",
  110: "High 10",
  122: "High 4:2:2",
  244: "High 4:4:4",
};

/** H.264 profile name, with "Constrained Baseline" told apart by its constraint flag. */
export function h264ProfileName(sps: SpsInfo): string {
  if (sps.profileIdc === 66 && (sps.constraintFlags & 0x40)) return "Constrained Baseline";
  return PROFILE_NAMES[sps.profileIdc] ?? `profile ${sps.profileIdc}`;
}

/** The publisher side of a room, as RTMP's sink sees it. */
export interface Publication {
  readonly id: number;
  push(unit: MediaUnit): void;
  metadata(meta: Record<string, unknown>): void;
  end(reason: StopReason): void;
}

let nextPublicationId = 1;

/** One room. Created by the registry; never constructed by other stages. */
export class Room {
  readonly name: string;
  readonly #log: Logger;
  readonly #limits: RoomLimits;
  readonly #emit: (event: RoomEvent) => void;
  readonly #subscribers = new Set<RoomSubscriber>();
  #viewers = 0;

  #publication: Publication | undefined;
  #since: Date | undefined;
  #started = false;
  #startTimer: ReturnType<typeof setTimeout> | undefined;
  #encoder: string | undefined;

  // What the stream is, learned from config records and frames.
  #videoConfig: VideoConfig | undefined;
  #avc: AvcDecoderConfig | undefined;
  #sps: SpsInfo | undefined;
  #audioConfig: AudioConfig | undefined;
  #asc: AudioSpecificConfig | undefined;
  #audioCodec: string | undefined;
  #audioHint: { sampleRate?: number; channels?: number } = {};
  #metadata: Record<string, unknown> = {};
  #bFrames = false;
  #bytesIn = 0;
  #transcode: { active: boolean; reason: string; engine?: "native" | "wasm" } | undefined;
  #videoFrames = 0;
  #audioFrames = 0;
  #keyframes = 0;
  #videoRate = new RateMeter();
  #audioRate = new RateMeter();
  #fps = new FrameRateMeter();
  #warned = new Set<string>();

  // The GOP cache: every unit since the last keyframe, for viewers that join now.
  #gop: MediaUnit[] = [];
  #gopBytes = 0;
  #gopValid = false;

  constructor(name: string, limits: RoomLimits, emit: (e: RoomEvent) => void, log: Logger) {
    this.name = name;
    this.#limits = limits;
    this.#emit = emit;
    this.#log = log;
  }

  /** Whether a publisher is sending now. */
  get live(): boolean {
    return this.#publication !== undefined;
  }

  /** Viewers attached now. */
  get viewers(): number {
    return this.#viewers;
  }

  /** The current video config record (avcC), if any. */
  get videoConfig(): VideoConfig | undefined {
    return this.#videoConfig;
  }

  /** The current audio config record (ASC), if any. */
  get audioConfig(): AudioConfig | undefined {
    return this.#audioConfig;
  }

  /** Parsed AudioSpecificConfig of the current audio config, if any. */
  get audioInfo(): AudioSpecificConfig | undefined {
    return this.#asc;
  }

  /** Parsed SPS of the current video config, if any. */
  get sps(): SpsInfo | undefined {
    return this.#sps;
  }

  /** Parsed avcC of the current video config, if any. */
  get avc(): AvcDecoderConfig | undefined {
    return this.#avc;
  }

  /** Records whether the video is transcoded now (the WebRTC stage decides). */
  setTranscode(
    state: { active: boolean; reason: string; engine?: "native" | "wasm" } | undefined,
  ): void {
    this.#transcode = state;
  }

  /** Media bytes received since the room was created (all publishes). */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Whether B-frames were seen in this publish. */
  get bFrames(): boolean {
    return this.#bFrames;
  }

  /** Units since the last keyframe (empty when the cache was given up). */
  gop(): readonly MediaUnit[] {
    return this.#gopValid ? this.#gop : [];
  }

  /** Attaches a consumer of the room's units (a viewer fan-out, a transcoder). */
  subscribe(subscriber: RoomSubscriber): void {
    this.#subscribers.add(subscriber);
  }

  /** Detaches a consumer. */
  unsubscribe(subscriber: RoomSubscriber): void {
    this.#subscribers.delete(subscriber);
  }

  /** Counts one more viewer; false when the room is full. */
  join(): boolean {
    if (this.#viewers >= this.#limits.maxViewers) return false;
    this.#viewers++;
    return true;
  }

  /** Counts one viewer less. */
  leave(): void {
    if (this.#viewers > 0) this.#viewers--;
  }

  /** A description of the stream now. */
  info(): StreamInfo {
    const sps = this.#sps;
    const meta = this.#metadata;
    const metaNumber = (k: string) => typeof meta[k] === "number" ? meta[k] as number : undefined;
    const video = this.#videoConfig || this.#videoFrames
      ? {
        codec: this.#videoConfig?.codec ?? "h264",
        profile: sps ? h264ProfileName(sps) : undefined,
        level: sps ? (sps.levelIdc / 10).toFixed(1) : undefined,
        profileLevelId: sps?.profileLevelId,
        width: sps?.width ?? metaNumber("width"),
        height: sps?.height ?? metaNumber("height"),
        fps: this.#fps.fps() ?? sps?.fps ?? metaNumber("framerate"),
        bitrate: this.#videoRate.bitsPerSecond(),
      }
      : undefined;
    const audio = this.#audioCodec
      ? {
        codec: this.#audioCodec,
        profile: this.#asc?.profileName,
        sampleRate: this.#asc
          ? (this.#asc.extensionSampleRate ?? this.#asc.sampleRate)
          : this.#audioHint.sampleRate,
        channels: this.#asc ? this.#asc.channels : this.#audioHint.channels,
        bitrate: this.#audioRate.bitsPerSecond(),
        supported: this.#audioCodec === "aac",
      }
      : undefined;
    return {
      video,
      audio,
      bFrames: this.#bFrames,
      transcode: this.#transcode,
      encoder: this.#encoder ??
        (typeof meta.encoder === "string" ? meta.encoder : undefined),
      frames: { video: this.#videoFrames, audio: this.#audioFrames, keyframes: this.#keyframes },
    };
  }

  /** The API view of the room. */
  snapshot(): RoomSnapshot {
    const base = { name: this.name, live: this.live, viewers: this.viewers };
    if (!this.live) return base;
    return { ...base, since: this.#since?.toISOString(), ...this.info() };
  }

  /** Starts a publish; the registry has checked that none is running. */
  startPublication(encoder: string | undefined): Publication {
    this.#resetStream();
    this.#encoder = encoder;
    this.#since = new Date();
    const id = nextPublicationId++;
    const publication: Publication = {
      id,
      push: (unit) => {
        if (this.#publication === publication) this.#push(unit);
      },
      metadata: (meta) => {
        if (this.#publication === publication) this.#metadata = { ...meta };
      },
      end: (reason) => {
        if (this.#publication === publication) this.#stop(reason);
      },
    };
    this.#publication = publication;
    // Announce once the stream has described itself, or after 2 s whatever it sent.
    this.#startTimer = setTimeout(() => this.#announceStart(), 2000);
    for (const s of this.#subscribers) s.state("live", this);
    return publication;
  }

  #resetStream(): void {
    this.#videoConfig = undefined;
    this.#avc = undefined;
    this.#sps = undefined;
    this.#audioConfig = undefined;
    this.#asc = undefined;
    this.#audioCodec = undefined;
    this.#audioHint = {};
    this.#metadata = {};
    this.#bFrames = false;
    this.#transcode = undefined;
    this.#videoFrames = this.#audioFrames = this.#keyframes = 0;
    this.#videoRate = new RateMeter();
    this.#audioRate = new RateMeter();
    this.#fps = new FrameRateMeter();
    this.#warned.clear();
    this.#gop = [];
    this.#gopBytes = 0;
    this.#gopValid = false;
    this.#started = false;
  }

  #announceStart(): void {
    clearTimeout(this.#startTimer);
    if (this.#started || !this.#publication) return;
    this.#started = true;
    this.#emit({ type: "stream.started", room: this.name, at: new Date(), stream: this.info() });
  }

  #stop(reason: StopReason): void {
    clearTimeout(this.#startTimer);
    const info = this.info();
    const wasStarted = this.#started;
    this.#publication = undefined;
    this.#since = undefined;
    this.#gop = [];
    this.#gopBytes = 0;
    this.#gopValid = false;
    if (wasStarted) {
      this.#emit({ type: "stream.stopped", room: this.name, at: new Date(), stream: info, reason });
    }
    for (const s of this.#subscribers) s.state("ended", this, reason);
  }

  #warnOnce(key: string, message: string, props: Record<string, unknown> = {}): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log.warn(message, { room: this.name, ...props });
  }

  #push(unit: MediaUnit): void {
    if (unit.kind === "video" || unit.kind === "audio") this.#bytesIn += unit.data.length;
    switch (unit.kind) {
      case "video-config":
        this.#onVideoConfig(unit);
        break;
      case "video":
        this.#onVideoFrame(unit);
        break;
      case "audio-config":
        this.#audioCodec = unit.codec;
        if (unit.codec === "aac") {
          try {
            this.#asc = parseAudioSpecificConfig(unit.record);
            this.#audioConfig = unit;
          } catch (err) {
            this.#warnOnce("asc", "room {room}: unreadable AudioSpecificConfig: {error}", {
              error: (err as Error).message,
            });
          }
        }
        break;
      case "audio":
        this.#audioFrames++;
        this.#audioRate.add(unit.data.length);
        if (this.#audioCodec !== unit.codec) this.#audioCodec = unit.codec;
        if (unit.codec !== "aac") {
          this.#audioHint = { sampleRate: unit.sampleRate, channels: unit.channels };
          this.#warnOnce(
            "audio-codec",
            "room {room}: audio codec {codec} is not supported (send AAC); the room stays live with video only",
            { codec: unit.codec },
          );
        }
        break;
      case "video-end":
        break;
    }
    this.#cache(unit);
    for (const s of this.#subscribers) s.unit(unit);
  }

  #onVideoConfig(unit: VideoConfig): void {
    this.#videoConfig = unit;
    if (unit.codec !== "h264") {
      this.#warnOnce(
        "video-codec",
        "room {room}: video codec {codec} cannot be delivered to browsers yet (send H.264)",
        { codec: unit.codec },
      );
      return;
    }
    try {
      this.#avc = parseAvcDecoderConfig(unit.record);
      this.#sps = this.#avc.sps[0] ? parseSps(this.#avc.sps[0]) : undefined;
      if (this.#sps?.maxNumReorderFrames) this.#markBFrames("the SPS allows frame reordering");
    } catch (err) {
      this.#warnOnce("avcc", "room {room}: unreadable AVC sequence header: {error}", {
        error: (err as Error).message,
      });
    }
  }

  #onVideoFrame(unit: VideoFrame): void {
    this.#videoFrames++;
    this.#videoRate.add(unit.data.length);
    this.#fps.add(unit.dts);
    if (unit.keyframe) {
      this.#keyframes++;
      if (!this.#started && this.#videoConfig) this.#announceStart();
    }
    if (!this.#bFrames && unit.codec === "h264") {
      if (unit.cts !== 0) this.#markBFrames("frames carry composition offsets");
      else {
        try {
          if (containsBSlice(unit.data, this.#avc?.nalLengthSize ?? 4)) {
            this.#markBFrames("B slices seen");
          }
        } catch { /* a malformed frame is the decoder's problem, not detection's */ }
      }
    }
  }

  #markBFrames(why: string): void {
    if (this.#bFrames) return;
    this.#bFrames = true;
    this.#warnOnce(
      "bframes",
      "room {room}: the stream has B-frames ({why}); browsers cannot play them over WebRTC as " +
        "sent, so watched rooms are transcoded (--video-transcode). To save that cost, in OBS: Settings → Output → Output Mode Advanced → Streaming → x264 Options: bframes=0 " +
        "(or Profile: baseline), Keyframe Interval 2 s",
      { why },
    );
  }

  #cache(unit: MediaUnit): void {
    if (unit.kind === "video-config" || unit.kind === "audio-config") return;
    if (unit.kind === "video" && unit.keyframe) {
      this.#gop = [];
      this.#gopBytes = 0;
      this.#gopValid = true;
    }
    if (!this.#gopValid) return;
    const size = unit.kind === "video-end" ? 0 : unit.data.length;
    if (this.#gopBytes + size > this.#limits.maxGopBytes) {
      this.#warnOnce("gop", "room {room}: GOP over {max} bytes; new viewers wait for a keyframe", {
        max: this.#limits.maxGopBytes,
      });
      this.#gop = [];
      this.#gopBytes = 0;
      this.#gopValid = false;
      return;
    }
    this.#gop.push(unit);
    this.#gopBytes += size;
  }

  /** Stops timers; the registry calls this when the room goes away. */
  dispose(): void {
    clearTimeout(this.#startTimer);
  }
}
