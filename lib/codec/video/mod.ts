/**
 * Video transcoding for streams WebRTC receivers cannot play as sent (H.264
 * with B-frames, long GOPs): FFmpeg's H.264 decoder and Cisco's openh264
 * encoder, Debian's native libraries loaded through FFI by a small C shim
 * (native/transcode_shim.c, built by native/build.sh), one Worker per
 * transcoder. Output: Constrained Baseline, no B-frames, IDR every
 * `keyframeIntervalMs` and on request, pts on the input's clock.
 *
 * The native engine needs `--allow-ffi` (and read access to the shim). Where the
 * libraries or the shim are missing, {@linkcode VideoTranscoder.available} says
 * which and the apt-get command that fixes it, and the same shim compiled to
 * WebAssembly (`wasm/h264_transcode.mjs`, ≈ 3× the CPU) is the portable fallback.
 *
 * ```ts ignore
 * import { VideoTranscoder } from "./mod.ts";
 *
 * const choice = VideoTranscoder.chooseEngine(); // { ok: true, engine: "native" | "wasm", … }
 * if (choice.ok && choice.engine === "wasm") console.warn(`slow path: ${choice.nativeUnavailable}`);
 * ```
 *
 * @module
 */

export {
  buildAvcDecoderConfig,
  toTranscodedFrame,
  type TranscodedFrame,
  type TranscoderInputFrame,
  VideoTranscoder,
  type VideoTranscoderOptions,
  type VideoTranscoderStats,
} from "./transcoder.ts";
export {
  BUILD_PACKAGES,
  chooseTranscodeEngine,
  debianRelease,
  detectTranscodeSupport,
  loaderDirectories,
  RUNTIME_LIBRARIES,
  type RuntimeLibrary,
  type TranscodeEngine,
  type TranscodeEngineChoice,
  type TranscodeEnginePreference,
  type TranscodeHostFacts,
  type TranscodeSupport,
} from "./detect.ts";
export { type ProbeOptions, probeTranscodeHost, transcodeSupport } from "./host.ts";
export { SHIM_FILE_NAME, SHIM_PATH_ENV, shimCandidates } from "./native.ts";
export type { NativeStats } from "./native.ts";
