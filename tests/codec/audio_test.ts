import assert from "node:assert/strict";
import {
  AacOpusTranscoder,
  CodecError,
  OPUS_FRAME_SAMPLES,
  OpusPacketDecoder,
} from "../../lib/codec/mod.ts";
import { mulberry32 } from "../support/prng.ts";

const FIXTURES = new URL("../fixtures/audio/", import.meta.url);

/** The AudioSpecificConfigs ffmpeg's native encoder writes (LC + a "no SBR" 0x2b7 extension). */
const ASC_44100_STEREO = Uint8Array.of(0x12, 0x10, 0x56, 0xe5, 0x00);
const ASC_48000_MONO = Uint8Array.of(0x11, 0x88, 0x56, 0xe5, 0x00);

const SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000];

interface AdtsStream {
  /** Raw access units, ADTS headers stripped, as FLV carries them. */
  frames: Uint8Array[];
  sampleRate: number;
  channels: number;
}

/** Splits an ADTS file (see tests/fixtures/audio/generate.sh) into raw access units. */
function readAdts(name: string): AdtsStream {
  const data = Deno.readFileSync(new URL(name, FIXTURES));
  const frames: Uint8Array[] = [];
  let sampleRate = 0;
  let channels = 0;
  for (let p = 0; p + 7 <= data.length;) {
    assert.equal(data[p], 0xff, `ADTS sync at ${p}`);
    const headerLength = data[p + 1] & 1 ? 7 : 9;
    const length = ((data[p + 3] & 3) << 11) | (data[p + 4] << 3) | (data[p + 5] >> 5);
    assert.ok(length > headerLength && p + length <= data.length, `ADTS length at ${p}`);
    sampleRate = SAMPLE_RATES[(data[p + 2] >> 2) & 15];
    channels = ((data[p + 2] & 1) << 2) | (data[p + 3] >> 6);
    frames.push(data.slice(p + headerLength, p + length));
    p += length;
  }
  return { frames, sampleRate, channels };
}

/** Opus packets expected from `frames` access units of 1024 samples at `rate`, ±2. */
function assertPacketCount(packets: number, frames: number, rate: number): void {
  const expected = (frames * 1024 / rate) * 48000 / OPUS_FRAME_SAMPLES;
  assert.ok(
    Math.abs(packets - expected) <= 2,
    `expected ${expected.toFixed(1)} ± 2 Opus packets, got ${packets}`,
  );
}

/** One channel of interleaved PCM. */
function channel(pcm: Float32Array, channels: number, index: number): Float32Array {
  const out = new Float32Array(Math.floor(pcm.length / channels));
  for (let i = 0; i < out.length; i++) out[i] = pcm[i * channels + index];
  return out;
}

/** Power of `x` at `frequency` (Goertzel), normalised by length. */
function goertzel(x: Float32Array, frequency: number, rate = 48000): number {
  const k = 2 * Math.cos(2 * Math.PI * frequency / rate);
  let s1 = 0;
  let s2 = 0;
  for (const v of x) {
    const s = v + k * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return (s1 * s1 + s2 * s2 - k * s1 * s2) / (x.length * x.length);
}

/** The frequency with the most power between lo and hi Hz, in 0.05 Hz steps (Hann-windowed). */
function dominantFrequency(x: Float32Array, lo: number, hi: number): number {
  const w = x.map((v, i) => v * (0.5 - 0.5 * Math.cos(2 * Math.PI * i / (x.length - 1))));
  let best = lo;
  let bestPower = -1;
  for (let f = lo; f <= hi; f += 0.05) {
    const p = goertzel(w, f);
    if (p > bestPower) [best, bestPower] = [f, p];
  }
  return best;
}

function rms(x: Float32Array): number {
  let sum = 0;
  for (const v of x) sum += v * v;
  return Math.sqrt(sum / Math.max(1, x.length));
}

/** Transcodes every frame, then decodes the Opus packets back to interleaved PCM. */
async function roundTrip(
  transcoder: AacOpusTranscoder,
  frames: Uint8Array[],
): Promise<{ packets: Uint8Array[]; pcm: Float32Array; corrupt: number }> {
  const packets: Uint8Array[] = [];
  let corrupt = 0;
  for (const frame of frames) {
    const result = transcoder.transcode(frame);
    packets.push(...result.packets);
    if (result.corrupt) corrupt++;
  }
  const decoder = await OpusPacketDecoder.create(transcoder.channels);
  const pcm = new Float32Array(packets.length * OPUS_FRAME_SAMPLES * transcoder.channels);
  packets.forEach((packet, i) => {
    const samples = decoder.decode(packet);
    assert.equal(samples.length, OPUS_FRAME_SAMPLES * transcoder.channels, `packet ${i}`);
    pcm.set(samples, i * samples.length);
  });
  decoder.close();
  return { packets, pcm, corrupt };
}

function randomBytes(random: () => number, length: number): Uint8Array {
  return Uint8Array.from({ length }, () => Math.floor(random() * 256));
}

Deno.test("AacOpusTranscoder: 44.1 kHz stereo AAC-LC → 20 ms Opus packets, tones on their channels", async () => {
  const stream = readAdts("tone_44100_stereo.aac");
  assert.deepEqual([stream.sampleRate, stream.channels], [44100, 2]);
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  assert.deepEqual([t.inputSampleRate, t.inputChannels, t.frameSamples], [44100, 2, 1024]);
  const { packets, pcm, corrupt } = await roundTrip(t, stream.frames);
  t.close();

  assert.equal(corrupt, 0);
  assertPacketCount(packets.length, stream.frames.length, 44100);
  // 96 kbit/s at 50 packets/s is 240 bytes a packet; VBR on a pure tone spends less.
  const bytes = packets.reduce((n, p) => n + p.length, 0);
  assert.ok(bytes / packets.length < 400, `mean packet ${bytes / packets.length} bytes`);

  // lavfi sine is 1/8 full scale: RMS 0.088. Skip the encoders' start-up (priming, ramp) and the tail where the source ends.
  const left = channel(pcm, 2, 0).subarray(4800, 48000 - 4800);
  const right = channel(pcm, 2, 1).subarray(4800, 48000 - 4800);
  assert.ok(rms(left) > 0.07 && rms(right) > 0.07, `tone level ${rms(left)}, ${rms(right)}`);
  // Each channel carries its own tone, 30 dB above the other one and above a neighbour.
  assert.ok(goertzel(left, 440) > 1000 * goertzel(left, 660), "440 Hz dominates left");
  assert.ok(goertzel(right, 660) > 1000 * goertzel(right, 440), "660 Hz dominates right");
  assert.ok(goertzel(left, 440) > 1000 * goertzel(left, 1000), "left is a clean tone");
  assert.ok(Math.abs(dominantFrequency(left, 430, 450) - 440) <= 1);
  assert.ok(Math.abs(dominantFrequency(right, 650, 670) - 660) <= 1);
});

Deno.test("AacOpusTranscoder: decoded PCM matches ffmpeg's own decode (SNR ≥ 90 dB)", async () => {
  const stream = readAdts("tone_48000_mono.aac");
  const reference = new Float32Array(
    Deno.readFileSync(new URL("tone_48000_mono.f32", FIXTURES)).buffer,
  );
  const t = await AacOpusTranscoder.create(ASC_48000_MONO, { channels: 1 });
  const parts = stream.frames.map((frame) => t.decodeToPcm(frame));
  t.close();
  assert.ok(parts.every((part) => !part.corrupt));
  const pcm = new Float32Array(parts.reduce((n, part) => n + part.pcm.length, 0));
  parts.reduce((offset, part) => (pcm.set(part.pcm, offset), offset + part.pcm.length), 0);

  // 48 kHz in, 48 kHz out: no resampling, sample for sample.
  assert.equal(pcm.length, reference.length);
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < pcm.length; i++) {
    signal += reference[i] ** 2;
    noise += (reference[i] - pcm[i]) ** 2;
  }
  const snr = 10 * Math.log10(signal / Math.max(noise, 1e-30));
  assert.ok(snr >= 90, `SNR ${snr.toFixed(1)} dB`);
});

Deno.test("AacOpusTranscoder: 44.1 → 48 kHz keeps a tone's pitch with no discontinuity", async () => {
  const stream = readAdts("tone_44100_stereo.aac");
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  const pcm: number[] = [];
  for (const frame of stream.frames) pcm.push(...t.decodeToPcm(frame).pcm);
  t.close();
  const expected = stream.frames.length * 1024 * 48000 / 44100;
  assert.ok(Math.abs(pcm.length / 2 - expected) < 64, `${pcm.length / 2} vs ${expected}`);

  const left = channel(Float32Array.from(pcm), 2, 0).subarray(4800, 48000 - 4800);
  assert.ok(Math.abs(dominantFrequency(left, 435, 445) - 440) <= 1);
  // A sine of amplitude A moves at most A·2πf/fs a sample; a seam would jump further.
  let amplitude = 0;
  for (const v of left) amplitude = Math.max(amplitude, Math.abs(v));
  const slope = amplitude * 2 * Math.PI * 440 / 48000;
  for (let i = 1; i < left.length; i++) {
    assert.ok(Math.abs(left[i] - left[i - 1]) < 1.25 * slope, `step at ${i}`);
  }
});

Deno.test("AacOpusTranscoder: corrupt and truncated frames become silence, the timeline holds", async () => {
  const stream = readAdts("tone_44100_stereo.aac");
  const random = mulberry32(0x5eed);
  const damaged = stream.frames.map((frame, i) => {
    if (i >= 20 && i < 25) return frame.subarray(0, 8); // truncated
    if (i === 30) return new Uint8Array(0); // empty
    if (i === 35) return randomBytes(random, frame.length); // garbage
    return frame;
  });
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  let corrupt = 0;
  const pcm: number[] = [];
  for (const frame of damaged) {
    const result = t.decodeToPcm(frame);
    if (result.corrupt) corrupt++;
    pcm.push(...result.pcm);
  }
  t.close();
  assert.ok(corrupt >= 6, `${corrupt} frames flagged corrupt`); // 5 truncated + 1 empty (+ garbage)
  // Same length as the clean stream: every access unit kept its 1024 samples.
  const expected = stream.frames.length * 1024 * 48000 / 44100;
  assert.ok(Math.abs(pcm.length / 2 - expected) < 64, `${pcm.length / 2} vs ${expected}`);
  // Frames 21..23 (inside the run of truncated ones) are silent; around them the tone plays.
  const at = (frame: number) => Math.round(frame * 1024 * 48000 / 44100);
  const left = channel(Float32Array.from(pcm), 2, 0);
  assert.ok(rms(left.subarray(at(21), at(24))) < 1e-3, "silence where frames were lost");
  assert.ok(rms(left.subarray(at(10), at(19))) > 0.07, "tone before");
  assert.ok(rms(left.subarray(at(26), at(29))) > 0.07, "tone after");

  // Through the Opus path the packet count matches the clean stream's.
  const t2 = await AacOpusTranscoder.create(ASC_44100_STEREO);
  const result = await roundTrip(t2, damaged);
  t2.close();
  assert.ok(result.corrupt >= 6);
  assertPacketCount(result.packets.length, stream.frames.length, 44100);
});

Deno.test("AacOpusTranscoder: a new AudioSpecificConfig (44.1 kHz stereo → 48 kHz mono) re-opens", async () => {
  const first = readAdts("tone_44100_stereo.aac");
  const second = readAdts("tone_48000_mono.aac");
  let t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  const a = await roundTrip(t, first.frames);
  t.close();
  // Same output channel count: the viewer's Opus stream does not change shape.
  t = await AacOpusTranscoder.create(ASC_48000_MONO, { channels: 2 });
  assert.deepEqual([t.inputSampleRate, t.inputChannels], [48000, 1]);
  const b = await roundTrip(t, second.frames);
  t.close();
  assertPacketCount(a.packets.length, first.frames.length, 44100);
  assertPacketCount(b.packets.length, second.frames.length, 48000);
  // The mono source is upmixed to both channels.
  const left = channel(b.pcm, 2, 0).subarray(4800, 43200);
  const right = channel(b.pcm, 2, 1).subarray(4800, 43200);
  assert.ok(goertzel(left, 440) > 1000 * goertzel(left, 660));
  assert.ok(goertzel(right, 440) > 1000 * goertzel(right, 660));
  assert.ok(Math.abs(dominantFrequency(left, 430, 450) - 440) <= 1);

  // Frames of another config (the ASC went stale) never throw and keep counting.
  t = await AacOpusTranscoder.create(ASC_44100_STEREO, { channels: 1 });
  const stale = await roundTrip(t, second.frames);
  t.close();
  assertPacketCount(stale.packets.length, second.frames.length, 44100);
});

Deno.test("AacOpusTranscoder: HE-AAC and HE-AACv2 configs open with SBR timing", async () => {
  // No encoder here writes HE-AAC, so only the configs: explicit SBR (object type 5,
  // 22.05 kHz core, SBR at 44.1 kHz), explicit PS (type 29), backward-compatible SBR.
  const configs: [Uint8Array, number][] = [
    [Uint8Array.of(0x2b, 0x92, 0x08, 0x00), 44100],
    [Uint8Array.of(0xeb, 0x09, 0x88, 0x00), 48000],
    [Uint8Array.of(0x13, 0x90, 0x56, 0xe5, 0xa5, 0x00), 44100],
  ];
  for (const [asc, rate] of configs) {
    const t = await AacOpusTranscoder.create(asc);
    // One access unit lasts 2048 samples at the SBR rate (1024 at the core rate).
    assert.equal(t.frameSamples / t.inputSampleRate, 2048 / rate, `config ${asc}`);
    // A frame it cannot decode still yields its duration in silence.
    const pcm = t.decodeToPcm(Uint8Array.of(1, 2, 3));
    assert.equal(pcm.corrupt, true);
    assert.ok(Math.abs(pcm.pcm.length / 2 - 2048 * 48000 / rate) < 64);
    t.close();
  }
});

Deno.test("AacOpusTranscoder: the bitrate option sizes the packets", async () => {
  const stream = readAdts("tone_44100_stereo.aac");
  const mean = async (bitrate: number) => {
    const t = await AacOpusTranscoder.create(ASC_44100_STEREO, { bitrate, complexity: 10 });
    assert.equal(t.bitrate, bitrate);
    const packets = stream.frames.flatMap((frame) => t.transcode(frame).packets);
    t.close();
    return packets.slice(5).reduce((n, p) => n + p.length, 0) / (packets.length - 5);
  };
  const low = await mean(24_000);
  const high = await mean(256_000);
  assert.ok(low < 24_000 / 8 / 50 * 1.5, `24 kbit/s: ${low} bytes a packet`);
  assert.ok(high > 3 * low, `256 kbit/s: ${high} bytes a packet`);
});

Deno.test("AacOpusTranscoder: options and configs out of range throw CodecError", async () => {
  const bad: Parameters<typeof AacOpusTranscoder.create>[1][] = [
    { bitrate: 1000 },
    { bitrate: 96000.5 },
    { complexity: 11 },
    { expectedPacketLoss: -1 },
    { channels: 3 as 1 },
  ];
  for (const options of bad) {
    await assert.rejects(AacOpusTranscoder.create(ASC_44100_STEREO, options), CodecError);
  }
  await assert.rejects(AacOpusTranscoder.create(Uint8Array.of(0x12)), CodecError);
  // Object type 0 (null) and a reserved sample rate index: FFmpeg refuses them.
  await assert.rejects(AacOpusTranscoder.create(Uint8Array.of(0x00, 0x10)), CodecError);
  await assert.rejects(AacOpusTranscoder.create(Uint8Array.of(0x16, 0x90)), CodecError);

  const t = await AacOpusTranscoder.create(ASC_44100_STEREO, { fec: true, expectedPacketLoss: 10 });
  t.setExpectedPacketLoss(0);
  t.setBitrate(64_000);
  assert.throws(() => t.setBitrate(0), CodecError);
  t.close();
  t.close(); // idempotent
  assert.throws(() => t.transcode(new Uint8Array(10)), /after close/);
});

Deno.test("AacOpusTranscoder: seeded fuzz never throws and keeps one frame per access unit", async () => {
  const stream = readAdts("tone_44100_stereo.aac");
  const random = mulberry32(20251125);
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  const units = 400;
  let packets = 0;
  let corrupt = 0;
  for (let i = 0; i < units; i++) {
    const source = stream.frames[i % stream.frames.length];
    let frame: Uint8Array;
    switch (i % 4) {
      case 0: // random bytes, sometimes longer than any legal access unit
        frame = randomBytes(random, Math.floor(random() ** 3 * 8000));
        break;
      case 1: { // a real frame with a few bits flipped
        frame = source.slice();
        for (let n = 1 + Math.floor(random() * 8); n > 0; n--) {
          frame[Math.floor(random() * frame.length)] ^= 1 << Math.floor(random() * 8);
        }
        break;
      }
      case 2: // a real frame cut short, or with garbage after it
        frame = random() < 0.5
          ? source.subarray(0, Math.floor(random() * source.length))
          : Uint8Array.of(...source, ...randomBytes(random, 1 + Math.floor(random() * 64)));
        break;
      default: // an ADTS-looking header in front of garbage
        frame = Uint8Array.of(0xff, 0xf1, ...randomBytes(random, Math.floor(random() * 300)));
    }
    const result = t.transcode(frame);
    packets += result.packets.length;
    if (result.corrupt) corrupt++;
    for (const p of result.packets) assert.ok(p.length > 0 && p.length <= 1275);
  }
  assert.ok(corrupt > units / 4, `${corrupt} of ${units} flagged corrupt`);
  // Output rate and shape survived: 400 access units of 1024 samples at 44.1 kHz.
  assertPacketCount(packets, units, 44100);
  assert.equal(t.inputSampleRate, 44100);
  assert.equal(t.inputChannels, 2);

  // And the stream still decodes cleanly afterwards.
  const after = await roundTrip(t, stream.frames);
  t.close();
  const left = channel(after.pcm, 2, 0).subarray(9600, 40000);
  assert.ok(goertzel(left, 440) > 100 * goertzel(left, 660));

  // Random configs: a transcoder or a CodecError, nothing else.
  for (let i = 0; i < 200; i++) {
    const asc = randomBytes(random, 2 + Math.floor(random() * 6));
    try {
      const fuzzed = await AacOpusTranscoder.create(asc);
      fuzzed.transcode(stream.frames[10]);
      fuzzed.transcode(randomBytes(random, 100));
      fuzzed.close();
    } catch (error) {
      assert.ok(error instanceof CodecError, String(error));
    }
  }
});

Deno.test("OpusPacketDecoder: conceals a lost packet with 20 ms", async () => {
  const decoder = await OpusPacketDecoder.create(2);
  assert.equal(decoder.decode(new Uint8Array(0)).length, 2 * OPUS_FRAME_SAMPLES);
  assert.throws(() => decoder.decode(new Uint8Array(5000)), CodecError);
  decoder.close();
});
