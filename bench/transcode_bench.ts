/**
 * Video transcode cost: Sluice's VideoTranscoder (FFmpeg decode + openh264
 * encode in a Worker; native engine through FFI, and the WebAssembly engine)
 * against native `ffmpeg -c:v libx264 -preset
 * veryfast -bf 0 -tune zerolatency` on the same OBS-like input (x264 veryfast,
 * High, 3 B-frames, keyint 250, CBR), same run, same machine.
 *
 * Prints, per resolution and content: % of one core (process CPU time / clip
 * duration), x-realtime (clip duration / wall time), the ratio to ffmpeg, the
 * output bitrate against the target, PSNR against the source, and, from a run
 * paced at real time, the added latency (push → encoded picture, which
 * includes the decoder's B-frame reorder delay).
 *
 *   deno run --allow-all bench/transcode_bench.ts [--seconds 10] [--sizes 480,720,1080]
 *     [--engines native,wasm] [--content testsrc2,mandelbrot] [--complexity low|medium|high] [--max-height N]
 *     [--paced-seconds 5] [--json] [--quick]
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type TranscodedFrame,
  type TranscodeEngine,
  type TranscoderInputFrame,
  VideoTranscoder,
} from "../lib/codec/video/mod.ts";
import { FLV_TAG_VIDEO, parseVideoTagBody, readFlvTags } from "../lib/flv/mod.ts";
import { CLOCK_TICKS, cpuSeconds, statFields } from "./support/proc.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    sizes: { type: "string", default: "480,720,1080" },
    engines: { type: "string", default: "native,wasm" },
    content: { type: "string", default: "testsrc2,mandelbrot" },
    complexity: { type: "string", default: "low" },
    "max-height": { type: "string", default: "0" },
    "paced-seconds": { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
  },
});
if (flags.quick) {
  // `deno task bench --quick`: one short case, enough to see the order of magnitude.
  Object.assign(flags, {
    seconds: "3",
    sizes: "720",
    content: "testsrc2",
    "paced-seconds": "2",
  });
}

const SECONDS = Number(flags.seconds);
const SIZES: Record<string, { size: string; bitrate: number }> = {
  "360": { size: "640x360", bitrate: 800_000 },
  "480": { size: "854x480", bitrate: 1_200_000 },
  "720": { size: "1280x720", bitrate: 2_500_000 },
  "1080": { size: "1920x1080", bitrate: 4_500_000 },
};
const complexity = flags.complexity as "low" | "medium" | "high";
const maxHeight = Number(flags["max-height"]);
const pacedSeconds = Number(flags["paced-seconds"]);

interface Clip {
  path: string;
  avcC: Uint8Array;
  frames: TranscoderInputFrame[];
  durationS: number;
}

interface Row {
  case: string;
  engine: TranscodeEngine;
  sluiceCorePct: number;
  sluiceWorkerCorePct: number;
  sluiceRealtime: number;
  ffmpegCorePct: number;
  ffmpegRealtime: number;
  ffmpeg1tCorePct: number;
  ratio: number;
  outKbps: number;
  targetKbps: number;
  psnr: number;
  ffmpegPsnr: number;
  /** Push of an access unit → its picture encoded (includes the decoder's reorder hold). */
  pushToOutP50Ms?: number;
  pushToOutP95Ms?: number;
  /** Picture encoded − its place on the source's own schedule (t0 + pts). */
  lateP50Ms?: number;
  lateP95Ms?: number;
  /** Frames the paced run dropped because the Worker fell behind (should be 0). */
  pacedDropped?: number;
}

const engines = flags.engines.split(",").filter((engine): engine is TranscodeEngine => {
  if (engine !== "native" && engine !== "wasm") {
    throw new Error(`expected --engines from native,wasm, got ${engine}`);
  }
  const support = VideoTranscoder.chooseEngine({ engine });
  if (!support.ok) console.log(`transcode bench: ${engine} engine skipped: ${support.reason}`);
  return support.ok;
});

const dir = await Deno.makeTempDir({ prefix: "sluice-transcode-bench-" });
const rows: Row[] = [];
try {
  for (const height of flags.sizes.split(",")) {
    const spec = SIZES[height];
    if (!spec) {
      throw new Error(
        `expected --sizes from ${Object.keys(SIZES)}, got ${height}`,
      );
    }
    for (const content of flags.content.split(",")) {
      const name = `${height}p30 ${content}`;
      log(`${name}: making a ${SECONDS} s OBS-like clip …`);
      const clip = await makeClip(
        `${dir}/${height}-${content}.flv`,
        spec.size,
        content,
        spec.bitrate,
      );
      log(`${name}: ffmpeg libx264 veryfast zerolatency …`);
      const ffmpeg = await runFfmpeg(
        clip,
        spec.bitrate,
        [],
        `${dir}/x264.h264`,
      );
      const ffmpeg1t = await runFfmpeg(clip, spec.bitrate, ["-threads", "1"]);
      const ffmpegPsnr = await measurePsnr(clip, `${dir}/x264.h264`);
      for (const engine of engines) {
        log(`${name}: Sluice VideoTranscoder, ${engine} engine …`);
        const sluice = await runSluice(clip, spec.bitrate, engine);
        await writeAnnexB(`${dir}/out.h264`, sluice.frames);
        const psnr = await measurePsnr(clip, `${dir}/out.h264`);
        const row: Row = {
          case: name,
          engine,
          sluiceCorePct: sluice.cpuS / clip.durationS * 100,
          sluiceWorkerCorePct: sluice.workerCpuS / clip.durationS * 100,
          sluiceRealtime: clip.durationS / sluice.wallS,
          ffmpegCorePct: ffmpeg.cpuS / clip.durationS * 100,
          ffmpegRealtime: clip.durationS / ffmpeg.wallS,
          ffmpeg1tCorePct: ffmpeg1t.cpuS / clip.durationS * 100,
          ratio: sluice.cpuS / ffmpeg.cpuS,
          outKbps: sluice.bytes * 8 / clip.durationS / 1000,
          targetKbps: spec.bitrate / 1000,
          psnr,
          ffmpegPsnr,
        };
        if (pacedSeconds > 0) {
          log(`${name}: ${engine} engine paced at real time for ${pacedSeconds} s (latency) …`);
          const latency = await runPaced(clip, spec.bitrate, pacedSeconds, engine);
          row.pushToOutP50Ms = latency.pushToOut.p50;
          row.pushToOutP95Ms = latency.pushToOut.p95;
          row.lateP50Ms = latency.late.p50;
          row.lateP95Ms = latency.late.p95;
          row.pacedDropped = latency.dropped;
        }
        rows.push(row);
      }
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

if (flags.json) {
  console.log(JSON.stringify(rows, null, 2));
} else {
  console.log(
    `\nVideo transcode, ${SECONDS} s clips, openh264 complexity ${complexity}` +
      (maxHeight ? `, max height ${maxHeight}` : "") +
      ` (${navigator.hardwareConcurrency} cores)`,
  );
  const header = [
    "case",
    "engine",
    "Sluice % core: process (worker thread)",
    "Sluice x-realtime",
    "ffmpeg x264 % core (-threads 1)",
    "ffmpeg x-realtime",
    "Sluice / ffmpeg CPU",
    "out kbit/s (target)",
    "PSNR dB Sluice (x264)",
    "push→out p50 / p95 ms",
    "behind pts p50 / p95 ms",
    "paced drops",
  ];
  console.log(`| ${header.join(" | ")} |`);
  console.log(`|${header.map(() => "---").join("|")}|`);
  for (const r of rows) {
    const cells = [
      r.case,
      r.engine,
      `${r.sluiceCorePct.toFixed(0)} % (${r.sluiceWorkerCorePct.toFixed(0)} %)`,
      `${r.sluiceRealtime.toFixed(1)}×`,
      `${r.ffmpegCorePct.toFixed(0)} % (${r.ffmpeg1tCorePct.toFixed(0)} %)`,
      `${r.ffmpegRealtime.toFixed(1)}×`,
      r.ratio.toFixed(2),
      `${r.outKbps.toFixed(0)} (${r.targetKbps})`,
      `${r.psnr.toFixed(1)} (${r.ffmpegPsnr.toFixed(1)})`,
      pair(r.pushToOutP50Ms, r.pushToOutP95Ms),
      pair(r.lateP50Ms, r.lateP95Ms),
      String(r.pacedDropped ?? "–"),
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
}

function pair(a?: number, b?: number): string {
  return a === undefined || b === undefined ? "–" : `${a.toFixed(0)} / ${b.toFixed(0)}`;
}

function log(message: string): void {
  if (!flags.json) console.error(message);
}

/** An OBS-default-like stream: x264 veryfast, High, 3 B-frames, keyint 250, CBR, 30 fps. */
async function makeClip(
  path: string,
  size: string,
  content: string,
  bitrate: number,
): Promise<Clip> {
  const source = content === "mandelbrot"
    ? `mandelbrot=size=${size}:rate=30`
    : `${content}=size=${size}:rate=30`;
  await run("ffmpeg", [
    ...[
      "-nostdin",
      "-v",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      source,
      "-t",
      String(SECONDS),
    ],
    ...[
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-profile:v",
      "high",
      "-pix_fmt",
      "yuv420p",
    ],
    ...[
      "-bf",
      "3",
      "-g",
      "250",
      "-b:v",
      String(bitrate),
      "-maxrate",
      String(bitrate),
    ],
    ...["-bufsize", String(bitrate * 2), path],
  ]);
  let avcC: Uint8Array | undefined;
  const frames: TranscoderInputFrame[] = [];
  for (const tag of readFlvTags(await Deno.readFile(path))) {
    if (tag.type !== FLV_TAG_VIDEO) continue;
    for (const unit of parseVideoTagBody(tag.body, tag.timestamp)) {
      if (unit.kind === "video-config") avcC = unit.record;
      else if (unit.kind === "video") frames.push(unit);
    }
  }
  if (!avcC) throw new Error(`expected an AVC sequence header in ${path}`);
  return { path, avcC, frames, durationS: frames.length / 30 };
}

/** As fast as it goes. */
async function runSluice(clip: Clip, bitrate: number, engine: TranscodeEngine) {
  const transcoder = await VideoTranscoder.create({
    engine,
    avcC: clip.avcC,
    bitrate,
    keyframeIntervalMs: 2000,
    maxHeight,
    complexity,
    maxQueuedFrames: 1000,
  });
  const frames: TranscodedFrame[] = [];
  transcoder.onFrame((frame) => frames.push(frame));
  const cpu0 = processCpuSeconds();
  const t0 = performance.now();
  // Everything at once (the Worker's message queue holds it), so the main thread idles
  // instead of polling: process CPU is then the transcoder's cost plus message passing.
  for (const frame of clip.frames) transcoder.push(frame);
  await transcoder.flush();
  const wallS = (performance.now() - t0) / 1000;
  const cpuS = processCpuSeconds() - cpu0;
  const stats = transcoder.stats();
  await transcoder.close();
  if (frames.length !== clip.frames.length) {
    throw new Error(
      `expected ${clip.frames.length} frames out, got ${frames.length}`,
    );
  }
  const bytes = frames.reduce((sum, frame) => sum + frame.data.length, 0);
  return {
    wallS,
    cpuS,
    workerCpuS: (stats.cpuMs ?? NaN) / 1000,
    frames,
    bytes,
  };
}

/**
 * Real-time feed: each frame pushed at its dts. Two latencies per picture: from
 * the push of its access unit, and from its slot on the source's schedule
 * (t0 + pts), which is what a viewer of the output waits beyond the source.
 */
async function runPaced(
  clip: Clip,
  bitrate: number,
  seconds: number,
  engine: TranscodeEngine,
) {
  const transcoder = await VideoTranscoder.create({
    engine,
    avcC: clip.avcC,
    bitrate,
    keyframeIntervalMs: 2000,
    maxHeight,
    complexity,
  });
  const pushedAt = new Map<number, number>();
  const pushToOut: number[] = [];
  const late: number[] = [];
  let start = 0;
  transcoder.onFrame((frame) => {
    const now = performance.now();
    const at = pushedAt.get(frame.pts);
    if (at === undefined) return;
    pushToOut.push(now - at);
    late.push(now - start - frame.pts);
  });
  const frames = clip.frames.filter((frame) => frame.dts < seconds * 1000);
  start = performance.now();
  for (const frame of frames) {
    const wait = start + frame.dts - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    pushedAt.set(frame.dts + frame.cts, performance.now());
    transcoder.push(frame);
  }
  // The last pictures only come out on flush: measure the steady state only.
  const steady = [pushToOut.length, late.length];
  await transcoder.flush();
  const dropped = transcoder.stats().framesDropped;
  await transcoder.close();
  return {
    dropped,
    pushToOut: quantiles(pushToOut.slice(0, steady[0])),
    late: quantiles(late.slice(0, steady[1])),
  };
}

function quantiles(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p95: at(0.95) };
}

/** Native ffmpeg doing the same job; CPU from the shell's reaped-children times. */
async function runFfmpeg(
  clip: Clip,
  bitrate: number,
  extra: string[],
  outPath?: string,
) {
  const args = [
    ...["-nostdin", "-v", "error", ...extra, "-i", clip.path, "-an"],
    ...(maxHeight ? ["-vf", `scale=-2:'min(ih,${maxHeight})'`] : []),
    ...[
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-bf",
      "0",
      "-tune",
      "zerolatency",
      ...extra,
    ],
    ...["-b:v", String(bitrate), "-g", "60"],
    ...(outPath ? ["-f", "h264", "-y", outPath] : ["-f", "null", "-"]),
  ];
  const quoted = args.map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(
    " ",
  );
  const t0 = performance.now();
  const result = await new Deno.Command("sh", {
    args: ["-c", `ffmpeg ${quoted} || exit 1; cat /proc/$$/stat`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallS = (performance.now() - t0) / 1000;
  if (!result.success) {
    throw new Error(
      `ffmpeg failed: ${new TextDecoder().decode(result.stderr)}`,
    );
  }
  const fields = statFields(new TextDecoder().decode(result.stdout));
  // Fields 16 and 17 (cutime, cstime): CPU of waited-for children, here ffmpeg.
  const cpuS = (Number(fields[16 - 3]) + Number(fields[17 - 3])) / CLOCK_TICKS;
  return { wallS, cpuS };
}

async function writeAnnexB(
  path: string,
  frames: TranscodedFrame[],
): Promise<void> {
  const parts: Uint8Array[] = [];
  for (const frame of frames) {
    for (const nal of frame.nalus) {
      parts.push(new Uint8Array([0, 0, 0, 1]), nal);
    }
  }
  const bytes = new Uint8Array(
    parts.reduce((sum, part) => sum + part.length, 0),
  );
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  await Deno.writeFile(path, bytes);
}

/** Average PSNR (dB, all planes) of a 30 fps Annex B file against the source clip, by ffmpeg. */
async function measurePsnr(clip: Clip, path: string): Promise<number> {
  const scale = maxHeight ? `scale=-2:'min(ih,${maxHeight})':flags=bilinear,` : "";
  const result = await new Deno.Command("ffmpeg", {
    args: [
      ...["-nostdin", "-r", "30", "-i", path, "-i", clip.path, "-lavfi"],
      `[1:v]${scale}setpts=PTS-STARTPTS[ref];[0:v]setpts=PTS-STARTPTS[out];[out][ref]psnr`,
      ...["-f", "null", "-"],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  const match = new TextDecoder().decode(result.stderr).match(
    /PSNR .*average:([\d.]+|inf)/,
  );
  return match ? (match[1] === "inf" ? Infinity : Number(match[1])) : NaN;
}

function processCpuSeconds(): number {
  return cpuSeconds(Deno.readTextFileSync("/proc/self/stat"));
}

async function run(command: string, args: string[]): Promise<void> {
  const result = await new Deno.Command(command, {
    args,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (!result.success) {
    throw new Error(
      `${command} failed: ${new TextDecoder().decode(result.stderr)}`,
    );
  }
}
