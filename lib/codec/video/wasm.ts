/**
 * The portable engine of the video transcoder: the same C shim as the native
 * library (native/transcode_shim.c), compiled with FFmpeg's h264 decoder,
 * libswscale and openh264 to one WebAssembly module
 * (`lib/codec/wasm/h264_transcode.mjs`, built by tools/build-video-wasm.sh).
 * It needs no FFI and no system library, and costs roughly three times the
 * native engine's CPU (README "Performance"), so Sluice uses it only where the
 * native one cannot run, and only for small pictures.
 *
 * @module
 */
import type { H264TranscodeModule } from "../wasm/h264_transcode.d.mts";
import {
  NATIVE_STATS,
  type NativeOutput,
  type NativeStats,
  nativeStats,
  type NativeTranscoderOptions,
  SHIM_ABI_VERSION,
  type TranscoderEngine,
} from "./native.ts";

let modulePromise: Promise<H264TranscodeModule> | undefined;

/**
 * Instantiates the module once per thread (≈ 100 ms: its WebAssembly is inlined
 * and compiled on first use) and checks it speaks this file's shim ABI.
 */
export function loadH264TranscodeModule(): Promise<H264TranscodeModule> {
  modulePromise ??= (async () => {
    const { default: create } = (await import(
      "../wasm/h264_transcode.mjs"
    )) as typeof import("../wasm/h264_transcode.d.mts");
    const m = await create();
    const abi = m._sluice_tc_abi_version();
    if (abi !== SHIM_ABI_VERSION) {
      throw new Error(
        `expected transcode shim ABI ${SHIM_ABI_VERSION} in h264_transcode.mjs, got ${abi}: rebuild it with tools/build-video-wasm.sh`,
      );
    }
    return m;
  })();
  modulePromise.catch(() => modulePromise = undefined);
  return modulePromise;
}

const ERROR_BYTES = 512;

/** One shim handle inside the WebAssembly module; the same contract as `NativeTranscoder`. */
export class WasmTranscoder implements TranscoderEngine {
  readonly #m: H264TranscodeModule;
  #handle: number;
  /** Scratch in the module's heap: input units, then outputs, meta and stats. */
  #inPtr = 0;
  #inCapacity = 0;
  #outPtr = 0;
  #outCapacity = 0;
  readonly #metaPtr: number;
  readonly #statsPtr: number;
  readonly #errorPtr: number;

  private constructor(m: H264TranscodeModule, handle: number, errorPtr: number) {
    this.#m = m;
    this.#handle = handle;
    this.#errorPtr = errorPtr;
    this.#metaPtr = m._malloc(4 * 8);
    this.#statsPtr = m._malloc(NATIVE_STATS.length * 8);
  }

  /**
   * Loads the module (once per thread) and opens a transcoder.
   *
   * @throws {Error} When the shim refuses the settings or the avcC.
   */
  static async create(options: NativeTranscoderOptions): Promise<WasmTranscoder> {
    const m = await loadH264TranscodeModule();
    const errorPtr = m._malloc(ERROR_BYTES);
    const avcPtr = m._malloc(Math.max(1, options.avcC.length));
    m.HEAPU8.set(options.avcC, avcPtr);
    const handle = m._sluice_tc_create(
      avcPtr,
      options.avcC.length,
      options.frameRate,
      Math.round(options.bitrate),
      Math.round(options.keyframeIntervalMs),
      Math.round(options.maxHeight),
      options.complexity,
      1, // no threads in this build: frame threading would only add delay
      errorPtr,
      ERROR_BYTES,
    );
    m._free(avcPtr);
    if (handle === 0) {
      const reason = heapString(m, errorPtr);
      m._free(errorPtr);
      throw new Error(`transcoder refused to start: ${reason}`);
    }
    return new WasmTranscoder(m, handle, errorPtr);
  }

  push(data: Uint8Array, pts: number, dts: number, lengthSize: 1 | 2 | 4 = 4): number {
    const handle = this.#live();
    const ptr = this.#input(data);
    const waiting = this.#m._sluice_tc_push(
      handle,
      ptr,
      data.length,
      lengthSize,
      BigInt(Math.round(pts)),
      BigInt(Math.round(dts)),
    );
    if (waiting < 0) throw new Error(`transcoder refused an access unit: ${this.lastError()}`);
    return waiting;
  }

  setExtradata(avcC: Uint8Array): void {
    const handle = this.#live();
    const ptr = this.#input(avcC);
    if (this.#m._sluice_tc_set_extradata(handle, ptr, avcC.length) !== 0) {
      throw new Error(`transcoder refused a decoder configuration: ${this.lastError()}`);
    }
  }

  flush(): number {
    return this.#m._sluice_tc_flush(this.#live());
  }

  catchUp(untilPts: number): void {
    this.#m._sluice_tc_catch_up(this.#live(), BigInt(Math.round(untilPts)));
  }

  forceIdr(): void {
    this.#m._sluice_tc_force_idr(this.#live());
  }

  pop(): NativeOutput | undefined {
    const m = this.#m;
    const handle = this.#live();
    const size = m._sluice_tc_next_size(handle);
    if (size <= 0) return undefined;
    if (size > this.#outCapacity) {
      if (this.#outPtr) m._free(this.#outPtr);
      this.#outCapacity = Math.max(size, 1 << 20);
      this.#outPtr = m._malloc(this.#outCapacity);
    }
    const n = m._sluice_tc_pop(handle, this.#outPtr, this.#outCapacity, this.#metaPtr);
    if (n <= 0) return undefined;
    const meta = new BigInt64Array(m.HEAPU8.buffer, this.#metaPtr, 4);
    return {
      data: m.HEAPU8.slice(this.#outPtr, this.#outPtr + n),
      pts: Number(meta[0]),
      keyframe: meta[1] !== 0n,
      width: Number(meta[2]),
      height: Number(meta[3]),
    };
  }

  stats(): NativeStats {
    const m = this.#m;
    m._sluice_tc_stats(this.#live(), this.#statsPtr, NATIVE_STATS.length);
    return nativeStats(new BigInt64Array(m.HEAPU8.buffer, this.#statsPtr, NATIVE_STATS.length));
  }

  lastError(): string {
    this.#m._sluice_tc_last_error(this.#live(), this.#errorPtr, ERROR_BYTES);
    return heapString(this.#m, this.#errorPtr);
  }

  destroy(): void {
    if (this.#handle === 0) return;
    const m = this.#m;
    m._sluice_tc_destroy(this.#handle);
    this.#handle = 0;
    for (const ptr of [this.#inPtr, this.#outPtr, this.#metaPtr, this.#statsPtr, this.#errorPtr]) {
      if (ptr) m._free(ptr);
    }
    this.#inPtr = this.#outPtr = 0;
  }

  /** Copies `data` into the input scratch, growing it (×2) when too small. */
  #input(data: Uint8Array): number {
    const m = this.#m;
    if (data.length > this.#inCapacity) {
      if (this.#inPtr) m._free(this.#inPtr);
      this.#inCapacity = Math.max(data.length, this.#inCapacity * 2, 256 * 1024);
      this.#inPtr = m._malloc(this.#inCapacity);
    }
    m.HEAPU8.set(data, this.#inPtr);
    return this.#inPtr;
  }

  #live(): number {
    if (this.#handle === 0) throw new Error("transcoder used after destroy()");
    return this.#handle;
  }
}

function heapString(m: H264TranscodeModule, ptr: number): string {
  const heap = m.HEAPU8;
  let end = ptr;
  while (end < heap.length && end < ptr + ERROR_BYTES && heap[end] !== 0) end++;
  return new TextDecoder().decode(heap.subarray(ptr, end));
}
