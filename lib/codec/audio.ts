/**
 * AAC → Opus for WebRTC, in process: FFmpeg's AAC decoder, libswresample and
 * libopus compiled into one WebAssembly module (`wasm/aac_opus.mjs`, built by
 * `tools/build-codec-wasm.sh`, LGPL-2.1-or-later; see `wasm/README.md`).
 *
 * Every raw AAC access unit in advances the output timeline by its duration,
 * even a corrupt one (it becomes silence), so the count of 20 ms packets out
 * is the audio clock: packet n starts at 48 kHz sample 960·n of the stream.
 *
 * The module is instantiated once per process (or Worker), lazily, on the
 * first {@linkcode AacOpusTranscoder.create}; all transcoders share its heap.
 * Calls are synchronous and CPU-bound: run them in a Worker to keep the event
 * loop free.
 *
 * @module
 */

import type { AacOpusModule } from "./wasm/aac_opus.d.mts";
import { CodecError } from "./errors.ts";

/** Opus always runs at 48 kHz here; WebRTC's Opus RTP clock is 48 kHz too (RFC 7587). */
export const OPUS_SAMPLE_RATE = 48000;
/** Samples per channel in every packet {@linkcode AacOpusTranscoder.transcode} returns: 20 ms. */
export const OPUS_FRAME_SAMPLES = 960;

/**
 * Default Opus bitrate for stereo output. Publishers send AAC at 96–160 kbit/s;
 * Opus at 96 kbit/s stereo is rated near-transparent for music (Xiph's
 * recommended settings: 96–128 for stereo music), so a second lossy generation
 * stays inaudible for most material while costing a viewer ≈ 100 kbit/s —
 * a few percent of a 2.5 Mbit/s video stream. Speech needs far less; lower it
 * per room with {@linkcode AacOpusOptions.bitrate}.
 */
export const DEFAULT_STEREO_BITRATE = 96_000;
/** Default Opus bitrate for mono output: half the stereo budget, same quality target. */
export const DEFAULT_MONO_BITRATE = 48_000;
/**
 * Default Opus encoder complexity (0..10). 7 is the lowest that runs libopus's
 * tonality/speech-music analysis: without it the encoder cannot tell music, so
 * with in-band FEC and reported loss above 5 % it forces music into SILK/hybrid
 * mode; it also steers VBR. Measured cost (44.1 kHz stereo AAC → Opus, one core):
 * ≈ 125× realtime at 7 against ≈ 145× at 5 and ≈ 105× at 10 (lib/codec/wasm/README.md).
 */
export const DEFAULT_COMPLEXITY = 7;

/** Largest Opus packet libopus writes for one 20 ms frame is 1275 bytes; leave headroom. */
const PACKET_CAPACITY = 4000;
/** Largest raw access unit the C side accepts: 6144 bits × 8 channels, plus an ADTS header. */
const MAX_ACCESS_UNIT = 6144 + 9;

/** Options of {@linkcode AacOpusTranscoder.create}. */
export interface AacOpusOptions {
  /**
   * Opus target bitrate in bit/s (VBR), 6000..510000. Default
   * {@linkcode DEFAULT_STEREO_BITRATE} for stereo, {@linkcode DEFAULT_MONO_BITRATE} for mono.
   */
  bitrate?: number;
  /** Opus encoder complexity 0..10. Default {@linkcode DEFAULT_COMPLEXITY}. */
  complexity?: number;
  /**
   * Opus in-band FEC (LBRR, in SILK and hybrid modes). Default true: it costs
   * nothing until an expected loss above 0 is set, and never forces music into
   * SILK (OPUS_SET_INBAND_FEC(2)).
   */
  fec?: boolean;
  /** Expected packet loss in percent (0..100), what FEC sizes itself to. Default 0. */
  expectedPacketLoss?: number;
  /** Output channels, 1 or 2; the decoded audio is down- or up-mixed. Default 2. */
  channels?: 1 | 2;
}

/** What one access unit turned into. */
export interface TranscodeResult {
  /** Zero or more complete 20 ms Opus packets (960 samples at 48 kHz each), in order. */
  packets: Uint8Array[];
  /** The access unit was rejected or empty and one frame of silence stood in for it. */
  corrupt: boolean;
}

/** Decoded PCM of one access unit, for diagnostics and tests. */
export interface PcmResult {
  /** Interleaved float samples at 48 kHz, `channels` per frame; may be empty. */
  pcm: Float32Array;
  /** As in {@linkcode TranscodeResult.corrupt}. */
  corrupt: boolean;
}

let modulePromise: Promise<AacOpusModule> | undefined;

/**
 * Imports and instantiates the WebAssembly module once; later calls share it.
 * The import is dynamic so that processes which never transcode audio never
 * parse the 1.6 MB module; its specifier is a literal, so `deno compile`
 * still embeds it.
 */
export function loadAacOpusModule(): Promise<AacOpusModule> {
  modulePromise ??= (async () => {
    const { default: createAacOpusModule } = (await import(
      "./wasm/aac_opus.mjs"
    )) as typeof import("./wasm/aac_opus.d.mts");
    return await createAacOpusModule();
  })().catch((error: unknown) => {
    modulePromise = undefined;
    throw error;
  });
  return modulePromise;
}

/**
 * Transcodes raw AAC access units (as FLV AAC raw tags carry them, no ADTS)
 * into 20 ms Opus packets at 48 kHz. HE-AAC (SBR) and HE-AACv2 (PS) decode
 * too. One instance per stream; re-create it on a new AudioSpecificConfig.
 *
 * @example
 * ```ts
 * const t = await AacOpusTranscoder.create(asc);
 * for (const au of accessUnits) {
 *   const { packets, corrupt } = t.transcode(au);
 *   for (const p of packets) send(p); // each advances the RTP clock by 960
 * }
 * t.close();
 * ```
 */
export class AacOpusTranscoder {
  /** Output channels of the Opus stream (1 or 2). */
  readonly channels: 1 | 2;
  #m: AacOpusModule;
  #handle: number;
  #inPtr: number;
  #inCapacity: number;
  #outPtr: number;
  #bitrate: number;

  private constructor(
    m: AacOpusModule,
    handle: number,
    channels: 1 | 2,
    bitrate: number,
  ) {
    this.#m = m;
    this.#handle = handle;
    this.channels = channels;
    this.#bitrate = bitrate;
    this.#inCapacity = 2048;
    this.#inPtr = m._malloc(this.#inCapacity);
    this.#outPtr = m._malloc(Math.max(PACKET_CAPACITY, OPUS_FRAME_SAMPLES * 2 * 4));
  }

  /**
   * Opens a transcoder for the stream an AudioSpecificConfig describes.
   *
   * @param asc The AudioSpecificConfig of the FLV AAC sequence header.
   * @param options Opus settings and output channels.
   * @throws {CodecError} On options out of range or a config the decoder rejects.
   */
  static async create(
    asc: Uint8Array,
    options: AacOpusOptions = {},
  ): Promise<AacOpusTranscoder> {
    const channels = options.channels ?? 2;
    if (channels !== 1 && channels !== 2) {
      throw new CodecError(`expected 1 or 2 output channels, got ${channels}`);
    }
    const bitrate = options.bitrate ??
      (channels === 2 ? DEFAULT_STEREO_BITRATE : DEFAULT_MONO_BITRATE);
    checkInteger("Opus bitrate (bit/s)", bitrate, 6000, 510_000);
    const complexity = options.complexity ?? DEFAULT_COMPLEXITY;
    checkInteger("Opus complexity", complexity, 0, 10);
    const loss = options.expectedPacketLoss ?? 0;
    checkInteger("expected packet loss (%)", loss, 0, 100);
    if (asc.length < 2 || asc.length > 64) {
      throw new CodecError(`expected an AudioSpecificConfig of 2..64 bytes, got ${asc.length}`);
    }

    const m = await loadAacOpusModule();
    const ascPtr = m._malloc(asc.length);
    m.HEAPU8.set(asc, ascPtr);
    const fec = options.fec ?? true ? 2 : 0;
    const handle = m._aot_open(ascPtr, asc.length, bitrate, complexity, fec, channels);
    m._free(ascPtr);
    if (handle === 0) {
      throw new CodecError(
        `expected an AudioSpecificConfig FFmpeg's AAC decoder accepts, got ${hex(asc)}`,
      );
    }
    if (loss > 0) m._aot_set_packet_loss(handle, loss);
    return new AacOpusTranscoder(m, handle, channels, bitrate);
  }

  /** Sample rate the decoder produces (SBR doubled); from the config until a frame decodes. */
  get inputSampleRate(): number {
    return this.#m._aot_input_sample_rate(this.#open());
  }

  /** Channels the decoder produces; from the config until a frame decodes. */
  get inputChannels(): number {
    return this.#m._aot_input_channels(this.#open());
  }

  /** Samples per channel in one access unit at {@linkcode inputSampleRate} (2048 with SBR). */
  get frameSamples(): number {
    return this.#m._aot_frame_samples(this.#open());
  }

  /** Samples per channel decoded and resampled but not yet in a packet (< 960 after transcode). */
  get pendingSamples(): number {
    return this.#m._aot_pending(this.#open());
  }

  /** Current Opus target bitrate in bit/s. */
  get bitrate(): number {
    return this.#bitrate;
  }

  /**
   * Changes the Opus target bitrate from the next packet on.
   *
   * @throws {CodecError} Outside 6000..510000.
   */
  setBitrate(bitrate: number): void {
    checkInteger("Opus bitrate (bit/s)", bitrate, 6000, 510_000);
    this.#m._aot_set_bitrate(this.#open(), bitrate);
    this.#bitrate = bitrate;
  }

  /**
   * Tells the encoder how much loss to expect (e.g. from RTCP receiver
   * reports), which sizes in-band FEC. 0 turns FEC data off.
   *
   * @throws {CodecError} Outside 0..100.
   */
  setExpectedPacketLoss(percent: number): void {
    checkInteger("expected packet loss (%)", percent, 0, 100);
    this.#m._aot_set_packet_loss(this.#open(), percent);
  }

  /**
   * Decodes one raw AAC access unit and returns the Opus packets that are
   * complete now. A corrupt, truncated or empty unit becomes one frame of
   * silence (`corrupt: true`), so timing holds. Never throws on bad data.
   *
   * @param aac One access unit, without ADTS header (a stray one is skipped).
   * @throws {Error} After {@linkcode close}.
   */
  transcode(aac: Uint8Array): TranscodeResult {
    const corrupt = this.#decode(aac) < 0;
    const m = this.#m;
    const packets: Uint8Array[] = [];
    for (;;) {
      const n = m._aot_encode(this.#handle, this.#outPtr, PACKET_CAPACITY);
      if (n <= 0) break; // under 960 samples left
      packets.push(m.HEAPU8.slice(this.#outPtr, this.#outPtr + n));
    }
    return { packets, corrupt };
  }

  /**
   * Decodes one access unit to 48 kHz PCM without encoding it: the samples
   * queued so far are returned instead of going into Opus packets. For tests
   * and diagnostics; do not mix with {@linkcode transcode} on one stream.
   *
   * @throws {Error} After {@linkcode close}.
   */
  decodeToPcm(aac: Uint8Array): PcmResult {
    const corrupt = this.#decode(aac) < 0;
    const m = this.#m;
    const parts: Float32Array[] = [];
    let total = 0;
    for (;;) {
      const n = m._aot_read_pcm(this.#handle, this.#outPtr, OPUS_FRAME_SAMPLES);
      if (n <= 0) break;
      const start = this.#outPtr >>> 2;
      parts.push(m.HEAPF32.slice(start, start + n * this.channels));
      total += n * this.channels;
    }
    const pcm = new Float32Array(total);
    let offset = 0;
    for (const part of parts) {
      pcm.set(part, offset);
      offset += part.length;
    }
    return { pcm, corrupt };
  }

  /** Frees the WebAssembly side. Idempotent; the instance is unusable afterwards. */
  close(): void {
    if (this.#handle === 0) return;
    this.#m._aot_close(this.#handle);
    this.#m._free(this.#inPtr);
    this.#m._free(this.#outPtr);
    this.#handle = 0;
  }

  #open(): number {
    if (this.#handle === 0) throw new Error("AacOpusTranscoder used after close()");
    return this.#handle;
  }

  /** Runs aot_decode; returns its code (< 0: corrupt, silence queued). */
  #decode(aac: Uint8Array): number {
    const handle = this.#open();
    const m = this.#m;
    if (aac.length > MAX_ACCESS_UNIT) {
      // The C side rejects the length before reading; no need to copy.
      return m._aot_decode(handle, this.#inPtr, aac.length);
    }
    if (aac.length > this.#inCapacity) {
      m._free(this.#inPtr);
      this.#inCapacity = MAX_ACCESS_UNIT;
      this.#inPtr = m._malloc(this.#inCapacity);
    }
    m.HEAPU8.set(aac, this.#inPtr);
    return m._aot_decode(handle, this.#inPtr, aac.length);
  }
}

/**
 * Decodes Opus packets to 48 kHz interleaved float PCM with libopus from the
 * same module: to check what the server sends (tests, diagnostics).
 */
export class OpusPacketDecoder {
  /** Output channels (1 or 2). */
  readonly channels: 1 | 2;
  #m: AacOpusModule;
  #handle: number;
  #inPtr: number;
  #pcmPtr: number;

  private constructor(m: AacOpusModule, handle: number, channels: 1 | 2) {
    this.#m = m;
    this.#handle = handle;
    this.channels = channels;
    this.#inPtr = m._malloc(PACKET_CAPACITY);
    // 120 ms is the longest Opus packet.
    this.#pcmPtr = m._malloc(5760 * channels * 4);
  }

  /**
   * Opens a decoder.
   *
   * @throws {CodecError} On a channel count other than 1 or 2.
   */
  static async create(channels: 1 | 2 = 2): Promise<OpusPacketDecoder> {
    if (channels !== 1 && channels !== 2) {
      throw new CodecError(`expected 1 or 2 channels, got ${channels}`);
    }
    const m = await loadAacOpusModule();
    const handle = m._aod_open(channels);
    if (handle === 0) throw new CodecError(`libopus refused a ${channels}-channel decoder`);
    return new OpusPacketDecoder(m, handle, channels);
  }

  /**
   * Decodes one packet; an empty packet conceals a lost one (20 ms).
   *
   * @throws {CodecError} When libopus rejects the packet.
   */
  decode(packet: Uint8Array): Float32Array {
    if (this.#handle === 0) throw new Error("OpusPacketDecoder used after close()");
    if (packet.length > PACKET_CAPACITY) {
      throw new CodecError(`expected an Opus packet of at most 1275 bytes, got ${packet.length}`);
    }
    const m = this.#m;
    m.HEAPU8.set(packet, this.#inPtr);
    const max = packet.length === 0 ? OPUS_FRAME_SAMPLES : 5760;
    const n = m._aod_decode(this.#handle, this.#inPtr, packet.length, this.#pcmPtr, max);
    if (n < 0) throw new CodecError(`expected a valid Opus packet, libopus said error ${n}`);
    const start = this.#pcmPtr >>> 2;
    return m.HEAPF32.slice(start, start + n * this.channels);
  }

  /** Frees the decoder. Idempotent. */
  close(): void {
    if (this.#handle === 0) return;
    this.#m._aod_close(this.#handle);
    this.#m._free(this.#inPtr);
    this.#m._free(this.#pcmPtr);
    this.#handle = 0;
  }
}

function checkInteger(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new CodecError(`expected ${what} to be an integer in ${min}..${max}, got ${value}`);
  }
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}
