import assert from "node:assert/strict";
import { FlvError, parseAudioTagBody, parseVideoTagBody } from "../../lib/flv/mod.ts";
import type { MediaUnit } from "../../lib/media.ts";
import { mulberry32 } from "../support/prng.ts";

/** Concatenates numbers, strings (as ASCII, e.g. FourCCs) and byte arrays. */
function bytes(...parts: (number | string | Uint8Array | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else if (typeof part === "string") { for (const c of part) out.push(c.charCodeAt(0)); }
    else out.push(...part);
  }
  return new Uint8Array(out);
}

const AVCC = bytes(1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f);
const NALU = bytes(0, 0, 0, 2, 0x65, 0x88);

function throwsFlv(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FlvError, `expected FlvError, got ${err}`);
    assert.equal(err.name, "FlvError");
    if (message) assert.match(err.message, message);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Legacy video

Deno.test("video: empty body is ignored", () => {
  assert.deepEqual(parseVideoTagBody(new Uint8Array(0), 5), []);
});

Deno.test("video: legacy AVC sequence header yields the avcC record", () => {
  const units = parseVideoTagBody(bytes(0x17, 0, 0, 0, 0, AVCC), 40);
  assert.deepEqual(units, [{ kind: "video-config", codec: "h264", dts: 40, record: AVCC }]);
});

Deno.test("video: legacy AVC keyframe NALU with positive composition time", () => {
  const units = parseVideoTagBody(bytes(0x17, 1, 0, 0, 0x42, NALU), 1000);
  assert.deepEqual(units, [
    { kind: "video", codec: "h264", dts: 1000, cts: 66, keyframe: true, data: NALU },
  ]);
});

Deno.test("video: legacy AVC inter NALU with negative composition time", () => {
  const [frame] = parseVideoTagBody(bytes(0x27, 1, 0xff, 0xff, 0xf6, NALU), 1000);
  assert.equal(frame.kind, "video");
  assert.ok(frame.kind === "video");
  assert.equal(frame.cts, -10);
  assert.equal(frame.keyframe, false);
  const [min] = parseVideoTagBody(bytes(0x27, 1, 0x80, 0, 0, NALU), 0);
  assert.ok(min.kind === "video");
  assert.equal(min.cts, -0x800000);
  const [max] = parseVideoTagBody(bytes(0x27, 1, 0x7f, 0xff, 0xff, NALU), 0);
  assert.ok(max.kind === "video");
  assert.equal(max.cts, 0x7fffff);
});

Deno.test("video: legacy AVC end of sequence, with or without composition time", () => {
  const end = [{ kind: "video-end", codec: "h264", dts: 7 }];
  assert.deepEqual(parseVideoTagBody(bytes(0x17, 2, 0, 0, 0), 7), end);
  assert.deepEqual(parseVideoTagBody(bytes(0x17, 2), 7), end);
});

Deno.test("video: legacy HEVC (codec id 12) uses the AVC layout", () => {
  const [frame] = parseVideoTagBody(bytes(0x1c, 1, 0, 0, 0, NALU), 3);
  assert.deepEqual(frame, {
    kind: "video",
    codec: "h265",
    dts: 3,
    cts: 0,
    keyframe: true,
    data: NALU,
  });
});

Deno.test("video: legacy command frames are ignored whatever the codec", () => {
  assert.deepEqual(parseVideoTagBody(bytes(0x57, 0), 0), []);
  assert.deepEqual(parseVideoTagBody(bytes(0x52, 1), 0), []);
  assert.deepEqual(parseVideoTagBody(bytes(0x57), 0), []);
});

Deno.test("video: other legacy codecs are rejected with their id", () => {
  throwsFlv(() => parseVideoTagBody(bytes(0x22, 1, 2, 3), 0), /unsupported video codec id 2 /);
  throwsFlv(() => parseVideoTagBody(bytes(0x14, 1, 2, 3), 0), /unsupported video codec id 4 /);
  throwsFlv(() => parseVideoTagBody(bytes(0x10), 0), /only H\.264\/AVC/);
});

Deno.test("video: truncated or malformed legacy AVC headers throw", () => {
  throwsFlv(() => parseVideoTagBody(bytes(0x17), 0), /AVCPacketType.*got 0/);
  throwsFlv(() => parseVideoTagBody(bytes(0x17, 1, 0), 0), /CompositionTime/);
  throwsFlv(() => parseVideoTagBody(bytes(0x17, 3, 0, 0, 0, NALU), 0), /AVCPacketType 0, 1 or 2/);
  throwsFlv(() => parseVideoTagBody(bytes(0x17, 0, 0, 0, 0), 0), /configuration record/);
});

Deno.test("video: empty coded frames are dropped", () => {
  assert.deepEqual(parseVideoTagBody(bytes(0x27, 1, 0, 0, 0), 0), []);
});

// ---------------------------------------------------------------------------
// Enhanced RTMP video

/** First byte of an ExVideoTagHeader. */
function exVideo(frameType: number, packetType: number): number {
  return 0x80 | (frameType << 4) | packetType;
}

const FOURCC_CASES = [
  { fourCc: "avc1", codec: "h264", hasCts: true },
  { fourCc: "hvc1", codec: "h265", hasCts: true },
  { fourCc: "av01", codec: "av1", hasCts: false },
] as const;

for (const { fourCc, codec, hasCts } of FOURCC_CASES) {
  Deno.test(`video: enhanced ${fourCc} SequenceStart yields a config`, () => {
    const record = bytes(1, 2, 3, 4);
    assert.deepEqual(parseVideoTagBody(bytes(exVideo(1, 0), fourCc, record), 10), [
      { kind: "video-config", codec, dts: 10, record },
    ]);
    throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 0), fourCc), 10), /record, got 0/);
  });

  Deno.test(`video: enhanced ${fourCc} CodedFrames`, () => {
    const body = bytes(exVideo(1, 1), fourCc, 0xff, 0xff, 0xfe, NALU);
    const [frame] = parseVideoTagBody(body, 20);
    assert.ok(frame.kind === "video");
    assert.equal(frame.codec, codec);
    assert.equal(frame.dts, 20);
    assert.equal(frame.keyframe, true);
    if (hasCts) {
      assert.equal(frame.cts, -2);
      assert.deepEqual(frame.data, NALU);
    } else {
      // AV1 carries no composition time: the three bytes belong to the OBUs.
      assert.equal(frame.cts, 0);
      assert.deepEqual(frame.data, bytes(0xff, 0xff, 0xfe, NALU));
    }
    const [inter] = parseVideoTagBody(bytes(exVideo(2, 1), fourCc, 0, 0, 5, NALU), 20);
    assert.ok(inter.kind === "video");
    assert.equal(inter.keyframe, false);
  });

  Deno.test(`video: enhanced ${fourCc} CodedFramesX has no composition time`, () => {
    assert.deepEqual(parseVideoTagBody(bytes(exVideo(2, 3), fourCc, NALU), 30), [
      { kind: "video", codec, dts: 30, cts: 0, keyframe: false, data: NALU },
    ]);
  });

  Deno.test(`video: enhanced ${fourCc} SequenceEnd`, () => {
    assert.deepEqual(parseVideoTagBody(bytes(exVideo(1, 2), fourCc), 40), [
      { kind: "video-end", codec, dts: 40 },
    ]);
  });

  Deno.test(`video: enhanced ${fourCc} Metadata and MPEG2TSSequenceStart are ignored`, () => {
    // Metadata: AMF0 "colorInfo" string follows; its content does not matter.
    assert.deepEqual(parseVideoTagBody(bytes(exVideo(1, 4), fourCc, 2, 0, 9, "colorInfo"), 0), []);
    assert.deepEqual(parseVideoTagBody(bytes(exVideo(1, 5), fourCc, 1, 2, 3), 0), []);
  });
}

Deno.test("video: enhanced command frame is ignored", () => {
  assert.deepEqual(parseVideoTagBody(bytes(exVideo(5, 1), 0), 0), []);
});

Deno.test("video: enhanced unknown FourCC and packet type throw", () => {
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 1), "vp09", NALU), 0), /"vp09"/);
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 8), "avc1", NALU), 0), /VideoPacketType/);
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 1), "av"), 0), /FourCC/);
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 1), "avc1", 0), 0), /CompositionTime/);
});

Deno.test("video: ModEx data is skipped before the real packet type", () => {
  // ModEx with 3 bytes of TimestampOffsetNano, then CodedFrames.
  const body = bytes(exVideo(1, 7), 2, 0x01, 0x02, 0x03, 0x01, "avc1", 0, 0, 4, NALU);
  assert.deepEqual(parseVideoTagBody(body, 50), [
    { kind: "video", codec: "h264", dts: 50, cts: 4, keyframe: true, data: NALU },
  ]);
});

Deno.test("video: ModEx with a 16-bit size and chained ModEx", () => {
  const big = new Uint8Array(300);
  const body = bytes(
    exVideo(2, 7),
    0xff,
    0x01,
    0x2b, // 299 + 1 = 300 bytes
    big,
    0x07, // another ModEx (type 0)
    0,
    0xaa, // 1 byte
    0x13, // ModEx type 1, CodedFramesX
    "hvc1",
    NALU,
  );
  assert.deepEqual(parseVideoTagBody(body, 60), [
    { kind: "video", codec: "h265", dts: 60, cts: 0, keyframe: false, data: NALU },
  ]);
});

Deno.test("video: truncated ModEx throws", () => {
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 7)), 0), /ModEx data size/);
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 7), 4, 1, 2), 0), /ModEx data/);
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 7), 0xff, 1), 0), /extended/);
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 7), 0, 1), 0), /packet type/);
});

Deno.test("video: multitrack OneTrack yields track 0 and ignores other tracks", () => {
  const track0 = bytes(exVideo(1, 6), 0x01, "avc1", 0, 0, 0, 1, NALU);
  assert.deepEqual(parseVideoTagBody(track0, 5), [
    { kind: "video", codec: "h264", dts: 5, cts: 1, keyframe: true, data: NALU },
  ]);
  const track1 = bytes(exVideo(1, 6), 0x01, "avc1", 1, 0, 0, 1, NALU);
  assert.deepEqual(parseVideoTagBody(track1, 5), []);
});

Deno.test("video: multitrack ManyTracks finds track 0 after others", () => {
  const t1 = bytes(0, 0, 0, NALU, 0x99);
  const t0 = bytes(0, 0, 2, NALU);
  const body = bytes(exVideo(2, 6), 0x11, "hvc1", 1, 0, 0, t1.length, t1, 0, 0, 0, t0.length, t0);
  assert.deepEqual(parseVideoTagBody(body, 9), [
    { kind: "video", codec: "h265", dts: 9, cts: 2, keyframe: false, data: NALU },
  ]);
});

Deno.test("video: multitrack ManyTracksManyCodecs reads a FourCC per track", () => {
  const body = bytes(
    exVideo(1, 6),
    0x20, // ManyTracksManyCodecs, SequenceStart
    "vp09", // unsupported but not the default track: skipped
    2,
    0,
    0,
    2,
    0xaa,
    0xbb,
    "av01",
    0,
    0,
    0,
    3,
    0x81,
    0x01,
    0x02,
  );
  assert.deepEqual(parseVideoTagBody(body, 0), [
    { kind: "video-config", codec: "av1", dts: 0, record: bytes(0x81, 1, 2) },
  ]);
});

Deno.test("video: malformed multitrack throws", () => {
  // track size beyond the body
  throwsFlv(
    () => parseVideoTagBody(bytes(exVideo(1, 6), 0x11, "avc1", 0, 0, 0, 99, NALU), 0),
    /track 0 body/,
  );
  // nested multitrack
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 6), 0x06, "avc1", 0), 0), /nested/);
  // reserved multitrack type
  throwsFlv(() => parseVideoTagBody(bytes(exVideo(1, 6), 0x31, "avc1", 0), 0), /multitrack type/);
});

// ---------------------------------------------------------------------------
// Legacy audio

const ASC = bytes(0x12, 0x10);
const AAC_FRAME = bytes(0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c);

Deno.test("audio: empty body (silence) is ignored", () => {
  assert.deepEqual(parseAudioTagBody(new Uint8Array(0), 0), []);
});

Deno.test("audio: AAC sequence header yields the AudioSpecificConfig", () => {
  assert.deepEqual(parseAudioTagBody(bytes(0xaf, 0, ASC), 0), [
    { kind: "audio-config", codec: "aac", dts: 0, record: ASC },
  ]);
});

Deno.test("audio: raw AAC frame", () => {
  assert.deepEqual(parseAudioTagBody(bytes(0xaf, 1, AAC_FRAME), 23), [
    { kind: "audio", codec: "aac", dts: 23, data: AAC_FRAME },
  ]);
  assert.deepEqual(parseAudioTagBody(bytes(0xaf, 1), 23), []);
});

Deno.test("audio: malformed AAC throws", () => {
  throwsFlv(() => parseAudioTagBody(bytes(0xaf), 0), /AACPacketType.*got 0/);
  throwsFlv(() => parseAudioTagBody(bytes(0xaf, 2, 1), 0), /AACPacketType 0 or 1, got 2/);
  throwsFlv(() => parseAudioTagBody(bytes(0xaf, 0), 0), /configuration record, got 0/);
});

Deno.test("audio: legacy non-AAC formats yield frames with header rate and channels", () => {
  const data = bytes(0xff, 0xfb, 0x90, 0x64);
  const cases: [number, string, number, number][] = [
    [0x2f, "mp3", 44100, 2], // mp3, 44 kHz, 16-bit, stereo
    [0x2a, "mp3", 22050, 1],
    [0xe2, "mp3", 8000, 1], // MP3 8 kHz
    [0x3e, "pcm", 44100, 1],
    [0x06, "pcm", 11025, 1],
    [0x72, "g711a", 8000, 1],
    [0x83, "g711u", 8000, 2],
    [0xb2, "speex", 16000, 1],
    [0x42, "nellymoser", 16000, 1],
    [0x52, "nellymoser", 8000, 1],
    [0x6d, "nellymoser", 44100, 2],
    [0x12, "other", 5512, 1], // ADPCM
    [0xf2, "other", 5512, 1], // device-specific
  ];
  for (const [first, codec, sampleRate, channels] of cases) {
    assert.deepEqual(
      parseAudioTagBody(bytes(first, data), 100),
      [{ kind: "audio", codec, dts: 100, data, sampleRate, channels }],
      `header 0x${first.toString(16)}`,
    );
  }
  assert.deepEqual(parseAudioTagBody(bytes(0x2f), 0), []);
});

// ---------------------------------------------------------------------------
// Enhanced RTMP audio

function exAudio(packetType: number): number {
  return 0x90 | packetType;
}

Deno.test("audio: enhanced mp4a maps to AAC", () => {
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(0), "mp4a", ASC), 1), [
    { kind: "audio-config", codec: "aac", dts: 1, record: ASC },
  ]);
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(1), "mp4a", AAC_FRAME), 2), [
    { kind: "audio", codec: "aac", dts: 2, data: AAC_FRAME },
  ]);
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(2), "mp4a"), 3), []);
  throwsFlv(() => parseAudioTagBody(bytes(exAudio(0), "mp4a"), 0), /aac audio configuration/);
});

Deno.test("audio: enhanced other FourCCs map to other (and .mp3 to mp3)", () => {
  const head = bytes("OpusHead", 1, 2, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0);
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(0), "Opus", head), 0), [
    { kind: "audio-config", codec: "other", dts: 0, record: head },
  ]);
  // Opus may start with an empty ID header.
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(0), "Opus"), 0), []);
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(1), "fLaC", 0xff, 0xf8), 4), [
    { kind: "audio", codec: "other", dts: 4, data: bytes(0xff, 0xf8) },
  ]);
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(1), "ac-3", 0x0b, 0x77), 4), [
    { kind: "audio", codec: "other", dts: 4, data: bytes(0x0b, 0x77) },
  ]);
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(1), ".mp3", 0xff, 0xfb), 4), [
    { kind: "audio", codec: "mp3", dts: 4, data: bytes(0xff, 0xfb) },
  ]);
});

Deno.test("audio: enhanced MultichannelConfig and SequenceEnd are ignored", () => {
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(4), "Opus", 1, 2), 0), []);
  assert.deepEqual(parseAudioTagBody(bytes(exAudio(2), "Opus"), 0), []);
});

Deno.test("audio: enhanced ModEx and multitrack", () => {
  const modEx = bytes(exAudio(7), 2, 0, 1, 2, 0x01, "mp4a", AAC_FRAME);
  assert.deepEqual(parseAudioTagBody(modEx, 8), [
    { kind: "audio", codec: "aac", dts: 8, data: AAC_FRAME },
  ]);
  const oneTrack = bytes(exAudio(5), 0x01, "mp4a", 0, AAC_FRAME);
  assert.deepEqual(parseAudioTagBody(oneTrack, 8), [
    { kind: "audio", codec: "aac", dts: 8, data: AAC_FRAME },
  ]);
  const otherTrack = bytes(exAudio(5), 0x01, "mp4a", 3, AAC_FRAME);
  assert.deepEqual(parseAudioTagBody(otherTrack, 8), []);
  throwsFlv(() => parseAudioTagBody(bytes(exAudio(5), 0x05, "mp4a", 0), 0), /nested/);
});

Deno.test("audio: enhanced malformed headers throw", () => {
  throwsFlv(() => parseAudioTagBody(bytes(exAudio(1), "mp"), 0), /FourCC/);
  throwsFlv(() => parseAudioTagBody(bytes(exAudio(3), "mp4a", 1), 0), /AudioPacketType/);
  throwsFlv(() => parseAudioTagBody(bytes(exAudio(7), 5), 0), /ModEx data/);
});

// ---------------------------------------------------------------------------
// Fuzzing

const VALID_VIDEO = [
  bytes(0x17, 0, 0, 0, 0, AVCC),
  bytes(0x27, 1, 0xff, 0xff, 0xf6, NALU),
  bytes(0x17, 2, 0, 0, 0),
  bytes(exVideo(1, 1), "hvc1", 0, 0, 4, NALU),
  bytes(exVideo(1, 7), 2, 1, 2, 3, 0x01, "avc1", 0, 0, 4, NALU),
  bytes(exVideo(2, 6), 0x11, "hvc1", 1, 0, 0, 3, 1, 2, 3, 0, 0, 0, 9, 0, 0, 2, NALU),
  bytes(exVideo(1, 6), 0x20, "av01", 0, 0, 0, 3, 0x81, 1, 2),
  bytes(exVideo(1, 0), "av01", 0x81, 1, 2),
];
const VALID_AUDIO = [
  bytes(0xaf, 0, ASC),
  bytes(0xaf, 1, AAC_FRAME),
  bytes(0x2f, 1, 2, 3),
  bytes(exAudio(0), "Opus", 1, 2),
  bytes(exAudio(7), 2, 0, 1, 2, 0x01, "mp4a", AAC_FRAME),
  bytes(exAudio(5), 0x11, "mp4a", 0, 0, 0, 2, 1, 2),
];

const KINDS = new Set(["video-config", "video", "video-end", "audio-config", "audio"]);

/** Runs a parser and checks it returns well-formed units or throws FlvError, nothing else. */
function check(
  parse: (body: Uint8Array, ts: number) => MediaUnit[],
  body: Uint8Array,
  label: string,
): "ok" | "error" {
  let units: MediaUnit[];
  try {
    units = parse(body, 1234);
  } catch (err) {
    if (err instanceof FlvError) return "error";
    throw new Error(`${label}: threw ${err} for [${Array.from(body).join(",")}]`);
  }
  assert.ok(Array.isArray(units), label);
  for (const unit of units) {
    assert.ok(KINDS.has(unit.kind), label);
    assert.equal(unit.dts, 1234, label);
    if (unit.kind === "video") assert.ok(Number.isInteger(unit.cts), label);
    if (unit.kind === "video" || unit.kind === "audio") {
      assert.ok(unit.data instanceof Uint8Array && unit.data.length <= body.length, label);
    }
    if (unit.kind === "video-config" || unit.kind === "audio-config") {
      assert.ok(unit.record instanceof Uint8Array && unit.record.length > 0, label);
    }
  }
  return "ok";
}

function mutate(random: () => number, input: Uint8Array): Uint8Array {
  const out = Array.from(input);
  const edits = 1 + Math.floor(random() * 4);
  for (let i = 0; i < edits; i++) {
    const op = Math.floor(random() * 4);
    const at = Math.floor(random() * (out.length + 1));
    if (op === 0 && out.length > 0) out[at % out.length] = Math.floor(random() * 256);
    else if (op === 1) out.length = at; // truncate
    else if (op === 2) out.splice(at, 0, Math.floor(random() * 256));
    else if (out.length > 0) out[at % out.length] ^= 1 << Math.floor(random() * 8);
  }
  return new Uint8Array(out);
}

Deno.test("fuzz: random bodies and mutations give units or FlvError, nothing else", () => {
  const random = mulberry32(0x5eed_f1f0);
  const tally = { ok: 0, error: 0 };
  for (let i = 0; i < 6000; i++) {
    let body: Uint8Array;
    if (i % 3 === 0) {
      body = new Uint8Array(Math.floor(random() * 24));
      for (let j = 0; j < body.length; j++) body[j] = Math.floor(random() * 256);
    } else {
      const pool = i % 3 === 1 ? VALID_VIDEO : VALID_AUDIO;
      body = mutate(random, pool[Math.floor(random() * pool.length)]);
    }
    // Each body goes through both parsers: cross-feeding finds more paths.
    tally[check(parseVideoTagBody, body, `video case ${i}`)]++;
    tally[check(parseAudioTagBody, body, `audio case ${i}`)]++;
  }
  // The corpus must exercise both outcomes, or the fuzzer is not fuzzing.
  assert.ok(tally.ok > 1000, `ok=${tally.ok}`);
  assert.ok(tally.error > 1000, `error=${tally.error}`);
});

Deno.test("fuzz: bodies are never read outside their view", () => {
  // Bodies that are views into a larger buffer must not leak neighbouring bytes.
  const random = mulberry32(42);
  for (let i = 0; i < 2000; i++) {
    const backing = new Uint8Array(64).fill(0xee);
    const source = mutate(random, VALID_VIDEO[i % VALID_VIDEO.length]);
    const start = 8;
    const length = Math.min(source.length, backing.length - start * 2);
    backing.set(source.subarray(0, length), start);
    const view = backing.subarray(start, start + length);
    try {
      for (const unit of parseVideoTagBody(view, 0)) {
        const payload = unit.kind === "video"
          ? unit.data
          : unit.kind === "video-config"
          ? unit.record
          : undefined;
        if (payload === undefined) continue;
        assert.equal(payload.buffer, backing.buffer);
        assert.ok(payload.byteOffset >= start);
        assert.ok(payload.byteOffset + payload.length <= start + length);
      }
    } catch (err) {
      if (!(err instanceof FlvError)) throw err;
    }
  }
});
