// Types of aac_opus.mjs, the Emscripten module tools/build-codec-wasm.sh builds from
// tools/codec-wasm/aac_opus.c. Pointers are byte offsets into HEAPU8; 0 is failure.

/** The instantiated module: the C wrapper's exports and the heap views. */
export interface AacOpusModule {
  /** Opens an AAC → 48 kHz → Opus transcoder; 0 on a config FFmpeg rejects. */
  _aot_open(
    asc: number,
    ascLength: number,
    bitrate: number,
    complexity: number,
    fec: number,
    channelsOut: number,
  ): number;
  /** Samples per channel queued after decoding one access unit, or a negative error code. */
  _aot_decode(transcoder: number, aac: number, length: number): number;
  /** Length of one 20 ms Opus packet written to out; 0 when fewer than 960 samples wait. */
  _aot_encode(transcoder: number, out: number, capacity: number): number;
  /** Moves up to max samples per channel of queued PCM (interleaved float) to out. */
  _aot_read_pcm(transcoder: number, out: number, max: number): number;
  _aot_pending(transcoder: number): number;
  _aot_set_packet_loss(transcoder: number, percent: number): number;
  _aot_set_bitrate(transcoder: number, bitrate: number): number;
  _aot_input_sample_rate(transcoder: number): number;
  _aot_input_channels(transcoder: number): number;
  _aot_frame_samples(transcoder: number): number;
  _aot_close(transcoder: number): void;
  /** Opens a 48 kHz Opus decoder. */
  _aod_open(channels: number): number;
  /** Samples per channel decoded into pcm; length 0 conceals a lost packet. */
  _aod_decode(decoder: number, packet: number, length: number, pcm: number, max: number): number;
  _aod_close(decoder: number): void;
  _malloc(size: number): number;
  _free(pointer: number): void;
  /** Replaced when memory grows: read it after every call. */
  HEAPU8: Uint8Array;
  /** Replaced when memory grows: read it after every call. */
  HEAPF32: Float32Array;
}

/** Instantiates the module (its WebAssembly is inlined as base64; no file is read). */
declare function createAacOpusModule(overrides?: Record<string, unknown>): Promise<AacOpusModule>;
export default createAacOpusModule;
