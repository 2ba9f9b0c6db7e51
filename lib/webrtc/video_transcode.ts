/**
 * When a room's H.264 cannot pass through to browsers (B-frames: what OBS sends by
 * default), its video is transcoded in-process (libavcodec + openh264 in a Worker,
 * natively through FFI or, where those libraries are missing, in WebAssembly;
 * lib/codec/video/) to Constrained Baseline with a keyframe every 2 s and on
 * demand. Only rooms that need it and have viewers pay for it, up to a limit.
 *
 * @module
 */
import {
  type TranscodedFrame,
  type TranscodeEngine,
  type TranscodeEngineChoice,
  type TranscodeEnginePreference,
  VideoTranscoder,
} from "../codec/video/mod.ts";
import type { VideoFrame } from "../media.ts";
import type { Room } from "../room/mod.ts";
import type { Logger } from "../log.ts";

/** `--video-transcode`. */
export type TranscodeMode = "auto" | "always" | "never";

/** Why a room is or is not transcoded, as `/api/rooms` says it. */
export interface TranscodeState {
  readonly active: boolean;
  readonly reason: string;
  /** The engine running it (when active). */
  readonly engine?: TranscodeEngine;
}

/** Settings of {@linkcode TranscodePolicy}. */
export interface TranscodePolicyOptions {
  /** `--video-transcode`. */
  mode: TranscodeMode;
  /** `--max-transcodes`. */
  maxConcurrent: number;
  /** `--transcode-max-height` (0: never scale). */
  maxHeight: number;
  /** `--transcode-engine`. */
  engine: TranscodeEnginePreference;
  /**
   * `--transcode-wasm-max-height`: tallest source the WebAssembly engine takes (it
   * costs ≈ 3× the native one); taller rooms pass through with the warning.
   */
  wasmMaxHeight: number;
}

/** The server-wide policy: mode, the concurrency limit, which engine the host can run. */
export class TranscodePolicy {
  readonly mode: TranscodeMode;
  readonly maxConcurrent: number;
  readonly maxHeight: number;
  readonly #options: TranscodePolicyOptions;
  readonly #log: Logger;
  #active = 0;
  #choice: TranscodeEngineChoice | undefined;
  #wasmAnnounced = false;

  constructor(options: TranscodePolicyOptions, log: Logger) {
    this.mode = options.mode;
    this.maxConcurrent = options.maxConcurrent;
    this.maxHeight = options.maxHeight;
    this.#options = options;
    this.#log = log;
  }

  /** Transcodes running now. */
  get active(): number {
    return this.#active;
  }

  /** Whether a room should be transcoded now, on which engine, and why (not). */
  decide(room: Room): { transcode: boolean; reason: string; engine?: TranscodeEngine } {
    if (this.mode === "never") return { transcode: false, reason: "--video-transcode never" };
    if (this.mode === "auto" && !room.bFrames) {
      return { transcode: false, reason: "passthrough: no B-frames" };
    }
    const why = this.mode === "always" ? "--video-transcode always" : "B-frames";
    const choice = this.#choice ??= VideoTranscoder.chooseEngine({ engine: this.#options.engine });
    if (!choice.ok) {
      this.#log.warn("room {room} needs transcoding ({why}) but cannot: {reason}", {
        room: room.name,
        why,
        reason: choice.reason,
      });
      return { transcode: false, reason: `passthrough: ${choice.reason}` };
    }
    if (choice.engine === "wasm") {
      const height = room.info().video?.height ?? 0;
      const cap = this.#options.wasmMaxHeight;
      if (height > cap) {
        const native = choice.nativeUnavailable
          ? `; native engine: ${choice.nativeUnavailable}`
          : "";
        const reason =
          `passthrough: ${height}p is above --transcode-wasm-max-height ${cap} of the WebAssembly transcoder${native}`;
        this.#log.warn("room {room} needs transcoding ({why}) but cannot: {reason}", {
          room: room.name,
          why,
          reason,
        });
        return { transcode: false, reason };
      }
      if (!this.#wasmAnnounced && choice.nativeUnavailable) {
        this.#wasmAnnounced = true;
        this.#log.warn(
          "video is transcoded by the WebAssembly engine, about 3x the CPU of the native one: {reason}",
          { reason: choice.nativeUnavailable },
        );
      }
    }
    if (this.#active >= this.maxConcurrent) {
      this.#log.warn(
        "room {room} needs transcoding ({why}) but {max} transcodes already run; passthrough",
        { room: room.name, why, max: this.maxConcurrent },
      );
      return {
        transcode: false,
        reason: `passthrough: ${this.maxConcurrent} transcodes already run`,
      };
    }
    return {
      transcode: true,
      reason: choice.engine === "wasm" ? `${why}, WebAssembly engine` : why,
      engine: choice.engine,
    };
  }

  acquire(): void {
    this.#active++;
  }

  release(): void {
    this.#active = Math.max(0, this.#active - 1);
  }
}

/** One room's running transcode: source frames in, Baseline frames out. */
export class RoomTranscode {
  readonly #room: Room;
  readonly #policy: TranscodePolicy;
  readonly #log: Logger;
  readonly #emit: (frame: VideoFrame) => void;
  #transcoder: VideoTranscoder | undefined;
  #closed = false;
  /** Outputs before this presentation time are the catch-up of the cached GOP. */
  #liveFrom = -Infinity;
  #waitingForKeyframe = true;
  #lastKeyframeRequest = -Infinity;

  private constructor(
    room: Room,
    policy: TranscodePolicy,
    log: Logger,
    emit: (f: VideoFrame) => void,
  ) {
    this.#room = room;
    this.#policy = policy;
    this.#log = log;
    this.#emit = emit;
  }

  /**
   * Starts transcoding a room. The cached GOP goes in first so the decoder catches
   * up, decoding only what its newest picture depends on and encoding none of it;
   * that newest picture is the first output, an IDR, so viewers get a picture at once.
   */
  static start(
    room: Room,
    policy: TranscodePolicy,
    engine: TranscodeEngine,
    log: Logger,
    emit: (f: VideoFrame) => void,
  ): RoomTranscode {
    const t = new RoomTranscode(room, policy, log, emit);
    policy.acquire();
    const avcC = room.videoConfig?.record;
    const bitrate = Math.min(
      20_000_000,
      Math.max(300_000, room.info().video?.bitrate || 2_500_000),
    );
    const started = performance.now();
    VideoTranscoder.create({
      engine,
      avcC: avcC!,
      bitrate,
      keyframeIntervalMs: 2000,
      maxHeight: policy.maxHeight || undefined,
      // Room for the cached GOP (OBS: up to 8.3 s) the decoder must catch up through at
      // start; beyond that the worker is really behind and drops to a source keyframe.
      maxQueuedFrames: 300,
    }).then((transcoder) => {
      if (t.#closed) {
        void transcoder.close();
        return;
      }
      t.#transcoder = transcoder;
      transcoder.onFrame((out) => t.#output(out));
      transcoder.onError((err) => {
        log.warn("room {room}: video transcoder failed: {error}", {
          room: room.name,
          error: err.message,
        });
        t.close();
      });
      const gop = room.gop().filter((u): u is VideoFrame => u.kind === "video");
      if (gop.length) {
        // Decode the cached GOP only as far as its newest picture needs (no encoding,
        // no non-reference frames): that picture comes out first, as an IDR.
        t.#liveFrom = Math.max(...gop.map((f) => f.dts + f.cts));
        transcoder.catchUp(t.#liveFrom);
      }
      for (const f of gop) transcoder.push(f);
      log.info(
        "room {room}: transcoding video to Constrained Baseline ({engine}, started in {ms} ms)",
        {
          room: room.name,
          engine,
          ms: Math.round(performance.now() - started),
        },
      );
    }).catch((err) => {
      log.warn("room {room}: cannot start the video transcoder: {error}", {
        room: room.name,
        error: (err as Error).message,
      });
      t.close();
    });
    return t;
  }

  /** Whether it stopped (failed or closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** A source frame. */
  push(frame: VideoFrame): void {
    this.#transcoder?.push(frame);
  }

  /** A new source sequence header. */
  setConfig(avcC: Uint8Array): void {
    this.#transcoder?.setConfig(avcC);
  }

  /** A viewer needs a keyframe (joined, PLI/FIR): an IDR on the next picture, ≤ 2 a second. */
  requestKeyframe(): void {
    const now = performance.now();
    if (now - this.#lastKeyframeRequest < 500) return;
    this.#lastKeyframeRequest = now;
    this.#transcoder?.requestKeyframe();
  }

  #output(out: TranscodedFrame): void {
    if (out.pts < this.#liveFrom) return;
    if (this.#waitingForKeyframe) {
      if (!out.keyframe) {
        this.#transcoder?.requestKeyframe();
        return;
      }
      this.#waitingForKeyframe = false;
    }
    this.#emit({
      kind: "video",
      codec: "h264",
      dts: out.pts,
      cts: 0,
      keyframe: out.keyframe,
      data: out.data,
    });
  }

  /** Stops the transcoder and gives its slot back. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#policy.release();
    const t = this.#transcoder;
    this.#transcoder = undefined;
    void t?.close().catch(() => {});
    this.#log.debug("room {room}: video transcoder stopped", { room: this.#room.name });
  }
}
