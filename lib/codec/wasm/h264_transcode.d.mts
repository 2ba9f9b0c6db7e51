// Types of h264_transcode.mjs, the Emscripten module tools/build-video-wasm.sh builds from
// native/transcode_shim.c. Pointers are byte offsets into HEAPU8; 0 is failure. The C
// contract is the shim's (see that file); 64-bit integers cross as BigInt.

/** The instantiated module: the shim's exports and the heap view. */
export interface H264TranscodeModule {
  _sluice_tc_abi_version(): number;
  _sluice_tc_create(
    avcc: number,
    avccLength: number,
    fps: number,
    bitrate: number,
    keyintMs: number,
    maxHeight: number,
    complexity: number,
    threads: number,
    err: number,
    errCapacity: number,
  ): number;
  _sluice_tc_set_extradata(handle: number, avcc: number, avccLength: number): number;
  _sluice_tc_push(
    handle: number,
    data: number,
    length: number,
    lengthSize: number,
    pts: bigint,
    dts: bigint,
  ): number;
  _sluice_tc_flush(handle: number): number;
  _sluice_tc_force_idr(handle: number): void;
  _sluice_tc_catch_up(handle: number, untilPts: bigint): void;
  _sluice_tc_next_size(handle: number): number;
  _sluice_tc_pop(handle: number, out: number, capacity: number, meta: number): number;
  _sluice_tc_stats(handle: number, out: number, capacity: number): number;
  _sluice_tc_last_error(handle: number, out: number, capacity: number): number;
  _sluice_tc_destroy(handle: number): void;
  _malloc(size: number): number;
  _free(pointer: number): void;
  /** Replaced when memory grows: read it after every call. */
  HEAPU8: Uint8Array;
}

/** Instantiates the module (its WebAssembly is inlined as base64; no file is read). */
declare function createH264TranscodeModule(
  overrides?: Record<string, unknown>,
): Promise<H264TranscodeModule>;
export default createH264TranscodeModule;
