/**
 * AAC → Opus benchmark: how much of one core a room's audio costs.
 *
 *   deno run --no-lock --allow-read --allow-env --allow-sys --allow-run bench/audio_bench.ts [--seconds N]
 *
 * Input: tests/fixtures/audio/tone_44100_stereo.aac (AAC-LC 44.1 kHz stereo 128 kbit/s),
 * looped. Prints x-realtime per core (audio seconds / CPU seconds of this process, so
 * other load on the machine skews it less than wall time) for
 *   - AAC decode + resample to 48 kHz (no Opus),
 *   - AAC → Opus (the whole in-process path) at complexity 0, 5, 7 (default), 10,
 *   - libopus encoding alone in this module (derived) and in npm @evan/opus (WASM),
 *   - native `ffmpeg -c:a libopus` doing the same job (when ffmpeg has libopus),
 * and the added latency of the path. `--no-lock`: @evan/opus is imported at run time
 * only for the comparison and is not a project dependency. Prints figures, asserts nothing.
 *
 * @module
 */

import process from "node:process";
import {
  AacOpusTranscoder,
  DEFAULT_COMPLEXITY,
  DEFAULT_STEREO_BITRATE,
  OPUS_FRAME_SAMPLES,
} from "../lib/codec/mod.ts";

const FIXTURE = new URL(
  "../tests/fixtures/audio/tone_44100_stereo.aac",
  import.meta.url,
);
const ASC_44100_STEREO = Uint8Array.of(0x12, 0x10, 0x56, 0xe5, 0x00);
const EVAN_OPUS = "npm:@evan/opus@1.0.3/wasm/index.mjs";

const secondsArg = Deno.args.indexOf("--seconds");
const SECONDS = secondsArg >= 0 ? Number(Deno.args[secondsArg + 1]) : 20;
const ROUNDS = 5;

/** Raw access units of an ADTS file. */
function readAdts(data: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let p = 0; p + 7 <= data.length;) {
    const headerLength = data[p + 1] & 1 ? 7 : 9;
    const length = ((data[p + 3] & 3) << 11) | (data[p + 4] << 3) |
      (data[p + 5] >> 5);
    frames.push(data.slice(p + headerLength, p + length));
    p += length;
  }
  return frames;
}

const adts = Deno.readFileSync(FIXTURE);
const oneSecond = readAdts(adts);
const loops = Math.max(
  1,
  Math.round(SECONDS * 44100 / 1024 / oneSecond.length),
);
const frames = Array.from({ length: loops }, () => oneSecond).flat();
const audioSeconds = frames.length * 1024 / 44100;

/** CPU seconds (user + system, all threads of this process) `fn` takes. */
function cpuSeconds(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** Best CPU seconds of each function over ROUNDS interleaved rounds, after a warm-up round. */
function bestOf(fns: (() => void)[]): number[] {
  fns.forEach((fn) => fn());
  const best = fns.map(() => Infinity);
  for (let round = 0; round < ROUNDS; round++) {
    fns.forEach((fn, i) => (best[i] = Math.min(best[i], cpuSeconds(fn))));
  }
  return best;
}

function row(name: string, seconds: number, note = ""): void {
  const x = audioSeconds / seconds;
  console.log(
    `${name.padEnd(44)} ${x.toFixed(0).padStart(6)}× realtime  ${
      (100 / x).toFixed(2).padStart(5)
    } % of a core per stream${note ? "  " + note : ""}`,
  );
}

function percentile(sorted: number[], p: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))
  ];
}

console.log(
  `AAC-LC 44.1 kHz stereo 128 kbit/s → Opus 48 kHz stereo ${DEFAULT_STEREO_BITRATE / 1000} ` +
    `kbit/s, 20 ms; ${audioSeconds.toFixed(1)} s of audio, best of ${ROUNDS}; ` +
    `${navigator.hardwareConcurrency} CPUs, load ${Deno.loadavg()[0].toFixed(1)}`,
);

// --- the in-process path ----------------------------------------------------------------
// Every variant is warmed up first (V8 tiers the WASM up in background threads whose CPU
// time counts too), then measured in interleaved rounds; each keeps its best round.
const COMPLEXITIES = [...new Set([0, 5, DEFAULT_COMPLEXITY, 10])];
const variants: { name: string; run: () => void; close: () => void }[] = [];
{
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  variants.push({
    name: "AAC decode + resample to 48 kHz",
    run: () => frames.forEach((frame) => t.decodeToPcm(frame)),
    close: () => t.close(),
  });
}
for (const complexity of COMPLEXITIES) {
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO, { complexity });
  variants.push({
    name: `AAC → Opus, complexity ${complexity}${
      complexity === DEFAULT_COMPLEXITY ? " (default)" : ""
    }`,
    run: () => frames.forEach((frame) => t.transcode(frame)),
    close: () => t.close(),
  });
}
const best = bestOf(variants.map((v) => v.run));
variants.forEach((v, i) => (row(v.name, best[i]), v.close()));
const decodeSeconds = best[0];
const full = new Map(COMPLEXITIES.map((c, i) => [c, best[i + 1]]));
const encodeSeconds = full.get(DEFAULT_COMPLEXITY)! - decodeSeconds;
row(
  `libopus 1.6.1 encode alone (this module), c${DEFAULT_COMPLEXITY}`,
  encodeSeconds,
  "derived",
);

// --- @evan/opus (WASM) on the same PCM ----------------------------------------------------
{
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  const pcm = frames.map((frame) => t.decodeToPcm(frame).pcm);
  t.close();
  const flat = new Float32Array(pcm.reduce((n, p) => n + p.length, 0));
  pcm.reduce((offset, p) => (flat.set(p, offset), offset + p.length), 0);
  const int16 = Int16Array.from(
    flat,
    (v) => Math.max(-32768, Math.min(32767, Math.round(v * 32768))),
  );
  const step = OPUS_FRAME_SAMPLES * 2;
  try {
    const specifier = EVAN_OPUS; // not a literal: @evan/opus is no dependency of the project
    const { Encoder } = await import(specifier);
    const encoders = [DEFAULT_COMPLEXITY, 10].map((complexity) => {
      const encoder = new Encoder({
        channels: 2,
        sample_rate: 48000,
        application: "audio",
      });
      encoder.bitrate = DEFAULT_STEREO_BITRATE;
      encoder.complexity = complexity;
      return { complexity, encoder };
    });
    const seconds = bestOf(encoders.map(({ encoder }) => () => {
      for (let i = 0; i + step <= int16.length; i += step) {
        encoder.encode(int16.subarray(i, i + step));
      }
    }));
    encoders.forEach(({ complexity }, i) =>
      row(`@evan/opus 1.0.3 WASM encode alone, c${complexity}`, seconds[i])
    );
  } catch (error) {
    console.log(
      `@evan/opus: not loaded (${error instanceof Error ? error.message : error})`,
    );
  }
}

// --- native ffmpeg, same job --------------------------------------------------------------
try {
  // The looped ADTS stream goes in through stdin: no temporary file.
  const looped = new Uint8Array(adts.length * loops);
  for (let i = 0; i < loops; i++) looped.set(adts, i * adts.length);
  const native = async (args: string[]) => {
    let best = Infinity;
    for (let i = 0; i <= ROUNDS; i++) {
      const child = new Deno.Command("ffmpeg", {
        args: [
          ...["-hide_banner", "-nostdin", "-benchmark", "-threads", "1"],
          ...["-f", "aac", "-i", "pipe:0", ...args, "-f", "null", "-"],
        ],
        stdin: "piped",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(looped);
      await writer.close();
      const { stderr, success } = await child.output();
      const text = new TextDecoder().decode(stderr);
      const m = text.match(/utime=([\d.]+)s stime=([\d.]+)s/);
      if (!success || !m) throw new Error(text.split("\n").slice(-3).join(" "));
      if (i > 0) best = Math.min(best, Number(m[1]) + Number(m[2]));
    }
    return best;
  };
  const nativeDecode = await native(["-ar", "48000", "-c:a", "pcm_f32le"]);
  row("ffmpeg (native) AAC decode + resample", nativeDecode);
  for (const complexity of [DEFAULT_COMPLEXITY, 10]) {
    const seconds = await native([
      "-ar",
      "48000",
      "-c:a",
      "libopus",
      "-b:a",
      String(DEFAULT_STEREO_BITRATE),
      "-compression_level",
      String(complexity),
      "-frame_duration",
      "20",
      "-application",
      "audio",
    ]);
    const ours = full.get(complexity)!;
    row(
      `ffmpeg (native) AAC → libopus, complexity ${complexity}`,
      seconds,
      `(in-process WASM takes ${(ours / seconds).toFixed(2)}× its CPU)`,
    );
  }
} catch (error) {
  console.log(
    `ffmpeg: not measured (${error instanceof Error ? error.message : error})`,
  );
}

// --- latency ----------------------------------------------------------------------------
{
  // Per access unit: CPU time of transcode() (wall, µs), and how long the oldest sample of
  // each packet waited for the 960th (the 20 ms framing): the audio path's added delay.
  const t = await AacOpusTranscoder.create(ASC_44100_STEREO);
  const calls: number[] = [];
  const waits: number[] = [];
  let outSamples = 0; // 48 kHz samples decoded so far
  let packetStart = 0; // first sample of the next packet
  for (const frame of frames) {
    const start = performance.now();
    const { packets } = t.transcode(frame);
    calls.push((performance.now() - start) * 1000);
    outSamples += 1024 * 48000 / 44100;
    for (const _ of packets) {
      waits.push((outSamples - packetStart) / 48); // ms from the packet's first sample to now
      packetStart += OPUS_FRAME_SAMPLES;
    }
  }
  t.close();
  calls.sort((a, b) => a - b);
  waits.sort((a, b) => a - b);
  console.log(
    `transcode() per access unit: p50 ${percentile(calls, 50).toFixed(0)} µs, ` +
      `p99 ${percentile(calls, 99).toFixed(0)} µs`,
  );
  console.log(
    `framing delay (a packet's first sample decoded → packet out, audio time): ` +
      `p50 ${percentile(waits, 50).toFixed(1)} ms, p99 ${percentile(waits, 99).toFixed(1)} ms ` +
      `(+ Opus lookahead 6.5 ms and resampler filter delay at the receiver)`,
  );
}
console.log(
  `load at the end: ${Deno.loadavg()[0].toFixed(1)} (figures from a busy machine are low)`,
);
