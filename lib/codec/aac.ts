/**
 * AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): the two-to-several byte
 * record an FLV AAC sequence header carries, telling object type, sample rate,
 * channel layout, frame length and whether SBR (HE-AAC) or PS (HE-AACv2) is on.
 *
 * @module
 */

import { BitReader, BitWriter } from "./bits.ts";
import { CodecError } from "./errors.ts";

/** What an AudioSpecificConfig says about the stream. */
export interface AudioSpecificConfig {
  /**
   * Audio object type of the core coder (2 = AAC-LC), escapes resolved (31 → 32 + 6 bits).
   * For explicitly signalled HE-AAC (5) or HE-AACv2 (29) this is the underlying core type;
   * `sbr` and `ps` say the rest.
   */
  objectType: number;
  /** Core sample rate in Hz, from the index table or the explicit 24-bit field. */
  sampleRate: number;
  /**
   * Output channels the channel configuration names (7 → 8 for 7.1); 0 when a program
   * config element defines them. PS doubles a mono core to stereo; this does not count that.
   */
  channels: number;
  /** channelConfiguration as coded: 0 for PCE-defined, 1..7 and 11..14 for fixed layouts. */
  channelConfiguration: number;
  /** Spectral band replication is signalled (HE-AAC), explicitly or by the 0x2b7 extension. */
  sbr: boolean;
  /** Parametric stereo is signalled (HE-AACv2). */
  ps: boolean;
  /** Output sample rate of SBR, when signalled. */
  extensionSampleRate?: number;
  /** Samples per core frame: 960 when frameLengthFlag is set, else 1024. */
  frameLength: 1024 | 960;
  /** RFC 6381 codecs parameter: "mp4a.40.<type>", with 5 for SBR and 29 for PS. */
  codecString: string;
  /** Human name of the profile: "AAC-LC", "HE-AAC", "HE-AACv2", "AAC-Main", … */
  profileName: string;
}

/** samplingFrequencyIndex 0..12 (ISO/IEC 14496-3 Table 1.18); 13, 14 reserved, 15 explicit. */
const SAMPLE_RATES: readonly number[] = [
  96000,
  88200,
  64000,
  48000,
  44100,
  32000,
  24000,
  22050,
  16000,
  12000,
  11025,
  8000,
  7350,
];

/** Channels each channelConfiguration names (Table 1.19 and its amendments); absent = reserved. */
const CHANNELS_BY_CONFIGURATION: ReadonlyMap<number, number> = new Map([
  [0, 0],
  [1, 1],
  [2, 2],
  [3, 3],
  [4, 4],
  [5, 5],
  [6, 6],
  [7, 8],
  [11, 7],
  [12, 8],
  [13, 24],
  [14, 8],
]);

/** Object types whose config is a GASpecificConfig (Table 1.15). */
const GENERAL_AUDIO_TYPES: ReadonlySet<number> = new Set([
  1,
  2,
  3,
  4,
  6,
  7,
  17,
  19,
  20,
  21,
  22,
  23,
]);

/** Error-resilient object types, followed by epConfig (Table 1.15). */
const ERROR_RESILIENT_TYPES: ReadonlySet<number> = new Set([
  17,
  19,
  20,
  21,
  22,
  23,
  24,
  25,
  26,
  27,
  39,
]);

const PROFILE_NAMES: ReadonlyMap<number, string> = new Map([
  [1, "AAC-Main"],
  [2, "AAC-LC"],
  [3, "AAC-SSR"],
  [4, "AAC-LTP"],
  [5, "HE-AAC"],
  [6, "AAC-Scalable"],
  [7, "TwinVQ"],
  [8, "CELP"],
  [9, "HVXC"],
  [17, "ER AAC-LC"],
  [19, "ER AAC-LTP"],
  [20, "ER AAC-Scalable"],
  [21, "ER TwinVQ"],
  [22, "ER BSAC"],
  [23, "ER AAC-LD"],
  [29, "HE-AACv2"],
  [32, "MP3on4 Layer 1"],
  [33, "MP3on4 Layer 2"],
  [34, "MP3on4 Layer 3"],
  [39, "ER AAC-ELD"],
  [42, "USAC"],
]);

/** syncExtensionType announcing a backward-compatible SBR extension (1.6.2.1). */
const SBR_SYNC_EXTENSION = 0x2b7;
/** syncExtensionType announcing a backward-compatible PS extension. */
const PS_SYNC_EXTENSION = 0x548;
const OBJECT_TYPE_SBR = 5;
const OBJECT_TYPE_PS = 29;
const OBJECT_TYPE_ER_BSAC = 22;

/**
 * Parses an AudioSpecificConfig.
 *
 * Recognises SBR and PS signalled explicitly (object type 5 or 29 up front) and
 * backward-compatibly (the 0x2b7 sync extension after the core config). The
 * program config element of channelConfiguration 0 is skipped, not interpreted.
 *
 * @param asc The record, as an FLV AAC sequence header carries it.
 * @throws {CodecError} On a reserved object type, sample rate index or channel
 *   configuration, or a config cut short.
 */
export function parseAudioSpecificConfig(asc: Uint8Array): AudioSpecificConfig {
  if (asc.length < 2) {
    throw new CodecError(`expected an AudioSpecificConfig of at least 2 bytes, got ${asc.length}`);
  }
  const r = new BitReader(asc);
  let objectType = readObjectType(r);
  const sampleRate = readSampleRate(r);
  const channelConfiguration = r.readBits(4);
  const channels = CHANNELS_BY_CONFIGURATION.get(channelConfiguration);
  if (channels === undefined) {
    throw new CodecError(
      `expected channelConfiguration 0..7 or 11..14, got reserved ${channelConfiguration}`,
    );
  }

  let sbr = false;
  let ps = false;
  let extensionSampleRate: number | undefined;
  const explicitExtension = objectType === OBJECT_TYPE_SBR || objectType === OBJECT_TYPE_PS;
  if (explicitExtension) {
    sbr = true;
    ps = objectType === OBJECT_TYPE_PS;
    extensionSampleRate = readSampleRate(r);
    objectType = readObjectType(r);
    if (objectType === OBJECT_TYPE_ER_BSAC) r.skipBits(4); // extensionChannelConfiguration
  }

  let frameLength: 1024 | 960 = 1024;
  let canCarryExtension = false;
  if (GENERAL_AUDIO_TYPES.has(objectType)) {
    if (readGaSpecificConfig(r, objectType, channelConfiguration)) frameLength = 960;
    canCarryExtension = true;
    if (ERROR_RESILIENT_TYPES.has(objectType)) {
      // epConfig 2 and 3 add an ErrorProtectionSpecificConfig Sluice does not read.
      canCarryExtension = r.bitsLeft >= 2 && r.readBits(2) < 2;
    }
  }

  if (!explicitExtension && canCarryExtension && r.bitsLeft >= 16) {
    const extension = readSyncExtension(r);
    if (extension !== undefined) {
      sbr = extension.sbr;
      ps = extension.ps;
      extensionSampleRate = extension.sampleRate;
    }
  }

  const signalledType = ps ? OBJECT_TYPE_PS : sbr ? OBJECT_TYPE_SBR : objectType;
  return {
    objectType,
    sampleRate,
    channels,
    channelConfiguration,
    sbr,
    ps,
    ...(extensionSampleRate === undefined ? {} : { extensionSampleRate }),
    frameLength,
    codecString: `mp4a.40.${signalledType}`,
    profileName: PROFILE_NAMES.get(signalledType) ?? `AOT ${signalledType}`,
  };
}

/**
 * Builds a minimal AudioSpecificConfig for plain AAC: object type, sample rate
 * (indexed, or explicit when not in the table), channel configuration and an
 * all-default GASpecificConfig (1024-sample frames, no core coder, no extension).
 *
 * @param objectType 1 AAC-Main, 2 AAC-LC, 3 AAC-SSR or 4 AAC-LTP.
 * @param sampleRate Sample rate in Hz, 1 to 2^24 − 1.
 * @param channels 1 to 6, or 8 (7.1).
 * @throws {CodecError} On an object type, sample rate or channel count it cannot express.
 * @example
 * ```ts
 * buildAudioSpecificConfig(2, 44100, 2); // Uint8Array [0x12, 0x10]
 * ```
 */
export function buildAudioSpecificConfig(
  objectType: number,
  sampleRate: number,
  channels: number,
): Uint8Array {
  if (!Number.isInteger(objectType) || objectType < 1 || objectType > 4) {
    throw new CodecError(`expected AAC object type 1..4, got ${objectType}`);
  }
  if (!Number.isInteger(sampleRate) || sampleRate < 1 || sampleRate >= 2 ** 24) {
    throw new CodecError(`expected a sample rate of 1..16777215 Hz, got ${sampleRate}`);
  }
  let channelConfiguration: number;
  if (Number.isInteger(channels) && channels >= 1 && channels <= 6) {
    channelConfiguration = channels;
  } else if (channels === 8) {
    channelConfiguration = 7;
  } else {
    throw new CodecError(`expected 1..6 or 8 channels, got ${channels}`);
  }
  const w = new BitWriter();
  w.writeBits(objectType, 5);
  const index = SAMPLE_RATES.indexOf(sampleRate);
  if (index >= 0) {
    w.writeBits(index, 4);
  } else {
    w.writeBits(15, 4);
    w.writeBits(sampleRate, 24);
  }
  w.writeBits(channelConfiguration, 4);
  w.writeBits(0, 3); // frameLengthFlag, dependsOnCoreCoder, extensionFlag
  return w.toBytes();
}

/** GetAudioObjectType(): 5 bits, 31 escaping to 32 + 6 more. */
function readObjectType(r: BitReader): number {
  const type = r.readBits(5);
  if (type === 31) return 32 + r.readBits(6);
  if (type === 0) throw new CodecError("expected an audio object type of 1..95, got 0 (null)");
  return type;
}

/** samplingFrequencyIndex, or the explicit 24-bit samplingFrequency behind index 15. */
function readSampleRate(r: BitReader): number {
  const index = r.readBits(4);
  if (index === 15) {
    const rate = r.readBits(24);
    if (rate === 0) throw new CodecError("expected an explicit sampling frequency above 0, got 0");
    return rate;
  }
  const rate = SAMPLE_RATES[index];
  if (rate === undefined) {
    throw new CodecError(`expected samplingFrequencyIndex 0..12 or 15, got reserved ${index}`);
  }
  return rate;
}

/**
 * Reads GASpecificConfig (1.6.2.1, Table 4.1).
 *
 * @returns frameLengthFlag: true for 960-sample frames.
 */
function readGaSpecificConfig(
  r: BitReader,
  objectType: number,
  channelConfiguration: number,
): boolean {
  const frameLengthFlag = r.readFlag();
  if (r.readFlag()) r.skipBits(14); // dependsOnCoreCoder → coreCoderDelay
  const extensionFlag = r.readFlag();
  if (channelConfiguration === 0) skipProgramConfigElement(r);
  if (objectType === 6 || objectType === 20) r.skipBits(3); // layerNr
  if (extensionFlag) {
    if (objectType === OBJECT_TYPE_ER_BSAC) r.skipBits(16); // numOfSubFrame, layer_length
    if (objectType === 17 || objectType === 19 || objectType === 20 || objectType === 23) {
      r.skipBits(3); // the three resilience flags
    }
    r.skipBits(1); // extensionFlag3
  }
  return frameLengthFlag;
}

/** Skips program_config_element() (Table 4.2); every count is at most 4 bits wide. */
function skipProgramConfigElement(r: BitReader): void {
  r.skipBits(4 + 2 + 4); // element_instance_tag, object_type, sampling_frequency_index
  const front = r.readBits(4);
  const side = r.readBits(4);
  const back = r.readBits(4);
  const lfe = r.readBits(2);
  const assocData = r.readBits(3);
  const validCc = r.readBits(4);
  if (r.readFlag()) r.skipBits(4); // mono_mixdown_element_number
  if (r.readFlag()) r.skipBits(4); // stereo_mixdown_element_number
  if (r.readFlag()) r.skipBits(3); // matrix_mixdown_idx, pseudo_surround_enable
  r.skipBits(5 * (front + side + back) + 4 * (lfe + assocData) + 5 * validCc);
  // byte_alignment() counts from the start of the AudioSpecificConfig.
  r.skipBits((8 - (r.bitPosition % 8)) % 8);
  r.skipBits(8 * r.readBits(8)); // comment_field_bytes
}

/**
 * Reads a backward-compatible SBR/PS extension, if the remaining bits start with one.
 * A malformed extension is ignored: a decoder that skips it still plays the core.
 */
function readSyncExtension(r: BitReader): SyncExtension | undefined {
  try {
    return readSyncExtensionOrThrow(r);
  } catch (error) {
    if (error instanceof CodecError) return undefined;
    throw error;
  }
}

interface SyncExtension {
  sbr: boolean;
  ps: boolean;
  sampleRate?: number;
}

function readSyncExtensionOrThrow(r: BitReader): SyncExtension | undefined {
  if (r.readBits(11) !== SBR_SYNC_EXTENSION) return undefined;
  const extensionType = readObjectType(r);
  if (extensionType === OBJECT_TYPE_SBR) {
    if (!r.readFlag()) return { sbr: false, ps: false }; // sbrPresentFlag
    const sampleRate = readSampleRate(r);
    let ps = false;
    if (r.bitsLeft >= 12 && r.readBits(11) === PS_SYNC_EXTENSION) ps = r.readFlag();
    return { sbr: true, ps, sampleRate };
  }
  if (extensionType === OBJECT_TYPE_ER_BSAC) {
    if (!r.readFlag()) return { sbr: false, ps: false };
    const sampleRate = readSampleRate(r);
    r.skipBits(4); // extensionChannelConfiguration
    return { sbr: true, ps: false, sampleRate };
  }
  return undefined;
}
