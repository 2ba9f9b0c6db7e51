/**
 * The FFI face of the native transcode shim (native/transcode_shim.c): its
 * symbol table, where the built library is looked for, and a synchronous
 * wrapper around one shim handle. Only the transcoder Worker (and benchmarks)
 * load it; every call blocks the calling thread for a decode + encode.
 *
 * @module
 */
import { nativeLibraryCandidates } from "../../native_lib.ts";

/** The shim's ABI version this file speaks (SLUICE_TC_ABI_VERSION in the C source). */
export const SHIM_ABI_VERSION = 2;

/** File name of the built shim. */
export const SHIM_FILE_NAME = "libsluice_transcode.so";

/** Environment variable naming the shim's path explicitly. */
export const SHIM_PATH_ENV = "SLUICE_TRANSCODE_SHIM";

/** Symbols of the shim, as `Deno.dlopen` wants them. */
export const SHIM_SYMBOLS = {
  sluice_tc_abi_version: { parameters: [], result: "i32" },
  sluice_tc_create: {
    parameters: ["buffer", "i32", "f64", "i32", "i32", "i32", "i32", "i32", "buffer", "i32"],
    result: "pointer",
  },
  sluice_tc_set_extradata: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sluice_tc_push: {
    parameters: ["pointer", "buffer", "i32", "i32", "i64", "i64"],
    result: "i32",
  },
  sluice_tc_flush: { parameters: ["pointer"], result: "i32" },
  sluice_tc_force_idr: { parameters: ["pointer"], result: "void" },
  sluice_tc_catch_up: { parameters: ["pointer", "i64"], result: "void" },
  sluice_tc_next_size: { parameters: ["pointer"], result: "i32" },
  sluice_tc_pop: { parameters: ["pointer", "buffer", "i32", "buffer"], result: "i32" },
  sluice_tc_stats: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sluice_tc_last_error: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sluice_tc_destroy: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded shim. */
export type ShimLibrary = Deno.DynamicLibrary<typeof SHIM_SYMBOLS>;

/** Order of the counters `sluice_tc_stats` writes (the C enum of the same names). */
export const NATIVE_STATS = [
  "packetsIn",
  "picturesDecoded",
  "picturesEncoded",
  "decodeErrors",
  "encodeErrors",
  "outputsDiscarded",
  "idrForced",
  "sourceWidth",
  "sourceHeight",
  "outputWidth",
  "outputHeight",
  "encoderResets",
  "catchUpSkipped",
] as const;

/** Counters of one native transcoder. */
export type NativeStats = Record<(typeof NATIVE_STATS)[number], number>;

/**
 * Paths where the shim may be, best first: `$SLUICE_TRANSCODE_SHIM` alone when
 * set; else `native/build/` of this source tree, then beside the executable.
 */
export function shimCandidates(): string[] {
  return nativeLibraryCandidates(SHIM_FILE_NAME, SHIM_PATH_ENV);
}

/** Opens the shim at `path` and checks its ABI version; throws with the loader's message. */
export function openShim(path: string): ShimLibrary {
  const lib = Deno.dlopen(path, SHIM_SYMBOLS);
  const abi = lib.symbols.sluice_tc_abi_version();
  if (abi !== SHIM_ABI_VERSION) {
    lib.close();
    throw new Error(
      `expected transcode shim ABI ${SHIM_ABI_VERSION} at ${path}, got ${abi}: rebuild it with native/build.sh --force`,
    );
  }
  return lib;
}

/** Settings of one native transcoder (see `sluice_tc_create`). */
export interface NativeTranscoderOptions {
  /** The source's AVCDecoderConfigurationRecord. */
  avcC: Uint8Array;
  /** Source frame rate; 0 takes it from the SPS timing (30 when absent). */
  frameRate: number;
  /** Target bits per second. */
  bitrate: number;
  /** IDR cadence in milliseconds of pts; 0 = the first picture only. */
  keyframeIntervalMs: number;
  /** Pictures taller than this are scaled down to it; 0 = never. */
  maxHeight: number;
  /** openh264 complexity: 0 low (fastest), 1 medium, 2 high. */
  complexity: number;
  /** libavcodec decoder threads; 1 adds no frame-threading delay. */
  decoderThreads: number;
}

/** One encoded picture as the shim hands it out. */
export interface NativeOutput {
  /** NAL units behind 4-byte big-endian lengths (a fresh buffer). */
  data: Uint8Array;
  /** Presentation time in milliseconds, on the input's clock. */
  pts: number;
  keyframe: boolean;
  width: number;
  height: number;
}

const ERROR_BYTES = 512;

/**
 * One transcoder handle of either engine (native FFI or WebAssembly; both run
 * native/transcode_shim.c): push access units in decode order, pop encoded
 * pictures in presentation order. Every call blocks for a decode + encode.
 */
export interface TranscoderEngine {
  /** Decodes one access unit (NAL units behind `lengthSize`-byte lengths); returns the waiting outputs. */
  push(data: Uint8Array, pts: number, dts: number, lengthSize?: 1 | 2 | 4): number;
  /** Replaces the decoder configuration; throws when `avcC` is malformed. */
  setExtradata(avcC: Uint8Array): void;
  /** Encodes what the decoder holds back for reordering; returns the waiting count. */
  flush(): number;
  /** Pictures before `untilPts` are decoded only as far as needed and never encoded. */
  catchUp(untilPts: number): void;
  /** Makes the next encoded picture an IDR. */
  forceIdr(): void;
  /** Takes the next encoded picture, or undefined when none waits. */
  pop(): NativeOutput | undefined;
  stats(): NativeStats;
  lastError(): string;
  /** Frees the handle; later calls throw. */
  destroy(): void;
}

/** One shim handle: push access units in decode order, pop encoded pictures in presentation order. */
export class NativeTranscoder implements TranscoderEngine {
  readonly #lib: ShimLibrary;
  #handle: Deno.PointerValue;
  #out = new Uint8Array(1 << 20);
  readonly #meta = new BigInt64Array(4);
  readonly #stats = new BigInt64Array(NATIVE_STATS.length);

  /**
   * @param lib The opened shim (see {@linkcode openShim}); not closed by this object.
   * @throws {Error} When the shim refuses the settings or the avcC.
   */
  constructor(lib: ShimLibrary, options: NativeTranscoderOptions) {
    this.#lib = lib;
    const error = new Uint8Array(ERROR_BYTES);
    const handle = lib.symbols.sluice_tc_create(
      options.avcC,
      options.avcC.length,
      options.frameRate,
      Math.round(options.bitrate),
      Math.round(options.keyframeIntervalMs),
      Math.round(options.maxHeight),
      options.complexity,
      options.decoderThreads,
      error,
      error.length,
    );
    if (handle === null) throw new Error(`transcoder refused to start: ${cString(error)}`);
    this.#handle = handle;
  }

  /**
   * Decodes one access unit and encodes the pictures it releases.
   *
   * @param data NAL units behind `lengthSize`-byte lengths.
   * @returns How many encoded pictures wait for {@linkcode pop}.
   * @throws {Error} When the access unit is malformed (the transcoder stays usable).
   */
  push(data: Uint8Array, pts: number, dts: number, lengthSize: 1 | 2 | 4 = 4): number {
    const waiting = this.#lib.symbols.sluice_tc_push(
      this.#live(),
      data,
      data.length,
      lengthSize,
      BigInt(Math.round(pts)),
      BigInt(Math.round(dts)),
    );
    if (waiting < 0) throw new Error(`transcoder refused an access unit: ${this.lastError()}`);
    return waiting;
  }

  /** Replaces the decoder configuration (a new sequence header); throws when `avcC` is malformed. */
  setExtradata(avcC: Uint8Array): void {
    if (this.#lib.symbols.sluice_tc_set_extradata(this.#live(), avcC, avcC.length) !== 0) {
      throw new Error(`transcoder refused a decoder configuration: ${this.lastError()}`);
    }
  }

  /** Encodes what the decoder holds back for reordering (end of stream); returns the waiting count. */
  flush(): number {
    return this.#lib.symbols.sluice_tc_flush(this.#live());
  }

  /**
   * Pictures before `untilPts` are decoded only as far as later ones need and never
   * encoded; the first one at or after it is an IDR (a cached GOP fed in at start).
   */
  catchUp(untilPts: number): void {
    this.#lib.symbols.sluice_tc_catch_up(this.#live(), BigInt(Math.round(untilPts)));
  }

  /** Makes the next encoded picture an IDR. */
  forceIdr(): void {
    this.#lib.symbols.sluice_tc_force_idr(this.#live());
  }

  /** Takes the next encoded picture, or undefined when none waits. */
  pop(): NativeOutput | undefined {
    const handle = this.#live();
    let size = this.#lib.symbols.sluice_tc_pop(handle, this.#out, this.#out.length, this.#meta);
    if (size < 0) {
      this.#out = new Uint8Array(Math.max(-size, this.#out.length * 2));
      size = this.#lib.symbols.sluice_tc_pop(handle, this.#out, this.#out.length, this.#meta);
    }
    if (size <= 0) return undefined;
    return {
      data: this.#out.slice(0, size),
      pts: Number(this.#meta[0]),
      keyframe: this.#meta[1] !== 0n,
      width: Number(this.#meta[2]),
      height: Number(this.#meta[3]),
    };
  }

  /** The shim's counters. */
  stats(): NativeStats {
    this.#lib.symbols.sluice_tc_stats(this.#live(), this.#stats, this.#stats.length);
    return nativeStats(this.#stats);
  }

  /** The shim's last error message. */
  lastError(): string {
    const buf = new Uint8Array(ERROR_BYTES);
    this.#lib.symbols.sluice_tc_last_error(this.#live(), buf, buf.length);
    return cString(buf);
  }

  /** Frees the native handle; later calls throw. */
  destroy(): void {
    if (this.#handle === null) return;
    this.#lib.symbols.sluice_tc_destroy(this.#handle);
    this.#handle = null;
  }

  #live(): NonNullable<Deno.PointerValue> {
    if (this.#handle === null) throw new Error("transcoder used after destroy()");
    return this.#handle;
  }
}

/** The counters `sluice_tc_stats` wrote, by name (in NATIVE_STATS order). */
export function nativeStats(values: BigInt64Array): NativeStats {
  const out = {} as NativeStats;
  NATIVE_STATS.forEach((name, i) => out[name] = Number(values[i]));
  return out;
}

function cString(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return new TextDecoder().decode(end < 0 ? buf : buf.subarray(0, end));
}
