import assert from "node:assert/strict";
import {
  FLV_TAG_AUDIO,
  FLV_TAG_SCRIPT,
  FLV_TAG_VIDEO,
  FlvError,
  type FlvTag,
  parseAudioTagBody,
  parseFlvHeader,
  parseVideoTagBody,
  readFlvTags,
} from "../../lib/flv/mod.ts";
import type { MediaUnit } from "../../lib/media.ts";

/**
 * Made once with:
 * `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine -t 2 -c:v libx264 -g 30 -c:a aac -f flv testsrc-320x240-2s.flv`
 */
const FIXTURE = new URL("../fixtures/testsrc-320x240-2s.flv", import.meta.url);

/**
 * What ffprobe reports for the fixture:
 * `ffprobe -v error -count_frames -count_packets -show_entries stream=codec_name,nb_read_frames,nb_read_packets <file>`
 * and `ffprobe -v error -select_streams v -show_entries packet=flags -of csv <file> | grep -c K`.
 */
const EXPECTED = { videoFrames: 60, keyframes: 2, audioFrames: 88 };

/** Fixture tests need `--allow-read` (as `deno task test` grants); without it they show as ignored. */
const CAN_READ_FIXTURE = Deno.permissions.querySync({ name: "read", path: FIXTURE }).state ===
  "granted";

/** Builds an FLV file from tags, with correct PreviousTagSize fields. */
function buildFlv(tags: { type: number; timestamp: number; body: Uint8Array }[]): Uint8Array {
  const out: number[] = [0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];
  for (const { type, timestamp, body } of tags) {
    const size = body.length;
    out.push(type, size >> 16, (size >> 8) & 0xff, size & 0xff);
    out.push((timestamp >> 16) & 0xff, (timestamp >> 8) & 0xff, timestamp & 0xff);
    out.push((timestamp >>> 24) & 0xff, 0, 0, 0, ...body);
    const previous = 11 + size;
    out.push(previous >>> 24, (previous >> 16) & 0xff, (previous >> 8) & 0xff, previous & 0xff);
  }
  return new Uint8Array(out);
}

function throwsFlv(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof FlvError && message.test(err.message));
}

Deno.test("file: header fields", () => {
  assert.deepEqual(parseFlvHeader(new Uint8Array([0x46, 0x4c, 0x56, 1, 4, 0, 0, 0, 9])), {
    version: 1,
    hasAudio: true,
    hasVideo: false,
    dataOffset: 9,
  });
  throwsFlv(() => parseFlvHeader(new Uint8Array([0x46, 0x4c, 0x56])), /9-byte FLV header, got 3/);
  throwsFlv(
    () => parseFlvHeader(new Uint8Array([0x46, 0x4c, 0x57, 1, 5, 0, 0, 0, 9])),
    /"FLV"\), got 46 4c 57/,
  );
  throwsFlv(
    () => parseFlvHeader(new Uint8Array([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 200])),
    /header size.*got 200/,
  );
});

Deno.test("file: tags round-trip, extended timestamps included", () => {
  const tags = [
    { type: FLV_TAG_SCRIPT, timestamp: 0, body: new Uint8Array([2, 0, 1, 0x78]) },
    { type: FLV_TAG_VIDEO, timestamp: 0x12345678, body: new Uint8Array([0x17, 2, 0, 0, 0]) },
    { type: FLV_TAG_AUDIO, timestamp: 0xfffffffe, body: new Uint8Array(0) },
  ];
  const read = Array.from(readFlvTags(buildFlv(tags)));
  assert.deepEqual(read.map(({ type, timestamp, body }) => ({ type, timestamp, body })), tags);
  assert.deepEqual(read.map((t) => t.offset), [13, 13 + 15 + 4, 13 + 15 + 4 + 16 + 4]);
  assert.deepEqual(Array.from(readFlvTags(buildFlv([]))), []);
});

Deno.test("file: truncation, bad PreviousTagSize and encrypted tags throw", () => {
  const file = buildFlv([{ type: FLV_TAG_VIDEO, timestamp: 0, body: new Uint8Array(20) }]);
  throwsFlv(() => Array.from(readFlvTags(file.subarray(0, 11))), /PreviousTagSize at offset 9/);
  throwsFlv(() => Array.from(readFlvTags(file.subarray(0, 20))), /11-byte tag header/);
  throwsFlv(() => Array.from(readFlvTags(file.subarray(0, 30))), /expected 20 body byte/);
  throwsFlv(() => Array.from(readFlvTags(file.subarray(0, 45))), /PreviousTagSize at offset 44/);
  const badPrevious = file.slice();
  badPrevious[badPrevious.length - 1] ^= 1;
  throwsFlv(() => Array.from(readFlvTags(badPrevious)), /PreviousTagSize 31 at offset 44, got 30/);
  const encrypted = file.slice();
  encrypted[13] |= 0x20;
  throwsFlv(() => Array.from(readFlvTags(encrypted)), /Filter bit/);
});

/** Parses every media tag of a file into units. */
function parseAll(tags: Iterable<FlvTag>): MediaUnit[] {
  const units: MediaUnit[] = [];
  for (const tag of tags) {
    if (tag.type === FLV_TAG_VIDEO) units.push(...parseVideoTagBody(tag.body, tag.timestamp));
    else if (tag.type === FLV_TAG_AUDIO) units.push(...parseAudioTagBody(tag.body, tag.timestamp));
  }
  return units;
}

Deno.test({
  name: "file: recorded ffmpeg stream parses to the frames ffprobe counts",
  ignore: !CAN_READ_FIXTURE,
}, async () => {
  const file = await Deno.readFile(FIXTURE);
  assert.ok(file.length < 200_000);
  const header = parseFlvHeader(file);
  assert.equal(header.hasAudio && header.hasVideo, true);
  const units = parseAll(readFlvTags(file));

  const count = (kind: MediaUnit["kind"]) => units.filter((u) => u.kind === kind).length;
  const video = units.filter((u) => u.kind === "video");
  assert.equal(video.length, EXPECTED.videoFrames);
  assert.equal(video.filter((u) => u.keyframe).length, EXPECTED.keyframes);
  assert.equal(count("audio"), EXPECTED.audioFrames);
  assert.equal(count("video-config"), 1);
  assert.equal(count("audio-config"), 1);
  assert.equal(count("video-end"), 1);

  assert.ok(video.every((u) => u.codec === "h264"));
  assert.ok(video[0].keyframe, "stream starts on a keyframe");
  // libx264 uses B-frames by default: composition offsets must appear.
  assert.ok(video.some((u) => u.cts > 0));
  // Every frame is AVCC: 4-byte lengths that tile the payload exactly.
  for (const frame of video) {
    const view = new DataView(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
    let at = 0;
    while (at < frame.data.length) at += 4 + view.getUint32(at);
    assert.equal(at, frame.data.length);
  }
  const videoConfig = units.find((u) => u.kind === "video-config");
  assert.ok(videoConfig?.kind === "video-config");
  assert.equal(videoConfig.record[0], 1, "avcC configurationVersion");
  const audioConfig = units.find((u) => u.kind === "audio-config");
  assert.ok(audioConfig?.kind === "audio-config");
  assert.equal(audioConfig.codec, "aac");
  assert.equal(audioConfig.record[0] >> 3, 2, "AAC LC object type");
});

/** Whether ffprobe may be run here (the repository test task allows it). */
function canRunFfprobe(): boolean {
  return CAN_READ_FIXTURE &&
    Deno.permissions.querySync({ name: "run", command: "ffprobe" }).state === "granted";
}

Deno.test({
  name: "file: the ffprobe counts recorded in the test still hold",
  ignore: !canRunFfprobe(),
  async fn() {
    const probe = async (...args: string[]) => {
      const { success, stdout } = await new Deno.Command("ffprobe", {
        args: ["-v", "error", ...args, FIXTURE.pathname],
        stdout: "piped",
        stderr: "null",
      }).output();
      assert.ok(success);
      return new TextDecoder().decode(stdout).trim();
    };
    try {
      const frames = await probe(
        "-count_frames",
        "-select_streams",
        "v",
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "csv=p=0",
      );
      const packets = await probe(
        "-count_packets",
        "-select_streams",
        "a",
        "-show_entries",
        "stream=nb_read_packets",
        "-of",
        "csv=p=0",
      );
      const flags = await probe(
        "-select_streams",
        "v",
        "-show_entries",
        "packet=flags",
        "-of",
        "csv",
      );
      assert.equal(Number(frames), EXPECTED.videoFrames);
      assert.equal(Number(packets), EXPECTED.audioFrames);
      assert.equal(flags.split("\n").filter((l) => l.includes("K")).length, EXPECTED.keyframes);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return; // no ffprobe on this machine
      throw err;
    }
  },
});

Deno.test({
  name: "fuzz: mutated recordings give tags or FlvError, nothing else",
  ignore: !CAN_READ_FIXTURE,
}, async () => {
  const file = await Deno.readFile(FIXTURE);
  let a = 0x0f1e_2d3c;
  const random = () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 4294967296;
  };
  for (let i = 0; i < 300; i++) {
    const copy = file.slice(0, random() < 0.3 ? Math.floor(random() * file.length) : undefined);
    for (let j = 0; j < 8; j++) {
      // Bias edits toward the first kilobyte, where the header and early tag headers live.
      const limit = random() < 0.5 ? Math.min(1024, copy.length) : copy.length;
      copy[Math.floor(random() * limit)] = Math.floor(random() * 256);
    }
    try {
      parseAll(readFlvTags(copy));
    } catch (err) {
      if (!(err instanceof FlvError)) throw new Error(`case ${i}: ${err}`);
    }
  }
});
