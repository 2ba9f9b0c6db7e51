/**
 * OBS defaults just work: streams with B-frames (OBS's default x264 settings, ffmpeg's
 * libx264 defaults) are transcoded in-process and play smoothly in Chromium; PLIs get
 * an IDR at once; `--video-transcode never` and the transcode limit are honoured.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer, waitFor } from "../support/server.ts";
import { type Browser, type Json, startBrowser } from "../support/browser.ts";
import { makeClip, publishClip, type Publisher, publishObs } from "../support/publishers.ts";
import { startWeriftViewer } from "../support/werift_viewer.ts";
import { VideoTranscoder } from "../../lib/codec/video/mod.ts";

const support = VideoTranscoder.available();
const e2e = {
  sanitizeOps: false,
  sanitizeResources: false,
  ignore: !support.ok,
};
if (!support.ok) console.warn(`transcode e2e skipped: ${support.reason}`);
/** The WebAssembly engine needs no system library: its tests always run. */
const wasmE2e = { sanitizeOps: false, sanitizeResources: false };
const clipDir = await Deno.makeTempDir({ prefix: "sluice-tc-clips-" });
// Clips are shared by the tests of this file; they go when the test process ends.
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(clipDir, { recursive: true });
  } catch { /* already gone */ }
});

/** The room once the server has decided whether to transcode it (a viewer asked). */
function transcodeDecision(server: TestServer, room: string): Promise<Json> {
  return waitFor(
    async () => {
      const r = await server.api<Json>(`/api/rooms/${room}`);
      return r.transcode ? r : undefined;
    },
    10_000,
    "a transcode decision",
  );
}

/** Watches `seconds` and checks smooth playback against the frames the room received. */
async function assertSmooth(
  server: TestServer,
  browser: Browser,
  room: string,
  viewer: string,
  seconds: number,
  size: [number, number] = [640, 360],
) {
  const before = await browser.stats(viewer);
  const roomBefore = await server.api<Json>(`/api/rooms/${room}`);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await browser.stats(viewer);
  const roomAfter = await server.api<Json>(`/api/rooms/${room}`);
  const sent = roomAfter.frames.video - roomBefore.frames.video;
  const decoded = after.video.framesDecoded - before.video.framesDecoded;
  console.log(
    `${room}: ${decoded} of ${sent} frames decoded in ${seconds} s, freezes ${
      (after.video.freezeCount ?? 0) - (before.video.freezeCount ?? 0)
    } ` +
      `(${after.video.freezeCount} since the start), ` +
      `PLIs ${after.video.pliCount}, first frame ${Math.round(after.firstFrameMs)} ms`,
  );
  assert.ok(decoded >= 0.9 * sent, `decoded ${decoded} of ${sent}`);
  const freezes = (after.video.freezeCount ?? 0) - (before.video.freezeCount ?? 0);
  assert.equal(freezes, 0, "no freezes while watching");
  assert.deepEqual([after.video.frameWidth, after.video.frameHeight], size);
  assert.ok(after.audio?.totalSamplesReceived > before.audio?.totalSamplesReceived, "audio flows");
  return after;
}

Deno.test("transcode: OBS with its default settings plays smoothly in Chromium", e2e, async () => {
  const server = await startTestServer();
  const browser = await startBrowser();
  const home = await Deno.makeTempDir({ prefix: "sluice-obs-tc-" });
  let obs: Publisher | undefined;
  try {
    obs = await publishObs(home, server.rtmpUrl, "obs-default");
    await waitFor(
      async () => {
        const r = await server.api<Json>("/api/rooms/obs-default");
        return r.live && r.frames.video > 30 ? r : undefined;
      },
      45_000,
      "OBS to go live",
    );
    await browser.open(server.httpUrl, "obs-default", "a");
    // Measure steady playback, past the start (the transcoder catches up through the cached
    // GOP first, which takes seconds on a loaded 2-core machine).
    await waitFor(
      async () => (await browser.stats("a")).video?.framesDecoded > 150,
      30_000,
      "decoding",
    );
    const room = await server.api<Json>("/api/rooms/obs-default");
    assert.equal(room.bFrames, true);
    assert.deepEqual(room.transcode, { active: true, reason: "B-frames", engine: "native" });
    await assertSmooth(server, browser, "obs-default", "a", 20);
    // The demo page says so too.
    await browser.goto("home", server.httpUrl + "/");
    await browser.waitFor("home", 'a.card[data-room="obs-default"] .hint');
    const text = await browser.eval(
      "home",
      `document.querySelector('a.card[data-room="obs-default"] .hint').textContent`,
    );
    assert.match(text, /Transcoded for browsers \(B-frames\)/);
  } finally {
    await obs?.stop();
    await browser.quit();
    await server.stop();
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
});

Deno.test(
  "transcode: ffmpeg libx264 defaults (-bf 3, keyint 250), mid-GOP join, PLI → IDR",
  e2e,
  async (t) => {
    const server = await startTestServer(["--max-transcodes", "1"]);
    const browser = await startBrowser();
    const publishers: Publisher[] = [];
    try {
      const clip = await makeClip(clipDir, { seconds: 60, gop: 250, bframes: true });
      publishers.push(publishClip(`${server.rtmpUrl}/x264`, clip));
      await waitFor(async () => (await server.api<Json>("/api/rooms/x264")).live, 10_000, "live");
      // Join 5 s into the 8.3 s GOP.
      await new Promise((r) => setTimeout(r, 5000));

      await t.step(
        "a viewer joining mid-GOP gets a picture at once and plays smoothly",
        async () => {
          await browser.open(server.httpUrl, "x264", "b");
          await waitFor(
            async () => (await browser.stats("b")).video?.framesDecoded > 10,
            10_000,
            "decoding",
          );
          const s = await assertSmooth(server, browser, "x264", "b", 20);
          // Waiting for the next source keyframe would take over 3 s; the transcoder
          // decodes only what the newest cached picture needs and starts with it.
          assert.ok(s.firstFrameMs < 1000, `first frame after ${s.firstFrameMs} ms`);
        },
      );

      await t.step("a PLI yields an IDR in the transcoded output at once", async () => {
        const viewer = await startWeriftViewer(`ws://127.0.0.1:${server.httpPort}/ws/x264`);
        try {
          await waitFor(() => viewer.keyframes.length > 0, 10_000, "a first keyframe");
          await new Promise((r) => setTimeout(r, 700)); // past the keyframe rate limit
          const delays: number[] = [];
          for (let i = 0; i < 3; i++) {
            const sent = performance.now();
            await viewer.requestKeyframe("pli");
            const at = await waitFor(() => viewer.keyframes.find((k) => k > sent), 3000, "an IDR");
            delays.push(at - sent);
            await new Promise((r) => setTimeout(r, 1200));
          }
          console.log(`PLI → IDR: ${delays.map((d) => `${d.toFixed(0)} ms`).join(", ")}`);
          // A source keyframe is 8 s away: only the transcoder can answer this fast.
          assert.ok(Math.min(...delays) < 500, `delays ${delays}`);
        } finally {
          await viewer.close();
        }
      });

      await t.step("the transcode limit is honoured: a second room passes through", async () => {
        publishers.push(publishClip(`${server.rtmpUrl}/x264-2`, clip));
        await waitFor(
          async () => (await server.api<Json>("/api/rooms/x264-2")).live,
          10_000,
          "live",
        );
        await browser.open(server.httpUrl, "x264-2", "c");
        const room = await transcodeDecision(server, "x264-2");
        assert.equal(room.transcode.active, false);
        assert.match(room.transcode.reason, /1 transcodes already run/);
        assert.match(server.log(), /needs transcoding .* but 1 transcodes already run/);
        const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
        assert.match(metrics, /^sluice_video_transcodes 1$/m);
      });
    } finally {
      for (const p of publishers) await p.stop();
      await browser.quit();
      await server.stop();
    }
  },
);

Deno.test("transcode: --video-transcode never keeps passthrough (warning only)", e2e, async () => {
  const server = await startTestServer(["--video-transcode", "never"]);
  const browser = await startBrowser();
  let publisher: Publisher | undefined;
  try {
    const clip = await makeClip(clipDir, { seconds: 8, gop: 60, bframes: true });
    publisher = publishClip(`${server.rtmpUrl}/raw`, clip);
    await waitFor(async () => (await server.api<Json>("/api/rooms/raw")).live, 10_000, "live");
    await browser.open(server.httpUrl, "raw", "d");
    const room = await transcodeDecision(server, "raw");
    assert.deepEqual(room.transcode, { active: false, reason: "--video-transcode never" });
    assert.match(server.log(), /B-frames .*OBS/);
    assert.doesNotMatch(server.log(), /transcoding video to/);
  } finally {
    await publisher?.stop();
    await browser.quit();
    await server.stop();
  }
});

Deno.test(
  "transcode: without the native libraries the WebAssembly engine transcodes; too tall passes through",
  wasmE2e,
  async (t) => {
    // The native shim "missing", as on a host without Debian's FFmpeg and openh264.
    const server = await startTestServer(["--transcode-wasm-max-height", "480"], {
      env: { SLUICE_TRANSCODE_SHIM: "/nonexistent/libsluice_transcode.so" },
    });
    const browser = await startBrowser();
    const publishers: Publisher[] = [];
    try {
      const clip = await makeClip(clipDir, {
        seconds: 40,
        width: 854,
        height: 480,
        gop: 250,
        bframes: true,
      });
      publishers.push(publishClip(`${server.rtmpUrl}/wasm`, clip));
      await waitFor(async () => (await server.api<Json>("/api/rooms/wasm")).live, 10_000, "live");
      await new Promise((r) => setTimeout(r, 3000)); // join mid-GOP

      await t.step("a 480p room with B-frames plays smoothly in Chromium", async () => {
        await browser.open(server.httpUrl, "wasm", "w");
        await waitFor(
          async () => (await browser.stats("w")).video?.framesDecoded > 10,
          15_000,
          "decoding",
        );
        const room = await server.api<Json>("/api/rooms/wasm");
        assert.deepEqual(room.transcode, {
          active: true,
          reason: "B-frames, WebAssembly engine",
          engine: "wasm",
        });
        const s = await assertSmooth(server, browser, "wasm", "w", 10, [854, 480]);
        assert.ok(s.firstFrameMs < 1500, `first frame after ${s.firstFrameMs} ms`);
        // The operator is told once why the slow engine runs and how to get the fast one.
        assert.match(
          server.log(),
          /transcoded by the WebAssembly engine.*apt-get install .*libopenh264/,
        );
      });

      await t.step("a PLI yields an IDR at once", async () => {
        const viewer = await startWeriftViewer(`ws://127.0.0.1:${server.httpPort}/ws/wasm`);
        try {
          await waitFor(() => viewer.keyframes.length > 0, 10_000, "a first keyframe");
          await new Promise((r) => setTimeout(r, 700)); // past the keyframe rate limit
          const sent = performance.now();
          await viewer.requestKeyframe("pli");
          const at = await waitFor(() => viewer.keyframes.find((k) => k > sent), 3000, "an IDR");
          console.log(`wasm: PLI → IDR ${(at - sent).toFixed(0)} ms`);
          assert.ok(at - sent < 500, `PLI → IDR took ${at - sent} ms`);
        } finally {
          await viewer.close();
        }
      });

      await t.step(
        "a 720p room is above the WebAssembly cap: passthrough, saying why",
        async () => {
          const tall = await makeClip(clipDir, {
            seconds: 8,
            width: 1280,
            height: 720,
            gop: 60,
            bframes: true,
          });
          publishers.push(publishClip(`${server.rtmpUrl}/tall`, tall));
          await waitFor(
            async () => (await server.api<Json>("/api/rooms/tall")).live,
            10_000,
            "live",
          );
          await browser.open(server.httpUrl, "tall", "t");
          const room = await transcodeDecision(server, "tall");
          assert.equal(room.transcode.active, false);
          assert.match(room.transcode.reason, /720p is above --transcode-wasm-max-height 480/);
          assert.match(room.transcode.reason, /apt-get install/);
        },
      );
    } finally {
      for (const p of publishers) await p.stop();
      await browser.quit();
      await server.stop();
    }
  },
);
