/**
 * Glass to glass: this process draws each frame with the wall-clock time stamped
 * into it (a row of 40 black/white blocks, milliseconds mod 2^40), ffmpeg encodes
 * it (x264 veryfast, `-tune zerolatency`, AAC silence) and publishes RTMP to
 * Sluice; Chromium watches over WebRTC and reads the stamp back from every decoded
 * frame (`requestVideoFrameCallback` + canvas). Latency = the page's clock at
 * presentation − the stamp (one machine, one clock). Also prints the server-added
 * part (sluice_fanout_seconds) for the same run.
 *
 *   deno run --allow-all bench/glass_bench.ts [--seconds 15] [--quick]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startTestServer } from "../tests/support/server.ts";
import { startBrowser } from "../tests/support/browser.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "15" },
    quick: { type: "boolean", default: false },
  },
});
const SECONDS = flags.quick ? 6 : Number(flags.seconds);
const W = 640, H = 360, FPS = 30, BITS = 40, BLOCK = W / BITS;

/** One yuv420p frame: mid-grey, with `stamp`'s bits as blocks in the top 16 rows. */
function frame(stamp: number): Uint8Array {
  const ySize = W * H;
  const out = new Uint8Array(ySize * 3 / 2);
  out.fill(96, 0, ySize);
  out.fill(128, ySize);
  for (let bit = 0; bit < BITS; bit++) {
    const on = Math.floor(stamp / 2 ** (BITS - 1 - bit)) % 2 === 1;
    for (let y = 0; y < BLOCK; y++) {
      out.fill(on ? 235 : 16, y * W + bit * BLOCK, y * W + (bit + 1) * BLOCK);
    }
  }
  return out;
}

/** Runs in the page: reads the stamp of every presented frame. */
const READER = `(() => {
  const video = document.getElementById("v");
  const canvas = document.createElement("canvas");
  canvas.width = ${W}; canvas.height = ${BLOCK};
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  window.glass = [];
  const onFrame = () => {
    const now = Date.now();
    if (video.videoWidth === ${W}) {
      ctx.drawImage(video, 0, 0, ${W}, ${BLOCK}, 0, 0, ${W}, ${BLOCK});
      const row = ctx.getImageData(0, ${BLOCK / 2}, ${W}, 1).data;
      let stamp = 0;
      for (let bit = 0; bit < ${BITS}; bit++) {
        const x = Math.floor((bit + 0.5) * ${BLOCK});
        stamp = stamp * 2 + (row[x * 4] > 128 ? 1 : 0);
      }
      const base = now - (now % 2 ** ${BITS});
      let sent = base + stamp;
      if (sent > now + 1000) sent -= 2 ** ${BITS};
      if (window.glass.length < 100000) window.glass.push(now - sent);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
})()`;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const server = await startTestServer();
const ffmpeg = new Deno.Command("ffmpeg", {
  args: [
    ..."-hide_banner -loglevel error -f rawvideo -pix_fmt yuv420p".split(" "),
    ..."-s 640x360 -r 30 -i - -f lavfi -i anullsrc=r=48000:cl=stereo".split(
      " ",
    ),
    ..."-c:v libx264 -preset veryfast -tune zerolatency -g 60 -b:v 1500k".split(
      " ",
    ),
    ..."-c:a aac -shortest -f flv".split(" "),
    `${server.rtmpUrl}/glass`,
  ],
  stdin: "piped",
  stdout: "null",
  stderr: "inherit",
}).spawn();
const writer = ffmpeg.stdin.getWriter();
let stop = false;
const pacing = (async () => {
  const start = performance.now();
  for (let i = 0; !stop; i++) {
    const due = start + (i * 1000) / FPS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await writer.write(frame(Date.now()));
  }
})();
const browser = await startBrowser();
try {
  await browser.open(server.httpUrl, "glass", "g");
  for (let i = 0; i < 60; i++) {
    const s = await browser.stats("g");
    if (s.videoWidth === W) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 2000)); // settle: jitter buffer, GOP replay
  const m0 = await (await fetch(`${server.httpUrl}/metrics`)).text();
  await browser.eval("g", READER);
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const samples: number[] = await browser.eval("g", "window.glass");
  const stats = await browser.stats("g");
  const m1 = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const valid = samples.filter((x) => x >= 0 && x < 5000).sort((a, b) => a - b);
  const count = (text: string, le: string) =>
    Number(
      new RegExp(`^sluice_fanout_seconds_bucket\\{le="${le}"\\} (\\S+)$`, "m")
        .exec(text)?.[1] ??
        0,
    );
  const total = count(m1, "\\+Inf") - count(m0, "\\+Inf");
  const within = (le: string) => (count(m1, le) - count(m0, le)) / (total || 1);
  console.log(
    `glass to glass (x264 veryfast zerolatency, 640x360 30 fps, loopback, Chromium): ` +
      `${valid.length} frames read (${samples.length - valid.length} unreadable); ` +
      `p50 ${quantile(valid, 0.5)} ms, p95 ${quantile(valid, 0.95)} ms, ` +
      `min ${valid[0]} ms, max ${valid[valid.length - 1]} ms`,
  );
  console.log(
    `  Chromium: jitter buffer ${
      stats.video?.jitterBufferDelay && stats.video?.jitterBufferEmittedCount
        ? ((stats.video.jitterBufferDelay /
          stats.video.jitterBufferEmittedCount) * 1000)
          .toFixed(0)
        : "–"
    } ms per frame, freezes ${stats.video?.freezeCount ?? "–"}, lost ${
      stats.video?.packetsLost ?? "–"
    }; server fan-out ≤ 1 ms for ${(within("0.001") * 100).toFixed(0)} % of frames, ` +
      `≤ 2 ms for ${(within("0.002") * 100).toFixed(0)} %`,
  );
} finally {
  stop = true;
  await pacing.catch(() => {});
  await writer.close().catch(() => {});
  const killer = setTimeout(() => ffmpeg.kill("SIGKILL"), 5000);
  await ffmpeg.status;
  clearTimeout(killer);
  await browser.quit();
  await server.stop();
}
