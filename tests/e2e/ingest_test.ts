/**
 * RTMP ingest end to end: real encoders (ffmpeg, GStreamer, OBS) publish to the real
 * server process; `/api/rooms` must describe each stream and count its frames.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer, waitFor } from "../support/server.ts";
import {
  type ClipFrames,
  type ClipOptions,
  makeClip,
  probeFrames,
  publishClip,
  type Publisher,
  publishGstreamer,
  publishObs,
} from "../support/publishers.ts";

// deno-lint-ignore no-explicit-any
type Room = any;

const e2e = { sanitizeOps: false, sanitizeResources: false };
const clipDir = await Deno.makeTempDir({ prefix: "sluice-clips-" });
// Clips are shared by the tests of this file; they go when the test process ends.
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(clipDir, { recursive: true });
  } catch { /* already gone */ }
});

/** Watches a room while `publisher` runs; returns the last live snapshot and whether it cleared. */
async function watchPublish(
  server: TestServer,
  room: string,
  publisher: Publisher,
  timeoutMs = 30_000,
): Promise<{ last: Room; cleared: boolean }> {
  let last: Room | undefined;
  const deadline = Date.now() + timeoutMs;
  let exitedAt: number | undefined;
  publisher.exited.then(() => exitedAt = Date.now());
  while (Date.now() < deadline) {
    const snap = await server.api<Room>(`/api/rooms/${room}`);
    if (snap.live) last = snap;
    else if (last) return { last, cleared: true };
    if (exitedAt && Date.now() - exitedAt > 3000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await publisher.stop();
  if (!last) {
    throw new Error(`room ${room} never went live; publisher said:\n${publisher.output()}`);
  }
  const after = await server.api<Room>(`/api/rooms/${room}`);
  return { last, cleared: !after.live };
}

function assertCounts(seen: Room, expected: ClipFrames, gop: number) {
  assert.ok(
    Math.abs(seen.frames.video - expected.video) <= gop,
    `video frames ${seen.frames.video} vs ffprobe ${expected.video} (±${gop})`,
  );
  const audioPerGop = Math.ceil(expected.audio * gop / expected.video);
  assert.ok(
    Math.abs(seen.frames.audio - expected.audio) <= audioPerGop,
    `audio frames ${seen.frames.audio} vs ffprobe ${expected.audio} (±${audioPerGop})`,
  );
  assert.ok(seen.frames.keyframes >= expected.keyframes - 1, "keyframes");
}

async function publishAndCheck(server: TestServer, room: string, clip: ClipOptions) {
  const path = await makeClip(clipDir, clip);
  const expected = await probeFrames(path);
  const publisher = publishClip(`${server.rtmpUrl}/${room}`, path);
  const { last, cleared } = await watchPublish(server, room, publisher);
  assert.equal(await publisher.exited, 0, publisher.output());
  assert.equal(last.video.codec, "h264");
  assert.equal(last.video.width, clip.width ?? 640);
  assert.equal(last.video.height, clip.height ?? 360);
  assert.equal(Math.round(last.video.fps), clip.fps ?? 30);
  assert.ok(last.video.bitrate > 0, "video bitrate measured");
  assert.equal(last.audio.codec, "aac");
  assert.equal(last.audio.sampleRate, clip.audioRate ?? 44100);
  assert.equal(last.audio.channels, clip.audioChannels ?? 2);
  assert.equal(last.bFrames, !!clip.bframes);
  assertCounts(last, expected, clip.gop ?? 60);
  assert.ok(cleared, "unpublish clears the room");
  return last;
}

Deno.test(
  "ingest: ffmpeg, GStreamer and OBS publish; /api/rooms describes each",
  e2e,
  async (t) => {
    const server = await startTestServer(["--log-level", "debug"]);
    try {
      await t.step("ffmpeg H.264 High + AAC 44.1 kHz stereo", async () => {
        const room = await publishAndCheck(server, "ff-stereo", { seconds: 4 });
        assert.equal(room.video.profile, "High");
        assert.equal(room.audio.profile, "AAC-LC");
      });

      await t.step("ffmpeg AAC 48 kHz mono", async () => {
        await publishAndCheck(server, "ff-mono", {
          seconds: 3,
          audioRate: 48000,
          audioChannels: 1,
        });
      });

      await t.step("ffmpeg 1080p at 8 Mbit/s; encoder's 4096-byte chunks", async () => {
        const room = await publishAndCheck(server, "ff-1080p", {
          seconds: 3,
          width: 1920,
          height: 1080,
          videoBitrate: "8M",
        });
        assert.ok(room.video.bitrate > 3_000_000, `bitrate ${room.video.bitrate}`);
        // ffmpeg announces its chunk size with Set Chunk Size; the server reads by it.
        assert.match(server.log(), /peer chunk size 4096/);
      });

      await t.step("ffmpeg with libx264 B-frames: detected and reported", async () => {
        await publishAndCheck(server, "ff-bframes", { seconds: 3, bframes: true });
        assert.match(server.log(), /B-frames .*OBS/);
      });

      await t.step("GStreamer flvmux ! rtmp2sink", async () => {
        const publisher = publishGstreamer(`${server.rtmpUrl}/gst`, 4);
        const { last, cleared } = await watchPublish(server, "gst", publisher);
        assert.equal(last.video.width, 640);
        assert.equal(last.video.height, 360);
        assert.equal(last.video.profile, "High");
        assert.equal(last.audio.codec, "aac");
        assert.equal(last.audio.sampleRate, 48000);
        assert.equal(last.audio.channels, 2);
        // 4 s at 30 fps sent; counts within one GOP (60 frames).
        assert.ok(Math.abs(last.frames.video - 120) <= 60, `video ${last.frames.video}`);
        assert.ok(cleared);
      });

      await t.step("OBS Studio, default settings, under Xvfb", async () => {
        const home = await Deno.makeTempDir({ prefix: "sluice-obs-" });
        const obs = await publishObs(home, server.rtmpUrl, "obs");
        try {
          const room = await waitFor(
            async () => {
              const r = await server.api<Room>("/api/rooms/obs");
              return r.live && r.frames.video >= 60 && r.audio ? r : undefined;
            },
            45_000,
            "OBS to go live",
          );
          assert.equal(room.video.codec, "h264");
          assert.equal(room.video.width, 640);
          assert.equal(room.video.height, 360);
          assert.equal(room.video.profile, "High");
          assert.equal(room.audio.sampleRate, 48000);
          assert.equal(room.audio.channels, 2);
          assert.equal(room.bFrames, true, "OBS defaults send B-frames");
          assert.match(room.encoder ?? "", /obs|FMLE/i);
        } finally {
          await obs.stop();
          await Deno.remove(home, { recursive: true }).catch(() => {});
        }
        await waitFor(
          async () => !(await server.api<Room>("/api/rooms/obs")).live,
          10_000,
          "clear",
        );
      });
    } finally {
      assert.equal(await server.stop(), 0);
    }
  },
);
