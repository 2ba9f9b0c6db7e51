/**
 * FLV audio and video tag bodies (RTMP message types 8 and 9) → neutral
 * {@linkcode MediaUnit}s.
 *
 * Covers legacy FLV (H.264/AVC video, AAC and the old audio formats) and
 * Enhanced RTMP v1/v2 (veovera): FourCC video `avc1`/`hvc1`/`av01`, FourCC
 * audio, ModEx prefixes and multitrack messages.
 *
 * Parsers return `[]` for messages that carry nothing for the data path
 * (empty "silence" bodies, video command frames, metadata, multichannel
 * configs, non-default tracks) and throw {@linkcode FlvError} for anything
 * malformed or unsupported. Payloads (`record`, `data`) are views into the
 * body passed in, not copies: the caller must not reuse that buffer.
 *
 * @module
 */

import type { AudioCodec, MediaUnit, VideoCodec } from "../media.ts";

/** A malformed or unsupported FLV tag or file. */
export class FlvError extends Error {
  /** Creates an FLV error with a message saying what was expected and what came. */
  constructor(message: string) {
    super(message);
    this.name = "FlvError";
  }
}

/** Bounded big-endian reader over one tag body; every read checks what is left. */
class Cursor {
  #view: DataView;
  #offset = 0;

  constructor(readonly bytes: Uint8Array, readonly what: string) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.#offset;
  }

  #need(n: number, field: string): void {
    if (n > this.remaining) {
      throw new FlvError(
        `truncated ${this.what}: expected ${n} byte(s) of ${field} at offset ${this.#offset}, ` +
          `got ${this.remaining}`,
      );
    }
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#view.getUint8(this.#offset++);
  }

  u16(field: string): number {
    this.#need(2, field);
    const value = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return value;
  }

  u24(field: string): number {
    this.#need(3, field);
    const value = (this.#view.getUint8(this.#offset) << 16) |
      this.#view.getUint16(this.#offset + 1);
    this.#offset += 3;
    return value;
  }

  /** Signed 24-bit big-endian (FLV CompositionTime). */
  si24(field: string): number {
    const value = this.u24(field);
    return value & 0x800000 ? value - 0x1000000 : value;
  }

  take(n: number, field: string): Uint8Array {
    this.#need(n, field);
    const out = this.bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  rest(): Uint8Array {
    const out = this.bytes.subarray(this.#offset);
    this.#offset = this.bytes.length;
    return out;
  }

  fourCc(): string {
    const b = this.take(4, "FourCC");
    return String.fromCharCode(b[0], b[1], b[2], b[3]);
  }
}

/** Renders a FourCC for an error message without letting control bytes through. */
function showFourCc(fourCc: string): string {
  return JSON.stringify(fourCc);
}

// ---------------------------------------------------------------------------
// Enhanced RTMP shared parts (video and audio headers have the same shape)

const PACKET_TYPE_MULTITRACK_VIDEO = 6;
const PACKET_TYPE_MULTITRACK_AUDIO = 5;
const PACKET_TYPE_MODEX = 7;

const MULTITRACK_ONE_TRACK = 0;
const MULTITRACK_MANY_TRACKS = 1;
const MULTITRACK_MANY_TRACKS_MANY_CODECS = 2;

/** Track id the spec recommends for a stream's default rendition. */
const DEFAULT_TRACK_ID = 0;

/**
 * Skips ModEx prefixes (Enhanced RTMP v2) and returns the real packet type.
 * Each round consumes at least two bytes, so the loop is bounded by the body.
 * The only defined ModEx, TimestampOffsetNano, refines time below the
 * millisecond RTMP clock that {@linkcode MediaUnit} carries, so it is dropped.
 */
function skipModEx(cursor: Cursor, packetType: number): number {
  while (packetType === PACKET_TYPE_MODEX) {
    let size = cursor.u8("ModEx data size") + 1;
    if (size === 256) size = cursor.u16("ModEx extended data size") + 1;
    cursor.take(size, "ModEx data");
    packetType = cursor.u8("ModEx type / packet type") & 0x0f;
  }
  return packetType;
}

/** One track's slice of an Enhanced RTMP message. */
interface Track {
  readonly fourCc: string;
  readonly body: Cursor;
}

/**
 * Finds the default track (id 0) of a multitrack message; `undefined` when the
 * message only carries other tracks. Sluice has one rendition per room, so
 * alternate renditions (e.g. OBS multitrack video) are ignored rather than
 * mixed into the default one.
 */
function defaultTrack(
  cursor: Cursor,
  multitrackType: number,
  sharedFourCc: string | undefined,
): Track | undefined {
  if (
    multitrackType !== MULTITRACK_ONE_TRACK && multitrackType !== MULTITRACK_MANY_TRACKS &&
    multitrackType !== MULTITRACK_MANY_TRACKS_MANY_CODECS
  ) {
    throw new FlvError(`expected multitrack type 0, 1 or 2, got ${multitrackType}`);
  }
  while (cursor.remaining > 0) {
    const fourCc = sharedFourCc ?? cursor.fourCc();
    const trackId = cursor.u8("track id");
    const size = multitrackType === MULTITRACK_ONE_TRACK
      ? cursor.remaining
      : cursor.u24("track size");
    const body = cursor.take(size, `track ${trackId} body`);
    if (trackId === DEFAULT_TRACK_ID) {
      return { fourCc, body: new Cursor(body, `${cursor.what} track ${trackId}`) };
    }
    if (multitrackType === MULTITRACK_ONE_TRACK) break;
  }
  return undefined;
}

/**
 * Reads the part of an Enhanced RTMP header after the packet type: either a
 * multitrack preamble (returning the default track, if any) or one FourCC.
 */
function readTrack(
  cursor: Cursor,
  packetType: number,
  multitrackPacketType: number,
): { packetType: number; track: Track | undefined } {
  if (packetType !== multitrackPacketType) {
    return { packetType, track: { fourCc: cursor.fourCc(), body: cursor } };
  }
  const b = cursor.u8("multitrack type / packet type");
  const multitrackType = b >> 4;
  const innerType = b & 0x0f;
  if (innerType === multitrackPacketType || innerType === PACKET_TYPE_MODEX) {
    throw new FlvError(
      `expected a packet type inside a multitrack message, got nested type ${innerType}`,
    );
  }
  const shared = multitrackType === MULTITRACK_MANY_TRACKS_MANY_CODECS
    ? undefined
    : cursor.fourCc();
  return { packetType: innerType, track: defaultTrack(cursor, multitrackType, shared) };
}

// ---------------------------------------------------------------------------
// Video

const VIDEO_FRAME_KEY = 1;
const VIDEO_FRAME_COMMAND = 5;

const VIDEO_CODEC_AVC = 7;
/** De facto HEVC codec id used by some encoders before Enhanced RTMP; same layout as AVC. */
const VIDEO_CODEC_LEGACY_HEVC = 12;

const AVC_SEQUENCE_HEADER = 0;
const AVC_NALU = 1;
const AVC_END_OF_SEQUENCE = 2;

const VIDEO_SEQUENCE_START = 0;
const VIDEO_CODED_FRAMES = 1;
const VIDEO_SEQUENCE_END = 2;
const VIDEO_CODED_FRAMES_X = 3;
const VIDEO_METADATA = 4;
const VIDEO_MPEG2TS_SEQUENCE_START = 5;

const VIDEO_FOURCCS: Readonly<Record<string, VideoCodec>> = {
  avc1: "h264",
  hvc1: "h265",
  av01: "av1",
};

/**
 * Parses the body of an RTMP video message (type 9) or FLV video tag.
 *
 * Legacy FLV: H.264/AVC only (plus the de facto codec id 12 for H.265, which
 * uses the same layout); other codec ids throw. Enhanced RTMP: FourCCs
 * `avc1`, `hvc1` and `av01`, any ModEx prefixes skipped, and for multitrack
 * messages only the default track (id 0) is returned.
 *
 * @example Parse an H.264 NAL unit tag with a negative composition offset
 * ```ts
 * import { parseVideoTagBody } from "./tag.ts";
 *
 * const body = new Uint8Array([0x27, 1, 0xff, 0xff, 0xf6, 0, 0, 0, 1, 0x41]);
 * const [frame] = parseVideoTagBody(body, 1000);
 * // frame: { kind: "video", codec: "h264", dts: 1000, cts: -10, keyframe: false, data }
 * ```
 *
 * @param body The message body, starting with the (Ex)VideoTagHeader.
 * @param timestamp The message timestamp in milliseconds (decode time).
 * @returns The media units in the body; `[]` for empty bodies, command
 *   frames, metadata and MPEG-2 TS sequence starts.
 * @throws {FlvError} When the body is truncated, malformed or uses an
 *   unsupported codec.
 */
export function parseVideoTagBody(body: Uint8Array, timestamp: number): MediaUnit[] {
  if (body.length === 0) return [];
  const cursor = new Cursor(body, "video tag");
  const first = cursor.u8("video tag header");
  if (first & 0x80) return parseEnhancedVideo(cursor, first, timestamp);

  const frameType = first >> 4;
  const codecId = first & 0x0f;
  if (frameType === VIDEO_FRAME_COMMAND) return [];
  let codec: VideoCodec;
  if (codecId === VIDEO_CODEC_AVC) codec = "h264";
  else if (codecId === VIDEO_CODEC_LEGACY_HEVC) codec = "h265";
  else {
    throw new FlvError(
      `unsupported video codec id ${codecId} (only H.264/AVC, id 7, or Enhanced RTMP ` +
        `avc1/hvc1/av01 is supported)`,
    );
  }

  const packetType = cursor.u8("AVCPacketType");
  if (packetType === AVC_END_OF_SEQUENCE) {
    // Some encoders omit the (meaningless) composition time here.
    return [{ kind: "video-end", codec, dts: timestamp }];
  }
  const cts = cursor.si24("CompositionTime");
  switch (packetType) {
    case AVC_SEQUENCE_HEADER:
      return [videoConfig(codec, timestamp, cursor.rest())];
    case AVC_NALU:
      return videoFrame(codec, timestamp, cts, frameType === VIDEO_FRAME_KEY, cursor.rest());
    default:
      throw new FlvError(`expected AVCPacketType 0, 1 or 2, got ${packetType}`);
  }
}

function parseEnhancedVideo(cursor: Cursor, first: number, timestamp: number): MediaUnit[] {
  const frameType = (first >> 4) & 0x07;
  let packetType = skipModEx(cursor, first & 0x0f);

  if (packetType === VIDEO_METADATA || packetType === VIDEO_MPEG2TS_SEQUENCE_START) return [];
  // A command frame carries one VideoCommand byte and no FourCC or payload.
  if (frameType === VIDEO_FRAME_COMMAND) return [];

  const read = readTrack(cursor, packetType, PACKET_TYPE_MULTITRACK_VIDEO);
  packetType = read.packetType;
  if (read.track === undefined) return [];
  if (packetType === VIDEO_METADATA || packetType === VIDEO_MPEG2TS_SEQUENCE_START) return [];

  const { fourCc, body } = read.track;
  const codec = VIDEO_FOURCCS[fourCc];
  if (codec === undefined) {
    throw new FlvError(
      `unsupported video FourCC ${showFourCc(fourCc)} (expected "avc1", "hvc1" or "av01")`,
    );
  }
  const keyframe = frameType === VIDEO_FRAME_KEY;
  switch (packetType) {
    case VIDEO_SEQUENCE_START:
      return [videoConfig(codec, timestamp, body.rest())];
    case VIDEO_CODED_FRAMES: {
      // AV1 has no composition offset: its frames are in presentation order.
      const cts = codec === "av1" ? 0 : body.si24("CompositionTime");
      return videoFrame(codec, timestamp, cts, keyframe, body.rest());
    }
    case VIDEO_CODED_FRAMES_X:
      return videoFrame(codec, timestamp, 0, keyframe, body.rest());
    case VIDEO_SEQUENCE_END:
      return [{ kind: "video-end", codec, dts: timestamp }];
    default:
      throw new FlvError(`expected VideoPacketType 0 to 7, got ${packetType}`);
  }
}

function videoConfig(codec: VideoCodec, dts: number, record: Uint8Array): MediaUnit {
  if (record.length === 0) {
    throw new FlvError(`expected a ${codec} decoder configuration record, got 0 bytes`);
  }
  return { kind: "video-config", codec, dts, record };
}

function videoFrame(
  codec: VideoCodec,
  dts: number,
  cts: number,
  keyframe: boolean,
  data: Uint8Array,
): MediaUnit[] {
  // An empty coded frame decodes to nothing; dropping it spares every consumer a special case.
  if (data.length === 0) return [];
  return [{ kind: "video", codec, dts, cts, keyframe, data }];
}

// ---------------------------------------------------------------------------
// Audio

const SOUND_FORMAT_EX_HEADER = 9;
const SOUND_FORMAT_AAC = 10;

const AAC_SEQUENCE_HEADER = 0;
const AAC_RAW = 1;

const AUDIO_SEQUENCE_START = 0;
const AUDIO_CODED_FRAMES = 1;
const AUDIO_SEQUENCE_END = 2;
const AUDIO_MULTICHANNEL_CONFIG = 4;

/** Legacy SoundFormat → codec; index is the 4-bit SoundFormat (9 and 10 handled apart). */
const LEGACY_AUDIO_CODECS: readonly AudioCodec[] = [
  "pcm", // 0 linear PCM, platform endian
  "other", // 1 ADPCM
  "mp3", // 2
  "pcm", // 3 linear PCM, little endian
  "nellymoser", // 4 Nellymoser 16 kHz mono
  "nellymoser", // 5 Nellymoser 8 kHz mono
  "nellymoser", // 6
  "g711a", // 7
  "g711u", // 8
  "other", // 9 ExHeader (not reached)
  "aac", // 10 (not reached)
  "speex", // 11
  "other", // 12 reserved
  "other", // 13 reserved
  "mp3", // 14 MP3 8 kHz
  "other", // 15 device-specific
];

/** Legacy SoundRate (2 bits) in Hz. */
const SOUND_RATES = [5512, 11025, 22050, 44100] as const;

const AUDIO_FOURCCS: Readonly<Record<string, AudioCodec>> = {
  "mp4a": "aac",
  ".mp3": "mp3",
};

/**
 * The rate and channel count a legacy header implies. Formats with a fixed
 * rate ignore the SoundRate bits, as the FLV specification says.
 */
function legacyAudioFormat(first: number): { sampleRate: number; channels: number } {
  const format = first >> 4;
  const channels = (first & 0x01) + 1;
  switch (format) {
    case 4:
      return { sampleRate: 16000, channels: 1 };
    case 5:
      return { sampleRate: 8000, channels: 1 };
    case 7:
    case 8:
    case 14:
      return { sampleRate: 8000, channels };
    case 11:
      return { sampleRate: 16000, channels: 1 };
    default:
      return { sampleRate: SOUND_RATES[(first >> 2) & 0x03], channels };
  }
}

/**
 * Parses the body of an RTMP audio message (type 8) or FLV audio tag.
 *
 * Legacy AAC yields an {@linkcode AudioConfig} (AudioSpecificConfig) or raw
 * AAC frames; other legacy formats yield frames tagged with their codec and
 * the rate/channels from the header bits, so the caller can warn and keep the
 * room up. Enhanced RTMP audio maps `mp4a` to AAC, `.mp3` to MP3 and any
 * other FourCC to `"other"`; multitrack messages yield the default track only.
 *
 * @example Parse an AAC sequence header
 * ```ts
 * import { parseAudioTagBody } from "./tag.ts";
 *
 * const [config] = parseAudioTagBody(new Uint8Array([0xaf, 0, 0x12, 0x10]), 0);
 * // config: { kind: "audio-config", codec: "aac", dts: 0, record: Uint8Array [0x12, 0x10] }
 * ```
 *
 * @param body The message body, starting with the (Ex)AudioTagHeader.
 * @param timestamp The message timestamp in milliseconds.
 * @returns The media units in the body; `[]` for empty (silence) bodies,
 *   sequence ends and multichannel configs.
 * @throws {FlvError} When the body is truncated or malformed.
 */
export function parseAudioTagBody(body: Uint8Array, timestamp: number): MediaUnit[] {
  if (body.length === 0) return [];
  const cursor = new Cursor(body, "audio tag");
  const first = cursor.u8("audio tag header");
  const format = first >> 4;
  if (format === SOUND_FORMAT_EX_HEADER) return parseEnhancedAudio(cursor, first, timestamp);

  if (format === SOUND_FORMAT_AAC) {
    const packetType = cursor.u8("AACPacketType");
    switch (packetType) {
      case AAC_SEQUENCE_HEADER:
        return [audioConfig("aac", timestamp, cursor.rest())];
      case AAC_RAW:
        return audioFrame("aac", timestamp, cursor.rest());
      default:
        throw new FlvError(`expected AACPacketType 0 or 1, got ${packetType}`);
    }
  }
  const codec = LEGACY_AUDIO_CODECS[format];
  return audioFrame(codec, timestamp, cursor.rest(), legacyAudioFormat(first));
}

function parseEnhancedAudio(cursor: Cursor, first: number, timestamp: number): MediaUnit[] {
  const read = readTrack(
    cursor,
    skipModEx(cursor, first & 0x0f),
    PACKET_TYPE_MULTITRACK_AUDIO,
  );
  if (read.track === undefined) return [];
  const { fourCc, body } = read.track;
  const codec = AUDIO_FOURCCS[fourCc] ?? "other";
  switch (read.packetType) {
    case AUDIO_SEQUENCE_START: {
      const record = body.rest();
      // Opus may start with an empty ID header (mono/stereo defaults); AAC may not.
      if (record.length === 0 && codec !== "aac") return [];
      return [audioConfig(codec, timestamp, record)];
    }
    case AUDIO_CODED_FRAMES:
      return audioFrame(codec, timestamp, body.rest());
    case AUDIO_SEQUENCE_END:
    case AUDIO_MULTICHANNEL_CONFIG:
      return [];
    default:
      throw new FlvError(
        `expected AudioPacketType 0, 1, 2, 4, 5 or 7, got ${read.packetType} ` +
          `(FourCC ${showFourCc(fourCc)})`,
      );
  }
}

function audioConfig(codec: AudioCodec, dts: number, record: Uint8Array): MediaUnit {
  if (record.length === 0) {
    throw new FlvError(`expected a ${codec} audio configuration record, got 0 bytes`);
  }
  return { kind: "audio-config", codec, dts, record };
}

function audioFrame(
  codec: AudioCodec,
  dts: number,
  data: Uint8Array,
  format?: { sampleRate: number; channels: number },
): MediaUnit[] {
  if (data.length === 0) return [];
  return [{ kind: "audio", codec, dts, data, ...format }];
}
