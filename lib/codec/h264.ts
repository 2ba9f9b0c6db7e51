/**
 * H.264 / AVC structure parsing: the avcC decoder configuration record
 * (ISO/IEC 14496-15 5.3.3), NAL unit framing in both AVCC (length-prefixed)
 * and Annex B (start codes), the sequence parameter set (ITU-T H.264 7.3.2.1)
 * and the start of slice headers, enough to spot IDR access units and B slices.
 *
 * Every parser is bounded by the bytes given and throws {@linkcode CodecError}
 * on malformed input.
 *
 * @module
 */

import { BitReader, removeEmulationPrevention } from "./bits.ts";
import { CodecError } from "./errors.ts";

export { CodecError } from "./errors.ts";

/** NAL unit types Sluice cares about (H.264 Table 7-1). */
export const NalType = {
  /** Coded slice of a non-IDR picture. */
  SLICE: 1,
  /** Coded slice of an IDR picture: a random access point. */
  IDR: 5,
  /** Supplemental enhancement information. */
  SEI: 6,
  /** Sequence parameter set. */
  SPS: 7,
  /** Picture parameter set. */
  PPS: 8,
  /** Access unit delimiter. */
  AUD: 9,
  /** End of sequence. */
  END_SEQ: 10,
  /** Filler data. */
  FILLER: 12,
} as const;

/** Slice types as {@linkcode sliceType} reports them (H.264 Table 7-6, modulo 5). */
export const SliceType = { P: 0, B: 1, I: 2, SP: 3, SI: 4 } as const;

/** The AVCDecoderConfigurationRecord (avcC) an FLV AVC sequence header carries. */
export interface AvcDecoderConfig {
  /** AVCProfileIndication: profile_idc of the SPS. */
  profile: number;
  /** profile_compatibility: the constraint_set flags byte of the SPS. */
  compatibility: number;
  /** AVCLevelIndication: level_idc of the SPS. */
  level: number;
  /** Bytes in each NAL unit length prefix of the stream's samples. */
  nalLengthSize: 1 | 2 | 4;
  /** Sequence parameter set NAL units, each with its NAL header byte. */
  sps: Uint8Array[];
  /** Picture parameter set NAL units, each with its NAL header byte. */
  pps: Uint8Array[];
}

/** What a sequence parameter set says about the picture. */
export interface SpsInfo {
  /** profile_idc: 66 Baseline, 77 Main, 100 High, … */
  profileIdc: number;
  /** The constraint_set0..5 flags and reserved bits, as one byte. */
  constraintFlags: number;
  /** level_idc: ten times the level number (31 → 3.1). */
  levelIdc: number;
  /** Displayed width in pixels, after frame cropping. */
  width: number;
  /** Displayed frame height in pixels, after frame cropping; both fields for interlaced video. */
  height: number;
  /** Frames per second from VUI timing (time_scale / (2 · num_units_in_tick)), when present. */
  fps?: number;
  /** The RFC 6184 profile-level-id: profile, constraints, level as 6 lowercase hex digits. */
  profileLevelId: string;
  /** VUI max_num_reorder_frames, when the bitstream restriction is present; 0 means no B-frame reordering. */
  maxNumReorderFrames?: number;
  /** chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4. */
  chromaFormatIdc: number;
  /** Luma sample bit depth, 8 to 14. */
  bitDepthLuma: number;
  /** frame_mbs_only_flag: false when the stream may code fields (interlaced). */
  frameMbsOnly: boolean;
}

/** Profiles whose SPS carries chroma format, bit depth and scaling lists (H.264 7.3.2.1.1). */
const HIGH_PROFILES: ReadonlySet<number> = new Set([
  100,
  110,
  122,
  244,
  44,
  83,
  86,
  118,
  128,
  138,
  139,
  134,
  135,
]);

/** Largest picture side any level allows: sqrt(8 · MaxFS) for level 6.2 (H.264 A.3.1). */
const MAX_DIMENSION_MBS = 1055;

/** Enough RBSP bytes for first_mb_in_slice and slice_type of any picture size. */
const SLICE_HEADER_PREFIX_BYTES = 16;

/**
 * Parses an AVCDecoderConfigurationRecord (avcC).
 *
 * The SPS and PPS counts are not trusted: each unit's length is checked against
 * the bytes left. Returned parameter sets are copies, so the record's buffer can
 * be released. Trailing bytes (the High profile extension) are ignored.
 *
 * @param avcC The record, as an FLV AVC sequence header carries it.
 * @throws {CodecError} On a wrong version, an invalid length size, no SPS, or truncation.
 */
export function parseAvcDecoderConfig(avcC: Uint8Array): AvcDecoderConfig {
  if (avcC.length < 7) {
    throw new CodecError(`expected an avcC record of at least 7 bytes, got ${avcC.length}`);
  }
  if (avcC[0] !== 1) {
    throw new CodecError(`expected avcC configurationVersion 1, got ${avcC[0]}`);
  }
  const lengthSize = (avcC[4] & 0x03) + 1;
  if (lengthSize === 3) {
    throw new CodecError("expected an avcC NAL length size of 1, 2 or 4 bytes, got 3");
  }
  const view = new DataView(avcC.buffer, avcC.byteOffset, avcC.byteLength);
  let offset = 6;
  const readParameterSets = (count: number, kind: string): Uint8Array[] => {
    const sets: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const what = `avcC ${kind} ${i + 1} of ${count}`;
      const left = avcC.length - offset;
      if (left < 2) {
        throw new CodecError(`expected a 2-byte length of ${what}, got ${left} bytes`);
      }
      const length = view.getUint16(offset);
      offset += 2;
      if (length === 0 || length > left - 2) {
        const room = left - 2;
        throw new CodecError(`expected a non-empty ${what} of ≤ ${room} bytes, got ${length}`);
      }
      sets.push(avcC.slice(offset, offset + length));
      offset += length;
    }
    return sets;
  };
  const sps = readParameterSets(avcC[5] & 0x1f, "SPS");
  if (sps.length === 0) throw new CodecError("expected at least one SPS in avcC, got 0");
  if (offset >= avcC.length) {
    throw new CodecError(`expected an avcC PPS count at byte ${offset}, got the end of the record`);
  }
  const pps = readParameterSets(avcC[offset++], "PPS");
  return {
    profile: avcC[1],
    compatibility: avcC[2],
    level: avcC[3],
    nalLengthSize: lengthSize as 1 | 2 | 4,
    sps,
    pps,
  };
}

/**
 * Parses a sequence parameter set NAL unit for picture size, profile, level,
 * frame rate and reordering depth.
 *
 * Handles the High profiles' chroma format, bit depth and scaling lists,
 * field coding (frame_mbs_only_flag = 0) and emulation prevention bytes.
 * VUI is optional metadata: a VUI cut short (some encoders write one) leaves
 * the fields it did not reach undefined rather than failing the SPS.
 *
 * @param nal The SPS NAL unit, starting with its 1-byte NAL header.
 * @throws {CodecError} When `nal` is not an SPS, a field is out of range or the SPS is truncated.
 */
export function parseSps(nal: Uint8Array): SpsInfo {
  if (nal.length < 4) {
    throw new CodecError(`expected an SPS NAL unit of at least 4 bytes, got ${nal.length}`);
  }
  const type = nal[0] & 0x1f;
  if (type !== NalType.SPS) {
    throw new CodecError(`expected NAL unit type ${NalType.SPS} (SPS), got ${type}`);
  }
  const r = new BitReader(removeEmulationPrevention(nal.subarray(1)));
  const profileIdc = r.readBits(8);
  const constraintFlags = r.readBits(8);
  const levelIdc = r.readBits(8);
  readUEAtMost(r, 31, "seq_parameter_set_id");

  let chromaFormatIdc = 1;
  let separateColourPlane = false;
  let bitDepthLuma = 8;
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = readUEAtMost(r, 3, "chroma_format_idc");
    if (chromaFormatIdc === 3) separateColourPlane = r.readFlag();
    bitDepthLuma = 8 + readUEAtMost(r, 6, "bit_depth_luma_minus8");
    readUEAtMost(r, 6, "bit_depth_chroma_minus8");
    r.skipBits(1); // qpprime_y_zero_transform_bypass_flag
    if (r.readFlag()) skipScalingMatrix(r, chromaFormatIdc === 3 ? 12 : 8);
  }

  readUEAtMost(r, 12, "log2_max_frame_num_minus4");
  skipPicOrderCount(r);
  r.readUE(); // max_num_ref_frames
  r.skipBits(1); // gaps_in_frame_num_value_allowed_flag
  const widthInMbs = r.readUE() + 1;
  const heightInMapUnits = r.readUE() + 1;
  const frameMbsOnly = r.readFlag();
  const heightInMbs = heightInMapUnits * (frameMbsOnly ? 1 : 2);
  if (widthInMbs > MAX_DIMENSION_MBS || heightInMbs > MAX_DIMENSION_MBS) {
    throw new CodecError(
      `expected at most ${MAX_DIMENSION_MBS} macroblocks a side, got ${widthInMbs}x${heightInMbs}`,
    );
  }
  if (!frameMbsOnly) r.skipBits(1); // mb_adaptive_frame_field_flag
  r.skipBits(1); // direct_8x8_inference_flag

  const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
  const { width, height } = readCroppedSize(
    r,
    widthInMbs,
    heightInMbs,
    chromaArrayType,
    frameMbsOnly,
  );

  const info: SpsInfo = {
    profileIdc,
    constraintFlags,
    levelIdc,
    width,
    height,
    profileLevelId: [profileIdc, constraintFlags, levelIdc]
      .map((byte) => byte.toString(16).padStart(2, "0"))
      .join(""),
    chromaFormatIdc,
    bitDepthLuma,
    frameMbsOnly,
  };
  if (r.readFlag()) {
    try {
      readVui(r, info);
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
    }
  }
  return info;
}

/** Skips pic_order_cnt_type and the fields that depend on it (H.264 7.3.2.1.1). */
function skipPicOrderCount(r: BitReader): void {
  const picOrderCntType = readUEAtMost(r, 2, "pic_order_cnt_type");
  if (picOrderCntType === 0) {
    readUEAtMost(r, 12, "log2_max_pic_order_cnt_lsb_minus4");
  } else if (picOrderCntType === 1) {
    r.skipBits(1); // delta_pic_order_always_zero_flag
    r.readSE(); // offset_for_non_ref_pic
    r.readSE(); // offset_for_top_to_bottom_field
    const cycle = readUEAtMost(r, 255, "num_ref_frames_in_pic_order_cnt_cycle");
    for (let i = 0; i < cycle; i++) r.readSE(); // offset_for_ref_frame
  }
}

/**
 * Reads frame_cropping_flag and its offsets and applies them to the coded size.
 * Offsets count chroma samples, and field pairs when fields are coded (7.4.2.1.1).
 */
function readCroppedSize(
  r: BitReader,
  widthInMbs: number,
  heightInMbs: number,
  chromaArrayType: number,
  frameMbsOnly: boolean,
): { width: number; height: number } {
  const codedWidth = widthInMbs * 16;
  const codedHeight = heightInMbs * 16;
  if (!r.readFlag()) return { width: codedWidth, height: codedHeight };
  const cropUnitX = chromaArrayType === 1 || chromaArrayType === 2 ? 2 : 1;
  const cropUnitY = (chromaArrayType === 1 ? 2 : 1) * (frameMbsOnly ? 1 : 2);
  const left = r.readUE();
  const right = r.readUE();
  const top = r.readUE();
  const bottom = r.readUE();
  const width = codedWidth - cropUnitX * (left + right);
  const height = codedHeight - cropUnitY * (top + bottom);
  if (width <= 0 || height <= 0) {
    const offsets = `left=${left} right=${right} top=${top} bottom=${bottom}`;
    throw new CodecError(
      `expected SPS frame cropping inside the ${codedWidth}x${codedHeight} coded picture, got ${offsets}`,
    );
  }
  return { width, height };
}

/**
 * Reads the VUI fields Sluice uses into `info`, as far as they go (H.264 E.1.1).
 *
 * @throws {CodecError} When the VUI is truncated or malformed; fields already read stay set.
 */
function readVui(r: BitReader, info: SpsInfo): void {
  if (r.readFlag()) { // aspect_ratio_info_present_flag
    const aspectRatioIdc = r.readBits(8);
    if (aspectRatioIdc === 255) r.skipBits(32); // sar_width, sar_height
  }
  if (r.readFlag()) r.skipBits(1); // overscan_info_present_flag → overscan_appropriate_flag
  if (r.readFlag()) { // video_signal_type_present_flag
    r.skipBits(4); // video_format, video_full_range_flag
    if (r.readFlag()) r.skipBits(24); // colour_primaries, transfer, matrix
  }
  if (r.readFlag()) { // chroma_loc_info_present_flag
    r.readUE();
    r.readUE();
  }
  if (r.readFlag()) { // timing_info_present_flag
    const numUnitsInTick = r.readBits(32);
    const timeScale = r.readBits(32);
    r.skipBits(1); // fixed_frame_rate_flag
    if (numUnitsInTick > 0 && timeScale > 0) info.fps = timeScale / (2 * numUnitsInTick);
  }
  const nalHrd = r.readFlag();
  if (nalHrd) skipHrdParameters(r);
  const vclHrd = r.readFlag();
  if (vclHrd) skipHrdParameters(r);
  if (nalHrd || vclHrd) r.skipBits(1); // low_delay_hrd_flag
  r.skipBits(1); // pic_struct_present_flag
  if (r.readFlag()) { // bitstream_restriction_flag
    r.skipBits(1); // motion_vectors_over_pic_boundaries_flag
    r.readUE(); // max_bytes_per_pic_denom
    r.readUE(); // max_bits_per_mb_denom
    r.readUE(); // log2_max_mv_length_horizontal
    r.readUE(); // log2_max_mv_length_vertical
    const maxNumReorderFrames = readUEAtMost(r, 16, "max_num_reorder_frames");
    readUEAtMost(r, 16, "max_dec_frame_buffering");
    info.maxNumReorderFrames = maxNumReorderFrames;
  }
}

/** Skips hrd_parameters() (H.264 E.1.2). */
function skipHrdParameters(r: BitReader): void {
  const cpbCount = readUEAtMost(r, 31, "cpb_cnt_minus1") + 1;
  r.skipBits(8); // bit_rate_scale, cpb_size_scale
  for (let i = 0; i < cpbCount; i++) {
    r.readUE(); // bit_rate_value_minus1
    r.readUE(); // cpb_size_value_minus1
    r.skipBits(1); // cbr_flag
  }
  r.skipBits(20); // four delay/offset lengths of 5 bits
}

/** Skips the SPS scaling lists: 6 of 16 entries, then 2 or 6 of 64 (H.264 7.3.2.1.1.1). */
function skipScalingMatrix(r: BitReader, lists: number): void {
  for (let i = 0; i < lists; i++) {
    if (!r.readFlag()) continue; // seq_scaling_list_present_flag
    const size = i < 6 ? 16 : 64;
    let lastScale = 8;
    let nextScale = 8;
    for (let j = 0; j < size && nextScale !== 0; j++) {
      const delta = r.readSE();
      if (delta < -128 || delta > 127) {
        throw new CodecError(`expected SPS delta_scale in -128..127, got ${delta}`);
      }
      nextScale = (lastScale + delta + 256) % 256;
      if (nextScale !== 0) lastScale = nextScale;
    }
  }
}

/** Reads a `ue(v)` and checks it against the largest value the standard allows. */
function readUEAtMost(r: BitReader, max: number, name: string): number {
  const value = r.readUE();
  if (value > max) throw new CodecError(`expected ${name} in 0..${max}, got ${value}`);
  return value;
}

/**
 * Yields the NAL units of AVCC-framed data: each unit preceded by its
 * big-endian length. Empty units are skipped.
 *
 * @param data Length-prefixed NAL units, as an FLV video tag carries them.
 * @param lengthSize Bytes in each length prefix (avcC lengthSizeMinusOne + 1).
 * @returns Subarrays of `data`, not copies.
 * @throws {CodecError} When a length prefix or a unit runs past the end of `data`.
 */
export function* iterateAvccNalUnits(
  data: Uint8Array,
  lengthSize: 1 | 2 | 4 = 4,
): Generator<Uint8Array> {
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 4) {
    throw new CodecError(`expected a NAL length size of 1, 2 or 4 bytes, got ${lengthSize}`);
  }
  let offset = 0;
  while (offset < data.length) {
    const left = data.length - offset;
    if (left < lengthSize) {
      throw new CodecError(
        `expected a ${lengthSize}-byte NAL unit length at byte ${offset}, got ${left} bytes`,
      );
    }
    let length = 0;
    for (let i = 0; i < lengthSize; i++) length = length * 256 + data[offset + i];
    const room = left - lengthSize;
    if (length > room) {
      throw new CodecError(
        `expected a NAL unit of ≤ ${room} bytes at byte ${offset}, got a length of ${length}`,
      );
    }
    offset += lengthSize;
    if (length > 0) yield data.subarray(offset, offset + length);
    offset += length;
  }
}

/**
 * Splits an Annex B byte stream on its start codes (`00 00 01` or `00 00 00 01`).
 *
 * Bytes before the first start code are not a NAL unit and are dropped, as are
 * trailing zero bytes of each unit and empty units.
 *
 * @param data An H.264 elementary stream in Annex B form.
 * @returns The NAL units as subarrays of `data`, without start codes.
 */
export function annexBToNalUnits(data: Uint8Array): Uint8Array[] {
  const units: Uint8Array[] = [];
  let start = -1;
  let i = 0;
  while (i + 2 < data.length) {
    if (data[i + 2] > 1) {
      i += 3; // no start code can end at i+2 or begin before it
    } else if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) pushTrimmed(units, data, start, i);
      i += 3;
      start = i;
    } else {
      i++;
    }
  }
  if (start >= 0) pushTrimmed(units, data, start, data.length);
  return units;
}

/** Appends `data[start, end)` minus trailing zero bytes, unless nothing is left. */
function pushTrimmed(units: Uint8Array[], data: Uint8Array, start: number, end: number): void {
  while (end > start && data[end - 1] === 0) end--;
  if (end > start) units.push(data.subarray(start, end));
}

/**
 * Joins NAL units into AVCC framing with 4-byte big-endian length prefixes.
 *
 * @param nals NAL units without start codes.
 * @returns A new buffer holding each unit behind its length.
 */
export function nalUnitsToAvcc(nals: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const nal of nals) total += 4 + nal.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const nal of nals) {
    view.setUint32(offset, nal.length);
    out.set(nal, offset + 4);
    offset += 4 + nal.length;
  }
  return out;
}

/**
 * Reads the slice type from the start of a coded slice's header.
 *
 * @param nal A NAL unit with its header byte.
 * @returns slice_type modulo 5 (see {@linkcode SliceType}: 0 P, 1 B, 2 I, 3 SP, 4 SI),
 *   or undefined when `nal` is not a slice (type 1 or 5) or its header cannot be read.
 */
export function sliceType(nal: Uint8Array): number | undefined {
  if (nal.length < 2) return undefined;
  const type = nal[0] & 0x1f;
  if (type !== NalType.SLICE && type !== NalType.IDR) return undefined;
  const r = new BitReader(
    removeEmulationPrevention(nal.subarray(1, 1 + SLICE_HEADER_PREFIX_BYTES)),
  );
  try {
    r.readUE(); // first_mb_in_slice
    const raw = r.readUE();
    return raw <= 9 ? raw % 5 : undefined;
  } catch (error) {
    if (error instanceof CodecError) return undefined;
    throw error;
  }
}

/**
 * Tells whether AVCC-framed data holds a B slice, the mark of B-frames that
 * browsers' WebRTC H.264 decoders cannot reorder.
 *
 * @param avccData Length-prefixed NAL units of one access unit (or more).
 * @param lengthSize Bytes in each length prefix.
 * @throws {CodecError} When a NAL unit length overruns `avccData`.
 */
export function containsBSlice(avccData: Uint8Array, lengthSize: 1 | 2 | 4 = 4): boolean {
  for (const nal of iterateAvccNalUnits(avccData, lengthSize)) {
    if (sliceType(nal) === SliceType.B) return true;
  }
  return false;
}

/**
 * Tells whether AVCC-framed data holds an IDR slice, so decoding can start there.
 *
 * @param avccData Length-prefixed NAL units of one access unit.
 * @param lengthSize Bytes in each length prefix.
 * @throws {CodecError} When a NAL unit length overruns `avccData`.
 */
export function isKeyframeAvcc(avccData: Uint8Array, lengthSize: 1 | 2 | 4 = 4): boolean {
  for (const nal of iterateAvccNalUnits(avccData, lengthSize)) {
    if ((nal[0] & 0x1f) === NalType.IDR) return true;
  }
  return false;
}
