/**
 * Messages between a {@linkcode VideoTranscoder} and its Worker. Buffers move
 * (transferred), never copied twice.
 *
 * @module
 */

import type { NativeStats, NativeTranscoderOptions } from "./native.ts";

/** Main thread → worker. */
export type ToWorker =
  | {
    type: "init";
    /** Which build of the shim runs: the native library (FFI) or the WebAssembly module. */
    engine: "native" | "wasm";
    /** The native library's path (engine "native"). */
    shimPath?: string;
    options: NativeTranscoderOptions;
    /** Int32Array over it: slot 0 set to 1 = "make the next picture an IDR". */
    keyframeFlag: SharedArrayBuffer;
  }
  | { type: "frame"; data: Uint8Array; pts: number; dts: number; lengthSize: 1 | 2 | 4 }
  | { type: "config"; avcC: Uint8Array }
  /** Frames before `untilPts` are a catch-up: decoded as far as needed, never encoded. */
  | { type: "catchUp"; untilPts: number }
  | { type: "flush"; id: number }
  | { type: "close" };

/** One encoded picture crossing back. */
export interface WorkerOutput {
  data: Uint8Array;
  pts: number;
  keyframe: boolean;
  width: number;
  height: number;
}

/** Worker → main thread. */
export type FromWorker =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | {
    type: "output";
    /** Input frames consumed by this message (0 or 1). */
    consumed: number;
    outputs: WorkerOutput[];
    /** Wall-clock milliseconds spent in native code so far. */
    busyMs: number;
    /** CPU milliseconds of the Worker's thread so far (Linux procfs), when readable. */
    cpuMs?: number;
    /** Set when the input was refused (malformed). */
    error?: string;
    /** Set when the encoder failed on a picture of this input (the shim's message). */
    encodeError?: string;
    stats: NativeStats;
  }
  | { type: "flushed"; id: number }
  | { type: "closed" };
