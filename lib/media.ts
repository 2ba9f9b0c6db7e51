/**
 * The neutral media unit that sits between protocols: ingest (RTMP/FLV) produces
 * these, rooms cache and fan them out, egress (WebRTC) consumes them. No protocol
 * module imports another; they all speak this.
 *
 * @module
 */

/** Video codecs Sluice can carry (FLV legacy AVC or Enhanced RTMP FourCCs). */
export type VideoCodec = "h264" | "h265" | "av1";

/** Audio codecs Sluice can recognise; only AAC is decoded further. */
export type AudioCodec =
  | "aac"
  | "mp3"
  | "pcm"
  | "g711a"
  | "g711u"
  | "speex"
  | "nellymoser"
  | "other";

/**
 * Decoder configuration for a video stream: for H.264 the AVCDecoderConfigurationRecord
 * (avcC), for H.265 the hvcC record, for AV1 the av1C record.
 */
export interface VideoConfig {
  readonly kind: "video-config";
  readonly codec: VideoCodec;
  /** Decode timestamp in milliseconds (RTMP clock). */
  readonly dts: number;
  readonly record: Uint8Array;
}

/** One coded video access unit. */
export interface VideoFrame {
  readonly kind: "video";
  readonly codec: VideoCodec;
  /** Decode timestamp in milliseconds (RTMP clock). */
  readonly dts: number;
  /** Composition offset in milliseconds (presentation = dts + cts); may be negative. */
  readonly cts: number;
  /** True for random access points (IDR for H.264). */
  readonly keyframe: boolean;
  /**
   * For H.264/H.265: NAL units, each prefixed by a 4-byte big-endian length
   * (AVCC framing, as FLV carries them). For AV1: OBUs as sent.
   */
  readonly data: Uint8Array;
}

/** The publisher ended its video sequence (Enhanced RTMP SequenceEnd or AVC end of sequence). */
export interface VideoEnd {
  readonly kind: "video-end";
  readonly codec: VideoCodec;
  readonly dts: number;
}

/** Decoder configuration for audio: for AAC the AudioSpecificConfig. */
export interface AudioConfig {
  readonly kind: "audio-config";
  readonly codec: AudioCodec;
  readonly dts: number;
  readonly record: Uint8Array;
}

/** One coded audio frame (for AAC, one raw access unit of 1024 samples, no ADTS). */
export interface AudioFrame {
  readonly kind: "audio";
  readonly codec: AudioCodec;
  /** Timestamp in milliseconds (RTMP clock). */
  readonly dts: number;
  readonly data: Uint8Array;
  /** FLV SoundRate/SoundType hints for codecs that carry no config record. */
  readonly sampleRate?: number;
  readonly channels?: number;
}

/** Anything a publisher sends that flows down the data path. */
export type MediaUnit = VideoConfig | VideoFrame | VideoEnd | AudioConfig | AudioFrame;
