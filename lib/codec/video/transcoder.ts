/**
 * {@linkcode VideoTranscoder}: H.264 with B-frames in, H.264 Constrained
 * Baseline without B-frames out, on a Worker of its own.
 *
 * @module
 */

import { NalType, parseAvcDecoderConfig, parseSps } from "../h264.ts";
import {
  chooseTranscodeEngine,
  detectTranscodeSupport,
  type TranscodeEngine,
  type TranscodeEngineChoice,
  type TranscodeEnginePreference,
  type TranscodeSupport,
} from "./detect.ts";
import { probeTranscodeHost } from "./host.ts";
import type { NativeStats } from "./native.ts";
import type { FromWorker, ToWorker, WorkerOutput } from "./protocol.ts";

/** Settings of {@linkcode VideoTranscoder.create}. */
export interface VideoTranscoderOptions {
  /** The source's AVCDecoderConfigurationRecord (FLV AVC sequence header). */
  avcC: Uint8Array;
  /** Target bits per second of the output (e.g. the source's measured bitrate). */
  bitrate: number;
  /** IDR cadence in milliseconds of presentation time (e.g. 2000); 0 = first picture only. */
  keyframeIntervalMs: number;
  /** Scale pictures taller than this down to it, keeping the aspect ratio. Default: never. */
  maxHeight?: number;
  /** Source frame rate for rate control. Default: the SPS timing, else 30. */
  frameRate?: number;
  /**
   * Frames handed to the Worker and not yet encoded beyond which input is
   * dropped up to the next source keyframe. Default 15 (half a second at 30 fps).
   */
  maxQueuedFrames?: number;
  /** openh264 complexity: "low" (default, fastest), "medium", "high". */
  complexity?: "low" | "medium" | "high";
  /** libavcodec decoder threads. Default 1: each extra thread adds a frame of delay. */
  decoderThreads?: number;
  /** The shim to load instead of the default places (see `shimCandidates`). */
  shimPath?: string;
  /**
   * Which build of the shim runs: "native" (Debian's libraries through FFI),
   * "wasm" (the bundled WebAssembly module: no system library, ≈ 3× the CPU), or
   * "auto" (default: native where it can run, else wasm).
   */
  engine?: TranscodeEnginePreference;
  /** Milliseconds to wait for the Worker to load the libraries. Default 30000 (a cold `deno test` type-checks the Worker first). */
  startTimeoutMs?: number;
}

/** One source access unit, as the media path carries it. */
export interface TranscoderInputFrame {
  /** Decode timestamp in milliseconds. */
  dts: number;
  /** Composition offset in milliseconds (pts = dts + cts). */
  cts: number;
  /** True at random access points. */
  keyframe: boolean;
  /** NAL units behind big-endian lengths of the avcC's size (4 for every known encoder). */
  data: Uint8Array;
}

/** One encoded picture, in presentation order. */
export interface TranscodedFrame {
  /** Presentation time in milliseconds, on the input's clock; as a media frame: dts = pts, cts 0. */
  pts: number;
  /** True for IDR pictures, which carry SPS and PPS in front. */
  keyframe: boolean;
  /** The access unit's NAL units without start codes (SPS, PPS, slice on keyframes). */
  nalus: Uint8Array[];
  /** The same NAL units behind 4-byte lengths (AVCC), ready to be a media frame's data. */
  data: Uint8Array;
  /** On keyframes: the sequence parameter set. */
  sps?: Uint8Array;
  /** On keyframes: the picture parameter set. */
  pps?: Uint8Array;
  /** On keyframes: an avcC record describing the output (for a VideoConfig). */
  avcC?: Uint8Array;
  width: number;
  height: number;
}

/** Counters of one transcoder. */
export interface VideoTranscoderStats {
  /** Frames given to {@linkcode VideoTranscoder.push}. */
  framesIn: number;
  /** Frames handed to the Worker. */
  framesSent: number;
  /** Encoded pictures delivered to listeners. */
  framesOut: number;
  /** Of those, IDR pictures. */
  keyframesOut: number;
  /** Frames dropped because the Worker fell behind (each drop lasts to a source keyframe). */
  framesDropped: number;
  /** Times the Worker fell behind. */
  dropEvents: number;
  /** Frames skipped while waiting for the first source keyframe. */
  framesBeforeKeyframe: number;
  /** Access units the shim refused as malformed. */
  malformed: number;
  /** Frames with the Worker now. */
  queued: number;
  /** Wall-clock milliseconds the Worker spent in native decode + encode (includes preemption). */
  busyMs: number;
  /**
   * CPU milliseconds of the Worker's thread (Linux, read access to /proc), refreshed
   * at most every 250 ms and on flush: this transcoder's whole cost, for metrics.
   */
  cpuMs?: number;
  /** The last refusal or encoder failure, as the shim worded it. */
  lastError?: string;
  /** The shim's own counters (decode/encode errors, sizes …), as of the last reply. */
  native?: NativeStats;
}

const COMPLEXITY = { low: 0, medium: 1, high: 2 } as const;

/**
 * Re-encodes an H.264 stream that WebRTC receivers cannot play (B-frames, long
 * GOPs) into Constrained Baseline without B-frames: FFmpeg's decoder and
 * openh264's encoder, loaded through FFI in a Worker owned by this object.
 *
 * ```ts ignore
 * const support = VideoTranscoder.available();
 * if (!support.ok) log.warn(support.reason); // "… apt-get install libopenh264-7"
 * const tc = await VideoTranscoder.create({ avcC, bitrate: 2_500_000, keyframeIntervalMs: 2000 });
 * tc.onFrame((out) => room.sendVideo({ dts: out.pts, cts: 0, keyframe: out.keyframe, data: out.data }));
 * tc.push(frame); // per source frame; never blocks
 * tc.requestKeyframe(); // on PLI / new viewer
 * await tc.close();
 * ```
 */
export class VideoTranscoder {
  readonly #worker: Worker;
  /** The build this transcoder runs on. */
  readonly engine: TranscodeEngine;
  readonly #keyframeFlag: Int32Array;
  readonly #maxQueued: number;
  readonly #listeners = new Set<(frame: TranscodedFrame) => void>();
  readonly #errorListeners = new Set<(error: Error) => void>();
  readonly #flushes = new Map<number, () => void>();
  #closed?: Promise<void>;
  #closedResolve?: () => void;
  #nextFlushId = 1;
  #lengthSize: 1 | 2 | 4;
  #waitingForKeyframe = true;
  #dropping = false;
  #failed?: Error;
  readonly #stats: VideoTranscoderStats = {
    framesIn: 0,
    framesSent: 0,
    framesOut: 0,
    keyframesOut: 0,
    framesDropped: 0,
    dropEvents: 0,
    framesBeforeKeyframe: 0,
    malformed: 0,
    queued: 0,
    busyMs: 0,
  };

  private constructor(
    worker: Worker,
    engine: TranscodeEngine,
    maxQueued: number,
    lengthSize: 1 | 2 | 4,
  ) {
    this.#worker = worker;
    this.engine = engine;
    this.#keyframeFlag = new Int32Array(new SharedArrayBuffer(4));
    this.#maxQueued = maxQueued;
    this.#lengthSize = lengthSize;
  }

  /**
   * Whether native transcoding can run on this host; when not, `reason` names
   * what is missing and the apt-get command that fixes it. Loads the shim once
   * to prove it links.
   */
  static available(options: { shimPath?: string } = {}): TranscodeSupport {
    return detectTranscodeSupport(probeTranscodeHost({ shimPath: options.shimPath }));
  }

  /**
   * Which engine a transcoder created with `engine` (default "auto") would run on
   * here; with "auto" and no native engine, `nativeUnavailable` says why and how
   * to fix it. Loads the native shim once to prove it links.
   */
  static chooseEngine(
    options: { shimPath?: string; engine?: TranscodeEnginePreference } = {},
  ): TranscodeEngineChoice {
    return engineChoice(options, true);
  }

  /**
   * Starts a Worker, loads the libraries in it and opens a decoder for `avcC`.
   *
   * @throws {CodecError} When `avcC` is malformed.
   * @throws {RangeError} When a setting is out of range.
   * @throws {Error} When the libraries are missing or the Worker does not start (the message says why).
   */
  static async create(options: VideoTranscoderOptions): Promise<VideoTranscoder> {
    const config = parseAvcDecoderConfig(options.avcC);
    checkRange("bitrate", options.bitrate, 10_000, 100_000_000);
    checkRange("keyframeIntervalMs", options.keyframeIntervalMs, 0, 600_000);
    checkRange("maxHeight", options.maxHeight ?? 0, 0, 8192);
    checkRange("maxQueuedFrames", options.maxQueuedFrames ?? 15, 1, 1000);
    checkRange("decoderThreads", options.decoderThreads ?? 1, 1, 16);
    const support = engineChoice(options, false);
    if (!support.ok) throw new Error(`video transcoding unavailable: ${support.reason}`);
    let frameRate = options.frameRate ?? 0;
    if (frameRate === 0) {
      try {
        frameRate = parseSps(config.sps[0]).fps ?? 0;
      } catch {
        frameRate = 0; // the decoder reads it again, or 30
      }
    }
    checkRange("frameRate", frameRate, 0, 240);

    const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
    const transcoder = new VideoTranscoder(
      worker,
      support.engine,
      options.maxQueuedFrames ?? 15,
      config.nalLengthSize,
    );
    const ready = Promise.withResolvers<void>();
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    const timer = setTimeout(
      () => ready.reject(new Error(`transcoder Worker did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "ready") ready.resolve();
      else if (message.type === "failed") ready.reject(new Error(message.message));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      ready.reject(new Error(`transcoder Worker failed to start: ${event.message}`));
    };
    const init: ToWorker = {
      type: "init",
      engine: support.engine,
      shimPath: support.engine === "native" ? support.shimPath : undefined,
      keyframeFlag: transcoder.#keyframeFlag.buffer as SharedArrayBuffer,
      options: {
        avcC: options.avcC.slice(),
        frameRate,
        bitrate: options.bitrate,
        keyframeIntervalMs: options.keyframeIntervalMs,
        maxHeight: options.maxHeight ?? 0,
        complexity: COMPLEXITY[options.complexity ?? "low"],
        decoderThreads: options.decoderThreads ?? 1,
      },
    };
    worker.postMessage(init);
    try {
      await ready.promise;
    } catch (error) {
      worker.terminate();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    worker.onmessage = (event: MessageEvent<FromWorker>) => transcoder.#onMessage(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      transcoder.#fail(new Error(`transcoder Worker crashed: ${event.message}`));
    };
    return transcoder;
  }

  /**
   * Queues one source access unit (decode order). Never blocks: when the Worker
   * has `maxQueuedFrames` unfinished, this frame and every frame up to the next
   * source keyframe are dropped and counted (`framesDropped`, `dropEvents`).
   *
   * @returns Whether the frame was queued.
   */
  push(frame: TranscoderInputFrame): boolean {
    if (this.#closed || this.#failed) return false;
    const stats = this.#stats;
    stats.framesIn++;
    const full = stats.queued >= this.#maxQueued;
    if (this.#waitingForKeyframe) {
      if (!frame.keyframe) {
        stats.framesBeforeKeyframe++;
        return false;
      }
      this.#waitingForKeyframe = false;
    }
    if (this.#dropping) {
      if (!frame.keyframe || full) {
        stats.framesDropped++;
        return false;
      }
      this.#dropping = false;
    } else if (full) {
      this.#dropping = true;
      stats.dropEvents++;
      stats.framesDropped++;
      return false;
    }
    const data = frame.data.slice(); // a copy of just this unit, moved to the Worker
    const message: ToWorker = {
      type: "frame",
      data,
      pts: frame.dts + frame.cts,
      dts: frame.dts,
      lengthSize: this.#lengthSize,
    };
    this.#worker.postMessage(message, [data.buffer]);
    stats.framesSent++;
    stats.queued++;
    return true;
  }

  /**
   * Frames pushed from now on with a presentation time before `untilPts` are a
   * catch-up (a cached GOP): decoded only as far as later pictures need them, never
   * encoded; the first picture at or after `untilPts` comes out as an IDR.
   */
  catchUp(untilPts: number): void {
    if (this.#closed || this.#failed) return;
    this.#worker.postMessage({ type: "catchUp", untilPts } satisfies ToWorker);
  }

  /**
   * A new decoder configuration from the publisher (another sequence header).
   *
   * @throws {CodecError} When `avcC` is malformed.
   */
  setConfig(avcC: Uint8Array): void {
    const config = parseAvcDecoderConfig(avcC);
    if (this.#closed || this.#failed) return;
    this.#lengthSize = config.nalLengthSize;
    this.#worker.postMessage({ type: "config", avcC: avcC.slice() } satisfies ToWorker);
  }

  /**
   * Calls `listener` with every encoded picture, in presentation order.
   *
   * @returns A function that removes the listener.
   */
  onFrame(listener: (frame: TranscodedFrame) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Calls `listener` once if the Worker crashes (the transcoder is then closed);
   * the caller should fall back to passthrough.
   *
   * @returns A function that removes the listener.
   */
  onError(listener: (error: Error) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /**
   * Makes the next picture encoded an IDR (a PLI, a viewer joining). Requests
   * before that picture coalesce into one; callers rate-limit.
   */
  requestKeyframe(): void {
    Atomics.store(this.#keyframeFlag, 0, 1);
  }

  /**
   * End of the source stream: encodes the pictures the decoder still holds for
   * reordering and resolves once they were delivered. The next frame pushed
   * must be a keyframe (earlier ones are skipped).
   */
  flush(): Promise<void> {
    if (this.#closed || this.#failed) return Promise.resolve();
    const id = this.#nextFlushId++;
    const done = Promise.withResolvers<void>();
    this.#flushes.set(id, done.resolve);
    this.#waitingForKeyframe = true;
    this.#worker.postMessage({ type: "flush", id } satisfies ToWorker);
    return done.promise;
  }

  /** A snapshot of the counters. */
  stats(): VideoTranscoderStats {
    return { ...this.#stats, native: this.#stats.native && { ...this.#stats.native } };
  }

  /**
   * Stops the Worker and frees the native decoder and encoder. Frames still
   * queued are discarded; pending flushes resolve. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    const done = Promise.withResolvers<void>();
    this.#closedResolve = done.resolve;
    this.#closed = done.promise;
    this.#listeners.clear();
    if (this.#failed) {
      this.#finish();
    } else {
      this.#worker.postMessage({ type: "close" } satisfies ToWorker);
      // A Worker stuck in native code cannot answer; give up on a graceful stop after 2 s.
      const timer = setTimeout(() => this.#finish(), 2000);
      this.#closed.finally(() => clearTimeout(timer));
    }
    return this.#closed;
  }

  #finish(): void {
    this.#worker.terminate();
    for (const resolve of this.#flushes.values()) resolve();
    this.#flushes.clear();
    this.#stats.queued = 0;
    this.#closedResolve?.();
  }

  #onMessage(message: FromWorker): void {
    switch (message.type) {
      case "output": {
        const stats = this.#stats;
        stats.queued -= message.consumed;
        stats.busyMs = message.busyMs;
        if (message.cpuMs !== undefined) stats.cpuMs = message.cpuMs;
        stats.native = message.stats;
        if (message.error !== undefined) {
          stats.malformed++;
          stats.lastError = message.error;
        }
        if (message.encodeError !== undefined) stats.lastError = message.encodeError;
        for (const out of message.outputs) this.#deliver(out);
        break;
      }
      case "flushed":
        this.#flushes.get(message.id)?.();
        this.#flushes.delete(message.id);
        break;
      case "closed":
        this.#finish();
        break;
    }
  }

  #deliver(out: WorkerOutput): void {
    const frame = toTranscodedFrame(out);
    this.#stats.framesOut++;
    if (frame.keyframe) this.#stats.keyframesOut++;
    let thrown: unknown;
    for (const listener of this.#listeners) {
      try {
        listener(frame);
      } catch (error) {
        thrown ??= error;
      }
    }
    if (thrown !== undefined) throw thrown; // after every listener had the frame
  }

  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = error;
    for (const listener of this.#errorListeners) listener(error);
    this.close();
  }
}

/**
 * The engine for `options.engine` (default "auto"). The native host is probed only
 * when the choice depends on it; `tryLoad` also opens the shim to prove it links.
 */
function engineChoice(
  options: { shimPath?: string; engine?: TranscodeEnginePreference },
  tryLoad: boolean,
): TranscodeEngineChoice {
  const preference = options.engine ?? "auto";
  if (preference === "wasm") return { ok: true, engine: "wasm" };
  const native = detectTranscodeSupport(
    probeTranscodeHost({ shimPath: options.shimPath, tryLoad }),
  );
  return chooseTranscodeEngine(native, preference);
}

/** Splits the Worker's AVCC output into NAL units and picks out the parameter sets. */
export function toTranscodedFrame(out: WorkerOutput): TranscodedFrame {
  const nalus: Uint8Array[] = [];
  const view = new DataView(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  let sps: Uint8Array | undefined;
  let pps: Uint8Array | undefined;
  for (let offset = 0; offset + 4 <= out.data.length;) {
    const length = view.getUint32(offset);
    const nal = out.data.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
    if (nal.length === 0) continue;
    nalus.push(nal);
    const type = nal[0] & 0x1f;
    if (type === NalType.SPS) sps ??= nal;
    else if (type === NalType.PPS) pps ??= nal;
  }
  const frame: TranscodedFrame = {
    pts: out.pts,
    keyframe: out.keyframe,
    nalus,
    data: out.data,
    width: out.width,
    height: out.height,
  };
  if (out.keyframe && sps && pps) {
    frame.sps = sps;
    frame.pps = pps;
    frame.avcC = buildAvcDecoderConfig(sps, pps);
  }
  return frame;
}

/** An avcC record (ISO/IEC 14496-15 5.3.3.1) for one SPS and one PPS, with 4-byte lengths. */
export function buildAvcDecoderConfig(sps: Uint8Array, pps: Uint8Array): Uint8Array {
  if (sps.length < 4 || sps.length > 0xffff || pps.length > 0xffff) {
    throw new RangeError(
      `expected an SPS of 4..65535 bytes and a PPS ≤ 65535 bytes, got ${sps.length} and ${pps.length}`,
    );
  }
  const out = new Uint8Array(11 + sps.length + pps.length);
  out.set([1, sps[1], sps[2], sps[3], 0xff, 0xe1, sps.length >> 8, sps.length & 0xff]);
  out.set(sps, 8);
  const at = 8 + sps.length;
  out.set([1, pps.length >> 8, pps.length & 0xff], at);
  out.set(pps, at + 3);
  return out;
}

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`expected ${name} within ${min}..${max}, got ${value}`);
  }
}
