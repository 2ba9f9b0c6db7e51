import assert from "node:assert/strict";
import {
  containsBSlice,
  iterateAvccNalUnits,
  NalType,
  parseAvcDecoderConfig,
  parseSps,
} from "../../lib/codec/mod.ts";
import {
  buildAvcDecoderConfig,
  chooseTranscodeEngine,
  debianRelease,
  detectTranscodeSupport,
  loaderDirectories,
  type TranscodedFrame,
  type TranscodeEngine,
  type TranscodeEnginePreference,
  type TranscodeHostFacts,
  type TranscoderInputFrame,
  VideoTranscoder,
  type VideoTranscoderOptions,
} from "../../lib/codec/video/mod.ts";
import { FLV_TAG_VIDEO, parseVideoTagBody, readFlvTags } from "../../lib/flv/mod.ts";

// ---------------------------------------------------------------------------
// Pure detection: always runs.

const BOOKWORM_LIBS = new Set([
  "libavcodec.so.59",
  "libavutil.so.57",
  "libswscale.so.6",
  "libopenh264.so.7",
]);

function facts(overrides: Partial<TranscodeHostFacts> = {}): TranscodeHostFacts {
  return {
    os: "linux",
    ffiGranted: true,
    release: "bookworm",
    librariesFound: BOOKWORM_LIBS,
    shimCandidates: ["/srv/native/build/libsluice_transcode.so"],
    shimFound: "/srv/native/build/libsluice_transcode.so",
    ...overrides,
  };
}

Deno.test("detectTranscodeSupport: ok with the libraries and a loadable shim", () => {
  assert.deepEqual(detectTranscodeSupport(facts()), {
    ok: true,
    shimPath: "/srv/native/build/libsluice_transcode.so",
  });
});

Deno.test("detectTranscodeSupport: names missing libraries and the apt-get command", () => {
  const result = detectTranscodeSupport(
    facts({ librariesFound: new Set(["libavcodec.so.59", "libavutil.so.57", "libswscale.so.6"]) }),
  );
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(result.missingLibraries, ["libopenh264.so.7"]);
  assert.deepEqual(result.aptPackages, ["libopenh264-7"]);
  assert.equal(result.needsBuild, false);
  assert.match(result.reason, /missing libopenh264\.so\.7: apt-get install libopenh264-7$/);
});

Deno.test("detectTranscodeSupport: a missing shim asks for the build packages and build.sh", () => {
  const result = detectTranscodeSupport(facts({ shimFound: undefined, librariesFound: new Set() }));
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.needsBuild, true);
  assert.deepEqual(result.aptPackages, [
    "libavcodec59",
    "libavutil57",
    "libswscale6",
    "libopenh264-7",
    "gcc",
    "libc6-dev",
    "libavcodec-dev",
    "libavutil-dev",
    "libswscale-dev",
    "libopenh264-dev",
  ]);
  assert.match(result.reason, /native\/build\.sh/);
  assert.match(result.reason, /apt-get install libavcodec59 .* libopenh264-dev$/);
});

Deno.test("detectTranscodeSupport: permission, OS and load failures say so", () => {
  const noFfi = detectTranscodeSupport(facts({ ffiGranted: false }));
  assert.equal(
    !noFfi.ok && noFfi.reason,
    "native video transcoding needs the --allow-ffi permission",
  );
  const mac = detectTranscodeSupport(facts({ os: "darwin" }));
  assert.match(!mac.ok ? mac.reason : "", /needs Linux/);
  const broken = detectTranscodeSupport(facts({ loadError: "undefined symbol: avcodec_open2" }));
  assert.match(!broken.ok ? broken.reason : "", /undefined symbol: avcodec_open2.*--force/);
  const trixie = detectTranscodeSupport(facts({ release: "trixie" }));
  assert.match(!trixie.ok ? trixie.reason : "", /apt-get install libavcodec61 libavutil59/);
});

Deno.test("debianRelease and loaderDirectories", () => {
  assert.equal(
    debianRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n'),
    "bookworm",
  );
  assert.equal(debianRelease('VERSION_ID="13"\nVERSION_CODENAME=trixie\n'), "trixie");
  assert.equal(debianRelease(""), "bookworm");
  const dirs = loaderDirectories("x86_64", "/opt/lib::/x");
  assert.deepEqual(dirs.slice(0, 2), ["/opt/lib", "/x"]);
  assert.ok(dirs.includes("/usr/lib/x86_64-linux-gnu"));
});

Deno.test("buildAvcDecoderConfig round-trips through parseAvcDecoderConfig", () => {
  const sps = new Uint8Array([0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80]);
  const pps = new Uint8Array([0x68, 0xce, 0x3c, 0x80]);
  const config = parseAvcDecoderConfig(buildAvcDecoderConfig(sps, pps));
  assert.equal(config.profile, 0x42);
  assert.equal(config.compatibility, 0xc0);
  assert.equal(config.level, 0x1e);
  assert.equal(config.nalLengthSize, 4);
  assert.deepEqual(config.sps, [sps]);
  assert.deepEqual(config.pps, [pps]);
});

// ---------------------------------------------------------------------------
// The real transcoder: needs the native libraries, the built shim, ffmpeg and --allow-ffi.

const support = VideoTranscoder.available();
const hasFfmpeg = await commandWorks("ffmpeg", ["-version"]);
const skipReason = !support.ok ? support.reason : !hasFfmpeg ? "ffmpeg is not installed" : "";
if (skipReason) {
  console.warn(`tests/codec/video_test.ts: native transcode tests skipped: ${skipReason}`);
}
if (!hasFfmpeg) console.warn("tests/codec/video_test.ts: WebAssembly transcode tests skipped");
const ignore = skipReason !== "";
/** Both builds of the shim run the same tests; the WebAssembly one needs only ffmpeg. */
const ENGINES: readonly TranscodeEngine[] = ["native", "wasm"];
const ignoreFor = (engine: TranscodeEngine) => engine === "native" ? ignore : !hasFfmpeg;

interface Clip {
  avcC: Uint8Array;
  frames: TranscoderInputFrame[];
}

const clips = new Map<string, Promise<Clip>>();

/** An ffmpeg libx264 clip (testsrc2) in FLV, read back into avcC + access units; made once. */
function clip(size: string, seconds: number, x264: string[]): Promise<Clip> {
  const key = [size, seconds, ...x264].join(" ");
  let made = clips.get(key);
  if (!made) {
    made = makeClip(size, seconds, x264);
    clips.set(key, made);
  }
  return made;
}

async function makeClip(size: string, seconds: number, x264: string[]): Promise<Clip> {
  const dir = await Deno.makeTempDir({ prefix: "sluice-video-test-" });
  try {
    const path = `${dir}/clip.flv`;
    await run("ffmpeg", [
      ...["-nostdin", "-v", "error", "-y", "-f", "lavfi"],
      ...["-i", `testsrc2=size=${size}:rate=30`, "-t", String(seconds)],
      ...["-c:v", "libx264", "-pix_fmt", "yuv420p", ...x264, path],
    ]);
    return readClip(await Deno.readFile(path));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function readClip(file: Uint8Array): Clip {
  let avcC: Uint8Array | undefined;
  const frames: TranscoderInputFrame[] = [];
  for (const tag of readFlvTags(file)) {
    if (tag.type !== FLV_TAG_VIDEO) continue;
    for (const unit of parseVideoTagBody(tag.body, tag.timestamp)) {
      if (unit.kind === "video-config") avcC = unit.record;
      else if (unit.kind === "video") frames.push(unit);
    }
  }
  assert.ok(avcC, "expected an AVC sequence header in the clip");
  return { avcC, frames };
}

/** 640x360 30 fps, libx264 defaults with 3 B-frames and keyint 250: what OBS sends, shorter. */
const bframesClip = () => clip("640x360", 4, ["-bf", "3", "-g", "250"]);

function options(
  engine: TranscodeEnginePreference,
  avcC: Uint8Array,
  extra: Partial<VideoTranscoderOptions> = {},
) {
  return {
    avcC,
    engine,
    bitrate: 800_000,
    keyframeIntervalMs: 2000,
    maxQueuedFrames: 1000,
    ...extra,
  };
}

/** A transcoder whose every output picture lands in `out`. */
async function collecting(
  engine: TranscodeEnginePreference,
  avcC: Uint8Array,
  extra: Partial<VideoTranscoderOptions> = {},
): Promise<{ transcoder: VideoTranscoder; out: TranscodedFrame[] }> {
  const transcoder = await VideoTranscoder.create(options(engine, avcC, extra));
  const out: TranscodedFrame[] = [];
  transcoder.onFrame((frame) => out.push(frame));
  return { transcoder, out };
}

/** Pushes every frame at once, flushes, returns what came out. */
async function transcodeAll(
  engine: TranscodeEngine,
  input: Clip,
  extra: Partial<VideoTranscoderOptions> = {},
): Promise<{ out: TranscodedFrame[]; transcoder: VideoTranscoder }> {
  const { transcoder, out } = await collecting(engine, input.avcC, extra);
  for (const frame of input.frames) assert.ok(transcoder.push(frame));
  await transcoder.flush();
  return { out, transcoder };
}

/** Waits until the Worker has consumed everything pushed. */
async function drained(transcoder: VideoTranscoder): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (transcoder.stats().queued > 0) {
    if (Date.now() > deadline) throw new Error("transcoder did not drain within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Decodes the output as an Annex B file with ffmpeg; returns ffmpeg's complaints. */
async function ffmpegDecodeErrors(frames: TranscodedFrame[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sluice-video-out-" });
  try {
    const parts: Uint8Array[] = [];
    for (const frame of frames) {
      for (const nal of frame.nalus) parts.push(new Uint8Array([0, 0, 0, 1]), nal);
    }
    await Deno.writeFile(`${dir}/out.h264`, concat(parts));
    const result = await new Deno.Command("ffmpeg", {
      args: ["-nostdin", "-v", "error", "-i", `${dir}/out.h264`, "-f", "null", "-"],
      stdout: "null",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(result.stderr).trim();
    return result.success ? stderr : `exit ${result.code}: ${stderr}`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function keyframePts(frames: TranscodedFrame[]): number[] {
  return frames.filter((frame) => frame.keyframe).map((frame) => frame.pts);
}

for (const engine of ENGINES) {
  Deno.test({
    name:
      `VideoTranscoder (${engine}): catchUp() decodes a cached GOP without encoding it; the live edge is an IDR`,
    ignore: ignoreFor(engine),
    async fn() {
      const input = await bframesClip();
      const { transcoder, out } = await collecting(engine, input.avcC);
      try {
        // Feed the first 50 frames as a "cached GOP" up to the one shown at 1.5 s.
        const cached = input.frames.slice(0, 50);
        const liveFrom = Math.max(...cached.map((f) => f.dts + f.cts));
        transcoder.catchUp(liveFrom);
        for (const f of input.frames) transcoder.push(f);
        await transcoder.flush();
        assert.ok(out.length > 0);
        assert.equal(out[0].pts, liveFrom, "the newest cached picture comes out first");
        assert.ok(out[0].keyframe && out[0].sps && out[0].pps, "as an IDR");
        assert.ok(out.every((f) => f.pts >= liveFrom), "nothing of the catch-up is encoded");
        const stats = transcoder.stats().native!;
        // Every earlier picture was skipped: decoded only as a reference (counted), or
        // not decoded at all (the clip's non-reference B-frames).
        const notDecoded = input.frames.length - stats.picturesDecoded;
        assert.ok(notDecoded > 0, "non-reference frames of the catch-up are not decoded");
        assert.equal(stats.catchUpSkipped + notDecoded, input.frames.length - out.length);
        assert.equal(await ffmpegDecodeErrors(out), "");
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name:
      `VideoTranscoder (${engine}): B-frames in, Constrained Baseline without B-frames out, frame for frame`,
    ignore: ignoreFor(engine),
    async fn() {
      const input = await bframesClip();
      assert.ok(
        input.frames.some((frame) => containsBSlice(frame.data)),
        "expected B slices in the source clip",
      );
      const { out, transcoder } = await transcodeAll(engine, input);
      try {
        assert.ok(
          Math.abs(out.length - input.frames.length) <= 1,
          `expected ${input.frames.length} ± 1 frames, got ${out.length}`,
        );
        for (const frame of out) {
          assert.equal(containsBSlice(frame.data), false, `B slice at pts ${frame.pts}`);
        }

        assert.ok(out[0].keyframe, "the first output frame must be a keyframe");
        assert.ok(out[0].sps && out[0].pps && out[0].avcC, "keyframes carry SPS, PPS and avcC");
        const sps = parseSps(out[0].sps);
        // Constrained Baseline: profile_idc 66 with constraint_set1_flag (or Main, 77).
        assert.ok(
          (sps.profileIdc === 66 && (sps.constraintFlags & 0x40) !== 0) || sps.profileIdc === 77,
          `expected Constrained Baseline or Main, got profile-level-id ${sps.profileLevelId}`,
        );
        assert.equal(sps.width, 640);
        assert.equal(sps.height, 360);
        for (const frame of out) assert.deepEqual([frame.width, frame.height], [640, 360]);
        const types = out[0].nalus.map((nal) => nal[0] & 0x1f);
        assert.deepEqual(types.slice(0, 2), [NalType.SPS, NalType.PPS]);
        assert.ok(types.includes(NalType.IDR));
        assert.deepEqual(parseAvcDecoderConfig(out[0].avcC).sps, [out[0].sps]);

        // Presentation order, the input's clock, the whole span.
        const inputPts = input.frames.map((frame) => frame.dts + frame.cts).sort((a, b) => a - b);
        for (let i = 1; i < out.length; i++) {
          assert.ok(
            out[i].pts > out[i - 1].pts,
            `pts not increasing at ${i}: ${out[i - 1].pts} → ${out[i].pts}`,
          );
        }
        assert.deepEqual(out.map((frame) => frame.pts), inputPts);

        // A keyframe every 2 s of pts (the source has one per 250 frames).
        const keys = keyframePts(out);
        assert.deepEqual(keys.map((pts) => pts - keys[0]), [0, 2000], `keyframes at ${keys}`);

        // The data view and the NAL list describe the same bytes.
        assert.deepEqual([...iterateAvccNalUnits(out[5].data)], out[5].nalus);

        assert.equal(await ffmpegDecodeErrors(out), "");
        const stats = transcoder.stats();
        assert.equal(stats.framesIn, input.frames.length);
        assert.equal(stats.framesOut, out.length);
        assert.equal(stats.framesDropped, 0);
        assert.equal(stats.queued, 0);
        assert.equal(stats.native?.decodeErrors, 0);
        assert.equal(stats.native?.encodeErrors, 0);
        assert.ok(stats.busyMs > 0);
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name: `VideoTranscoder (${engine}): maxHeight scales down, keeping the aspect ratio`,
    ignore: ignoreFor(engine),
    async fn() {
      const input = await bframesClip();
      const { out, transcoder } = await transcodeAll(engine, input, { maxHeight: 240 });
      try {
        assert.equal(out.length, input.frames.length);
        for (const frame of out) assert.deepEqual([frame.width, frame.height], [426, 240]);
        const sps = parseSps(out[0].sps!);
        assert.deepEqual([sps.width, sps.height], [426, 240]);
        assert.equal(await ffmpegDecodeErrors(out), "");
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name: `VideoTranscoder (${engine}): requestKeyframe() makes the next output frame an IDR`,
    ignore: ignoreFor(engine),
    async fn() {
      const input = await bframesClip();
      const { transcoder, out } = await collecting(engine, input.avcC);
      try {
        const requestAt = [20, 45]; // 0.7 s and 1.5 s: away from the 2 s cadence
        const firstAfterRequest: TranscodedFrame[] = [];
        for (let i = 0; i < input.frames.length; i++) {
          if (requestAt.includes(i)) {
            const before = out.length;
            transcoder.requestKeyframe();
            transcoder.requestKeyframe(); // coalesces with the first
            // Push until a frame comes out (the decoder holds some back for reordering).
            while (out.length === before) {
              transcoder.push(input.frames[i++]);
              await drained(transcoder);
            }
            firstAfterRequest.push(out[before]);
            i--;
            continue;
          }
          transcoder.push(input.frames[i]);
          await drained(transcoder);
        }
        await transcoder.flush();
        assert.equal(out.length, input.frames.length);
        for (const frame of firstAfterRequest) {
          assert.ok(
            frame.keyframe,
            `expected an IDR right after the request, got P at pts ${frame.pts}`,
          );
          assert.ok(frame.sps && frame.pps);
        }
        const keys = keyframePts(out);
        // One IDR per request, and the 2 s cadence restarts from the forced one (none at 2067).
        assert.equal(keys.length, 4, `keyframes at ${keys}`);
        assert.deepEqual(keys.slice(1, 3), firstAfterRequest.map((frame) => frame.pts));
        assert.ok(Math.abs(keys[3] - keys[2] - 2000) <= 34, `keyframes at ${keys}`);
        assert.equal(transcoder.stats().native?.idrForced, 2);
        assert.equal(await ffmpegDecodeErrors(out), "");
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name:
      `VideoTranscoder (${engine}): a Worker that falls behind drops to the next source keyframe`,
    ignore: ignoreFor(engine),
    async fn() {
      // Keyframes at frames 0, 30 and 60.
      const input = await clip("640x360", 3, [
        "-bf",
        "3",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
      ]);
      assert.deepEqual(
        input.frames.flatMap((frame, i) => frame.keyframe ? [i] : []),
        [0, 30, 60],
      );
      const { transcoder, out } = await collecting(engine, input.avcC, { maxQueuedFrames: 4 });
      try {
        // A burst the Worker cannot absorb: 4 queued, the rest dropped, including keyframe 30
        // (the queue is still full when it comes).
        const accepted = input.frames.slice(0, 45).map((frame) => transcoder.push(frame));
        assert.deepEqual(accepted.flatMap((ok, i) => ok ? [i] : []), [0, 1, 2, 3]);
        await drained(transcoder);
        // Caught up: still dropping until the next keyframe (60), then everything.
        for (const frame of input.frames.slice(45)) {
          transcoder.push(frame);
          await drained(transcoder);
        }
        await transcoder.flush();
        const stats = transcoder.stats();
        assert.equal(stats.dropEvents, 1);
        assert.equal(stats.framesDropped, 56);
        assert.equal(stats.framesSent, 34);
        // Frames 0-3 in decode order are I0 P4 B2 b1: pictures 0, 1, 2, 4; then 60..89.
        assert.equal(out.length, 34);
        assert.ok(out[0].keyframe);
        for (let i = 1; i < out.length; i++) assert.ok(out[i].pts > out[i - 1].pts);
        assert.equal(await ffmpegDecodeErrors(out), "");
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name:
      `VideoTranscoder (${engine}): a new sequence header with another size re-creates the encoder`,
    ignore: ignoreFor(engine),
    async fn() {
      const first = await bframesClip();
      const second = await clip("320x240", 1, ["-bf", "3", "-g", "250"]);
      const { transcoder, out } = await collecting(engine, first.avcC);
      try {
        for (const frame of first.frames) transcoder.push(frame);
        // The publisher reconnects with new settings; its clock continues.
        const offset = 5000;
        transcoder.setConfig(second.avcC);
        for (const frame of second.frames) transcoder.push({ ...frame, dts: frame.dts + offset });
        await transcoder.flush();
        assert.equal(out.length, first.frames.length + second.frames.length);
        const switchAt = out.findIndex((frame) => frame.width === 320);
        assert.equal(switchAt, first.frames.length);
        assert.ok(out[switchAt].keyframe, "the first picture at the new size must be an IDR");
        assert.deepEqual([out[switchAt].width, out[switchAt].height], [320, 240]);
        assert.equal(transcoder.stats().native?.encoderResets, 2);
        assert.equal(transcoder.stats().native?.decodeErrors, 0);
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name:
      `VideoTranscoder (${engine}): a clock that restarts at 0 gets an IDR at once, not 2 s later`,
    ignore: ignoreFor(engine),
    async fn() {
      const input = await bframesClip();
      const { transcoder, out } = await collecting(engine, input.avcC);
      try {
        for (const frame of input.frames) transcoder.push(frame);
        for (const frame of input.frames) transcoder.push(frame); // same timestamps again
        await transcoder.flush();
        assert.equal(out.length, 2 * input.frames.length);
        const firstPass = keyframePts(out.slice(0, input.frames.length));
        assert.equal(firstPass.length, 2);
        assert.deepEqual(keyframePts(out), [...firstPass, ...firstPass]);
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name: `VideoTranscoder (${engine}): malformed access units are counted and skipped`,
    ignore: ignoreFor(engine),
    async fn() {
      const input = await bframesClip();
      const { transcoder, out } = await collecting(engine, input.avcC);
      try {
        transcoder.push(input.frames[0]);
        // A length prefix that runs past the end, then NAL garbage.
        transcoder.push({
          dts: 33,
          cts: 0,
          keyframe: false,
          data: new Uint8Array([0, 0, 1, 0, 0x41]),
        });
        transcoder.push({
          dts: 33,
          cts: 0,
          keyframe: false,
          data: new Uint8Array([0, 0, 0, 2, 0x41, 0xff]),
        });
        for (const frame of input.frames.slice(1)) transcoder.push(frame);
        await transcoder.flush();
        const stats = transcoder.stats();
        assert.equal(stats.malformed, 1);
        assert.match(stats.lastError ?? "", /NAL unit length runs past the 5-byte access unit/);
        assert.ok(out.length >= input.frames.length - 1, `got ${out.length} frames`);
        assert.ok(out[0].keyframe);
      } finally {
        await transcoder.close();
      }
    },
  });

  Deno.test({
    name:
      `VideoTranscoder (${engine}): frames before the first keyframe are skipped; close() is idempotent`,
    ignore: ignoreFor(engine),
    async fn() {
      const input = await bframesClip();
      const { transcoder, out } = await collecting(engine, input.avcC);
      assert.equal(transcoder.push(input.frames[1]), false);
      assert.equal(transcoder.push(input.frames[2]), false);
      assert.equal(transcoder.push(input.frames[0]), true);
      await transcoder.flush();
      assert.equal(transcoder.stats().framesBeforeKeyframe, 2);
      assert.equal(out.length, 1);
      await Promise.all([transcoder.close(), transcoder.close()]);
      assert.equal(transcoder.push(input.frames[0]), false);
    },
  });
}

Deno.test({
  name: "VideoTranscoder.create: refuses a malformed avcC or a missing shim, saying why",
  ignore,
  async fn() {
    await assert.rejects(
      VideoTranscoder.create(options("native", new Uint8Array([1, 2, 3]))),
      /avcC/,
    );
    const input = await bframesClip();
    const shimPath = "/nonexistent/libsluice_transcode.so";
    await assert.rejects(
      VideoTranscoder.create(options("native", input.avcC, { shimPath })),
      /native\/build\.sh.*apt-get install/,
    );
    await assert.rejects(
      VideoTranscoder.create(options("native", input.avcC, { bitrate: 5 })),
      RangeError,
    );
    // "auto" falls back to the WebAssembly build, saying why the native one cannot run.
    const choice = VideoTranscoder.chooseEngine({ shimPath });
    assert.equal(choice.ok && choice.engine, "wasm");
    assert.match(
      choice.ok && choice.engine === "wasm" && choice.nativeUnavailable || "",
      /apt-get/,
    );
    const fallback = await VideoTranscoder.create(options("auto", input.avcC, { shimPath }));
    try {
      assert.equal(fallback.engine, "wasm");
    } finally {
      await fallback.close();
    }
    const native = await VideoTranscoder.create(options("auto", input.avcC));
    try {
      assert.equal(native.engine, "native");
    } finally {
      await native.close();
    }
  },
});

Deno.test("chooseTranscodeEngine: auto prefers native, says why it falls back", () => {
  const nativeOk = detectTranscodeSupport(facts());
  const nativeMissing = detectTranscodeSupport(facts({ shimFound: undefined }));
  assert.deepEqual(chooseTranscodeEngine(nativeOk, "auto"), {
    ok: true,
    engine: "native",
    shimPath: "/srv/native/build/libsluice_transcode.so",
  });
  assert.deepEqual(chooseTranscodeEngine(nativeOk, "wasm"), { ok: true, engine: "wasm" });
  const fallback = chooseTranscodeEngine(nativeMissing, "auto");
  assert.equal(fallback.ok && fallback.engine, "wasm");
  assert.match(
    fallback.ok && fallback.engine === "wasm" ? fallback.nativeUnavailable ?? "" : "",
    /native\/build\.sh/,
  );
  const refused = chooseTranscodeEngine(nativeMissing, "native");
  assert.equal(refused.ok, false);
  assert.match(!refused.ok ? refused.reason : "", /apt-get install/);
});

async function commandWorks(command: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

async function run(command: string, args: string[]): Promise<void> {
  const result = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  if (!result.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`,
    );
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
