/**
 * Codec structure parsing for the media path: H.264 decoder configuration,
 * NAL unit framing, SPS and slice types; AAC AudioSpecificConfig; and the bit
 * reader they share. Every parser is bounded by its input and throws
 * {@linkcode CodecError} on malformed data.
 *
 * @module
 */

export { CodecError } from "./errors.ts";
export { BitReader, BitWriter, removeEmulationPrevention } from "./bits.ts";
export {
  annexBToNalUnits,
  containsBSlice,
  isKeyframeAvcc,
  iterateAvccNalUnits,
  NalType,
  nalUnitsToAvcc,
  parseAvcDecoderConfig,
  parseSps,
  SliceType,
  sliceType,
} from "./h264.ts";
export type { AvcDecoderConfig, SpsInfo } from "./h264.ts";
export { buildAudioSpecificConfig, parseAudioSpecificConfig } from "./aac.ts";
export type { AudioSpecificConfig } from "./aac.ts";
export {
  AacOpusTranscoder,
  DEFAULT_COMPLEXITY,
  DEFAULT_MONO_BITRATE,
  DEFAULT_STEREO_BITRATE,
  loadAacOpusModule,
  OPUS_FRAME_SAMPLES,
  OPUS_SAMPLE_RATE,
  OpusPacketDecoder,
} from "./audio.ts";
export type { AacOpusOptions, PcmResult, TranscodeResult } from "./audio.ts";
