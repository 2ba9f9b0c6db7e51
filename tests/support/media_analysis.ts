/**
 * Analysis of recorded RTP for end-to-end tests: Opus packets to PCM, the
 * dominant frequency of a channel, tone-burst onsets, H.264 RTP (RFC 6184) to
 * access units decoded by ffmpeg to a mean luma per frame, and RTP timestamps
 * to NTP time through an RTCP sender report.
 *
 * @module
 */
import { OpusPacketDecoder } from "../../lib/codec/audio.ts";
import type { RecordedRtp, SenderReport } from "./werift_recorder.ts";

/** Packets sorted by sequence number (unwrapped from the first), duplicates dropped. */
export function bySequence(
  packets: readonly RecordedRtp[],
): { ext: number; packet: RecordedRtp }[] {
  if (packets.length === 0) return [];
  let last = packets[0].sequenceNumber;
  let ext = last;
  const seen = new Map<number, RecordedRtp>();
  for (const p of packets) {
    // Unwrap against the previous packet in arrival order (reordering is < 32768 apart).
    const delta = ((p.sequenceNumber - last + 0x8000) & 0xffff) - 0x8000;
    ext += delta;
    last = p.sequenceNumber;
    if (!seen.has(ext)) seen.set(ext, p);
  }
  return [...seen.entries()].sort((a, b) => a[0] - b[0]).map((
    [ext, packet],
  ) => ({ ext, packet }));
}

/** 32-bit RTP timestamp difference `a - b` as a signed number. */
export function tsDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** Decoded Opus audio: one Float32Array per channel, and the RTP timestamp of sample 0. */
export interface DecodedAudio {
  readonly sampleRate: 48000;
  readonly channels: Float32Array[];
  readonly firstTimestamp: number;
  /** Packets lost in the sequence (concealed by libopus). */
  readonly concealed: number;
}

/** Decodes Opus RTP packets in sequence order with libopus, concealing gaps. */
export async function decodeOpusRtp(
  packets: readonly RecordedRtp[],
  channels: 1 | 2 = 2,
): Promise<DecodedAudio> {
  const ordered = bySequence(packets);
  if (ordered.length === 0) throw new Error("expected Opus packets, got none");
  const decoder = await OpusPacketDecoder.create(channels);
  const parts: Float32Array[] = [];
  let concealed = 0;
  try {
    let expect = ordered[0].ext;
    for (const { ext, packet } of ordered) {
      for (; expect < ext; expect++, concealed++) {
        parts.push(decoder.decode(new Uint8Array(0)));
      }
      parts.push(decoder.decode(packet.payload));
      expect = ext + 1;
    }
  } finally {
    decoder.close();
  }
  const frames = parts.reduce((n, p) => n + p.length / channels, 0);
  const out = Array.from({ length: channels }, () => new Float32Array(frames));
  let i = 0;
  for (const part of parts) {
    for (let j = 0; j < part.length; j += channels, i++) {
      for (let c = 0; c < channels; c++) out[c][i] = part[j + c];
    }
  }
  return {
    sampleRate: 48000,
    channels: out,
    firstTimestamp: ordered[0].packet.timestamp,
    concealed,
  };
}

/** In-place iterative radix-2 FFT of (re, im); length a power of two. */
export function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (n & (n - 1)) throw new Error(`expected a power-of-two length, got ${n}`);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const angle = (-2 * Math.PI) / len;
    const wr = Math.cos(angle);
    const wi = Math.sin(angle);
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k;
        const b = a + len / 2;
        const tr = re[b] * cr - im[b] * ci;
        const ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
}

/** The strongest frequency and how far it stands above the rest of the band. */
export interface SpectralPeak {
  /** Hz, refined between bins by Gaussian (log-parabolic) interpolation. */
  readonly frequency: number;
  /** Peak power over the median power of the band, in dB. */
  readonly prominenceDb: number;
}

/**
 * The dominant frequency of `samples` between `minHz` and `maxHz`: a Hann-windowed
 * FFT over the largest power-of-two span, peak bin refined by interpolation.
 */
export function dominantFrequency(
  samples: Float32Array,
  sampleRate: number,
  minHz = 100,
  maxHz = 2000,
): SpectralPeak {
  let n = 1;
  while (n * 2 <= samples.length) n *= 2;
  if (n < 4096) {
    throw new Error(`expected at least 4096 samples, got ${samples.length}`);
  }
  const offset = samples.length - n; // the newest span: past any start-up transient
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    re[i] = samples[offset + i] *
      (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
  }
  fft(re, im);
  const power = (k: number) => re[k] * re[k] + im[k] * im[k];
  const lo = Math.ceil((minHz * n) / sampleRate);
  const hi = Math.floor((maxHz * n) / sampleRate);
  let best = lo;
  const band: number[] = [];
  for (let k = lo; k <= hi; k++) {
    band.push(power(k));
    if (power(k) > power(best)) best = k;
  }
  const [a, b, c] = [power(best - 1), power(best), power(best + 1)].map((p) => Math.log(p + 1e-30));
  const denom = a - 2 * b + c;
  const shift = denom === 0 ? 0 : (0.5 * (a - c)) / denom;
  band.sort((x, y) => x - y);
  const median = band[band.length >> 1];
  return {
    frequency: ((best + shift) * sampleRate) / n,
    prominenceDb: 10 * Math.log10(power(best) / (median + 1e-30)),
  };
}

/**
 * Sample indices where a tone burst starts: the first sample whose magnitude
 * reaches `fraction` of the loudest sample, after at least `quietSeconds` below it.
 */
export function burstOnsets(
  samples: Float32Array,
  sampleRate: number,
  fraction = 0.25,
  quietSeconds = 0.3,
): number[] {
  let peak = 0;
  for (const s of samples) peak = Math.max(peak, Math.abs(s));
  const threshold = peak * fraction;
  const quiet = Math.round(quietSeconds * sampleRate);
  const onsets: number[] = [];
  let lastLoud = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]) < threshold) continue;
    // A burst cut off by the start of the recording has no known onset.
    if (i - lastLoud >= quiet && i >= quiet) onsets.push(i);
    lastLoud = i;
  }
  return onsets;
}

/** One H.264 access unit rebuilt from RTP. */
export interface AccessUnit {
  readonly timestamp: number;
  /** Annex B byte stream of the unit's NAL units. */
  readonly data: Uint8Array;
  /** Carries an IDR slice. */
  readonly idr: boolean;
  /** Every packet from its first to its marker arrived. */
  readonly complete: boolean;
}

const START_CODE = [0, 0, 0, 1];

/** Rebuilds access units from H.264 RTP (RFC 6184 single NAL, STAP-A, FU-A), in sequence order. */
export function depacketizeH264(packets: readonly RecordedRtp[]): AccessUnit[] {
  const units: AccessUnit[] = [];
  let bytes: number[] = [];
  let ts: number | undefined;
  let idr = false;
  let complete = true;
  let lastExt: number | undefined;
  let inFu = false;
  const flush = () => {
    if (ts !== undefined && bytes.length) {
      units.push({ timestamp: ts, data: new Uint8Array(bytes), idr, complete });
    }
    bytes = [];
    ts = undefined;
    idr = false;
    complete = true;
    inFu = false;
  };
  const nal = (data: Uint8Array) => {
    if ((data[0] & 0x1f) === 5) idr = true;
    bytes.push(...START_CODE);
    for (const b of data) bytes.push(b);
  };
  for (const { ext, packet } of bySequence(packets)) {
    if (ts !== undefined && packet.timestamp !== ts) {
      complete = false; // the previous unit lost its marker packet
      flush();
    }
    if (lastExt !== undefined && ext !== lastExt + 1 && ts !== undefined) {
      complete = false;
    }
    lastExt = ext;
    ts = packet.timestamp;
    const p = packet.payload;
    const type = p[0] & 0x1f;
    if (type >= 1 && type <= 23) nal(p);
    else if (type === 24) {
      for (let i = 1; i + 2 <= p.length;) {
        const size = (p[i] << 8) | p[i + 1];
        if (i + 2 + size > p.length) {
          complete = false;
          break;
        }
        nal(p.subarray(i + 2, i + 2 + size));
        i += 2 + size;
      }
    } else if (type === 28) {
      const start = (p[1] & 0x80) !== 0;
      const header = (p[0] & 0xe0) | (p[1] & 0x1f);
      if (start) {
        if ((header & 0x1f) === 5) idr = true;
        bytes.push(...START_CODE, header);
        inFu = true;
      } else if (!inFu) complete = false;
      for (const b of p.subarray(2)) bytes.push(b);
      if (p[1] & 0x40) inFu = false;
    }
    if (packet.marker) flush();
  }
  flush();
  return units;
}

/**
 * Decodes access units (from an IDR on) with ffmpeg and returns each frame's mean
 * luma (0..255), one value per access unit, in order.
 *
 * @throws {Error} When ffmpeg fails or returns a different number of frames.
 */
export async function decodeMeanLuma(
  units: readonly AccessUnit[],
): Promise<number[]> {
  const size = units.reduce((n, u) => n + u.data.length, 0);
  const stream = new Uint8Array(size);
  let offset = 0;
  for (const u of units) {
    stream.set(u.data, offset);
    offset += u.data.length;
  }
  const w = 16;
  const h = 12;
  const child = new Deno.Command("ffmpeg", {
    args: [
      "-nostdin",
      "-hide_banner",
      "-loglevel",
      "error",
      "-f",
      "h264",
      "-i",
      "pipe:0",
      "-fps_mode",
      "passthrough",
      "-vf",
      `scale=${w}:${h},format=gray`,
      "-f",
      "rawvideo",
      "pipe:1",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const write = writer.write(stream).then(() => writer.close());
  const [out] = await Promise.all([child.output(), write]);
  if (!out.success) {
    throw new Error(
      `ffmpeg could not decode the H.264: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const frame = w * h;
  const frames = out.stdout.length / frame;
  if (frames !== units.length) {
    throw new Error(
      `expected ffmpeg to decode ${units.length} frames, got ${frames}`,
    );
  }
  const luma: number[] = [];
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let i = 0; i < frame; i++) sum += out.stdout[f * frame + i];
    luma.push(sum / frame);
  }
  return luma;
}

/** NTP time (seconds) of an RTP timestamp through a sender report of its stream. */
export function rtpToNtp(
  sr: SenderReport,
  timestamp: number,
  clockRate: number,
): number {
  return sr.ntpSeconds + tsDiff(timestamp, sr.rtpTimestamp) / clockRate;
}

/**
 * A receiver's RTP → NTP mapping of one stream from several sender reports, at the
 * nominal clock rate: the median of the reports' offsets, so that one report
 * stamped late (a sender whose event loop stalled) does not move it, much as a
 * receiver's estimator smooths reports (Chromium fits its last 20). Returns the
 * NTP seconds of an RTP timestamp.
 *
 * @throws {Error} Without a report.
 */
export function fitRtpToNtp(
  reports: readonly SenderReport[],
  clockRate: number,
): (timestamp: number) => number {
  if (reports.length === 0) {
    throw new Error("expected sender reports, got none");
  }
  const ref = reports[reports.length - 1].rtpTimestamp;
  const offsets = reports.map((r) => r.ntpSeconds - tsDiff(r.rtpTimestamp, ref) / clockRate)
    .sort((a, b) => a - b);
  const mid = offsets.length >> 1;
  const median = offsets.length % 2 ? offsets[mid] : (offsets[mid - 1] + offsets[mid]) / 2;
  return (timestamp) => median + tsDiff(timestamp, ref) / clockRate;
}
