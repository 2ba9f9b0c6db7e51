import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  type ChunkStreamLimits,
  ChunkStreamReader,
  DEFAULT_CHUNK_SIZE,
  encodeChunks,
  MAX_CHUNK_HEADER,
  type RtmpMessage,
} from "../../lib/rtmp/chunk.ts";
import { RtmpError } from "../../lib/rtmp/errors.ts";
import { mulberry32 } from "../support/prng.ts";

// ---------------------------------------------------------------------------
// Helpers: chunk headers written out byte by byte, independent of encodeChunks.

const LIMITS: ChunkStreamLimits = { maxMessageSize: 1 << 20, maxChunkSize: 0x7fffffff };

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Basic header: 1 byte for csid 2..63, 2 bytes for 64..319, 3 bytes for 320..65599. */
function basic(fmt: number, csid: number): number[] {
  if (csid < 64) return [(fmt << 6) | csid];
  if (csid < 320) return [fmt << 6, csid - 64];
  return [(fmt << 6) | 1, (csid - 64) & 0xff, (csid - 64) >> 8];
}

function u24(v: number): number[] {
  return [(v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
}

function u32be(v: number): number[] {
  return [v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff];
}

/** The 24-bit field and, when needed, the extended timestamp that follows the header. */
function timeField(v: number): { field: number[]; ext: number[] } {
  return v >= 0xffffff ? { field: u24(0xffffff), ext: u32be(v) } : { field: u24(v), ext: [] };
}

/** Type 0 chunk header (basic + 11 bytes + extended timestamp when needed). */
function fmt0(csid: number, timestamp: number, length: number, type: number, streamId: number) {
  const { field, ext } = timeField(timestamp);
  const sid = [streamId & 0xff, (streamId >> 8) & 0xff, (streamId >> 16) & 0xff, streamId >>> 24];
  return [...basic(0, csid), ...field, ...u24(length), type, ...sid, ...ext];
}

/** Type 1 chunk header: timestamp delta, length, type. */
function fmt1(csid: number, delta: number, length: number, type: number) {
  const { field, ext } = timeField(delta);
  return [...basic(1, csid), ...field, ...u24(length), type, ...ext];
}

/** Type 2 chunk header: timestamp delta only. */
function fmt2(csid: number, delta: number) {
  const { field, ext } = timeField(delta);
  return [...basic(2, csid), ...field, ...ext];
}

/** Type 3 chunk header; `ext` repeats the extended timestamp when the stream uses one. */
function fmt3(csid: number, ext?: number) {
  return [...basic(3, csid), ...(ext === undefined ? [] : u32be(ext))];
}

function bytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

/** Pushes everything at once and returns every complete message. */
function readAll(
  input: Uint8Array,
  reader = new ChunkStreamReader(LIMITS),
): RtmpMessage[] {
  reader.push(input);
  return drain(reader);
}

function drain(reader: ChunkStreamReader): RtmpMessage[] {
  const out: RtmpMessage[] = [];
  let m: RtmpMessage | undefined;
  while ((m = reader.next()) !== undefined) out.push(m);
  return out;
}

/** Pushes one byte at a time, draining after each byte. */
function readByteByByte(input: Uint8Array, reader = new ChunkStreamReader(LIMITS)) {
  const out: RtmpMessage[] = [];
  for (let i = 0; i < input.length; i++) {
    reader.push(input.subarray(i, i + 1));
    out.push(...drain(reader));
  }
  return out;
}

function msg(
  csid: number,
  type: number,
  streamId: number,
  timestamp: number,
  payload: Uint8Array,
): RtmpMessage {
  return { csid, type, streamId, timestamp, payload };
}

/** Asserts the same messages come out whole and byte by byte. */
function assertReads(input: Uint8Array, expected: RtmpMessage[], limits = LIMITS): void {
  deepStrictEqual(readAll(input, new ChunkStreamReader(limits)), expected, "in one push");
  deepStrictEqual(readByteByByte(input, new ChunkStreamReader(limits)), expected, "byte by byte");
}

function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

// ---------------------------------------------------------------------------
// Header types

Deno.test("chunk: type 0 header carries timestamp, length, type and a little-endian stream id", () => {
  const payload = bytes(10);
  const input = concat(fmt0(3, 0x123456, 10, 20, 0x01020304), payload);
  // Spot-check the hand-built header against the spec's layout.
  strictEqual(hex(input.subarray(0, 12)), "03" + "123456" + "00000a" + "14" + "04030201");
  assertReads(input, [msg(3, 20, 0x01020304, 0x123456, payload)]);
});

Deno.test("chunk: type 0 stream id uses all 32 bits", () => {
  const input = concat(fmt0(4, 0, 1, 8, 0xfffffffe), [7]);
  assertReads(input, [msg(4, 8, 0xfffffffe, 0, new Uint8Array([7]))]);
});

Deno.test("chunk: type 1 header changes length and type, adds a delta, keeps the stream id", () => {
  const a = bytes(5, 1);
  const b = bytes(9, 2);
  const input = concat(fmt0(6, 1000, 5, 9, 1), a, fmt1(6, 40, 9, 8), b);
  assertReads(input, [msg(6, 9, 1, 1000, a), msg(6, 8, 1, 1040, b)]);
});

Deno.test("chunk: type 2 header adds a delta and keeps length, type and stream id", () => {
  const a = bytes(4, 1);
  const b = bytes(4, 2);
  const c = bytes(4, 3);
  const input = concat(fmt0(5, 100, 4, 8, 1), a, fmt2(5, 23), b, fmt2(5, 24), c);
  assertReads(input, [msg(5, 8, 1, 100, a), msg(5, 8, 1, 123, b), msg(5, 8, 1, 147, c)]);
});

Deno.test("chunk: type 3 header starting a new message reuses the previous delta", () => {
  const p = [1, 2, 3, 4].map((s) => bytes(6, s));
  const input = concat(
    fmt0(4, 0, 6, 8, 1),
    p[0],
    fmt2(4, 23),
    p[1],
    fmt3(4),
    p[2],
    fmt3(4),
    p[3],
  );
  assertReads(input, [
    msg(4, 8, 1, 0, p[0]),
    msg(4, 8, 1, 23, p[1]),
    msg(4, 8, 1, 46, p[2]),
    msg(4, 8, 1, 69, p[3]),
  ]);
  // The same after a type 1 header.
  const q = [5, 6, 7].map((s) => bytes(3, s));
  const input1 = concat(fmt0(7, 10, 8, 9, 1), bytes(8), fmt1(7, 33, 3, 8), q[0], fmt3(7), q[1]);
  deepStrictEqual(readAll(input1).slice(1), [msg(7, 8, 1, 43, q[0]), msg(7, 8, 1, 76, q[1])]);
});

Deno.test("chunk: type 3 continuation chunks at the default chunk size of 128", () => {
  strictEqual(DEFAULT_CHUNK_SIZE, 128);
  const payload = bytes(300);
  const input = concat(
    fmt0(3, 5, 300, 20, 0),
    payload.subarray(0, 128),
    fmt3(3),
    payload.subarray(128, 256),
    fmt3(3),
    payload.subarray(256),
  );
  assertReads(input, [msg(3, 20, 0, 5, payload)]);
  // Continuation chunks do not move the timestamp.
  strictEqual(readAll(input)[0].timestamp, 5);
});

Deno.test("chunk: zero-length messages complete with their header", () => {
  // A type 3 after a type 0 repeats the type 0 timestamp as its delta (RTMP 1.0 §5.3.1.2.4).
  const input = concat(fmt0(3, 7, 0, 20, 0), fmt3(3), fmt1(3, 2, 0, 18));
  assertReads(input, [
    msg(3, 20, 0, 7, new Uint8Array(0)),
    msg(3, 20, 0, 14, new Uint8Array(0)),
    msg(3, 18, 0, 16, new Uint8Array(0)),
  ]);
});

// ---------------------------------------------------------------------------
// Chunk stream ids

Deno.test("chunk: chunk stream ids in 1-, 2- and 3-byte basic headers", () => {
  const cases: [number, number[]][] = [
    [2, [0x02]],
    [63, [0x3f]],
    [64, [0x00, 0x00]],
    [319, [0x00, 0xff]],
    [320, [0x01, 0x00, 0x01]],
    [65599, [0x01, 0xff, 0xff]],
  ];
  for (const [csid, header] of cases) {
    deepStrictEqual(basic(0, csid), header, `hand-built basic header for ${csid}`);
    const payload = bytes(200, csid);
    const input = concat(
      fmt0(csid, 1, 200, 9, 1),
      payload.subarray(0, 128),
      fmt3(csid),
      payload.subarray(128),
    );
    assertReads(input, [msg(csid, 9, 1, 1, payload)]);
    // encodeChunks writes exactly these bytes.
    deepStrictEqual(
      encodeChunks(msg(csid, 9, 1, 1, payload), 128),
      input,
      `encodeChunks for ${csid}`,
    );
  }
});

Deno.test("chunk: encodeChunks refuses chunk stream ids outside 2..65599", () => {
  for (const csid of [0, 1, 65600]) {
    throws(() => encodeChunks(msg(csid, 8, 1, 0, bytes(1)), 128), RangeError);
  }
});

// ---------------------------------------------------------------------------
// Timestamps

Deno.test("chunk: extended timestamp on type 0, repeated on every continuation chunk", () => {
  const ts = 0x01234567;
  const payload = bytes(300);
  const input = concat(
    fmt0(4, ts, 300, 9, 1),
    payload.subarray(0, 128),
    fmt3(4, ts),
    payload.subarray(128, 256),
    fmt3(4, ts),
    payload.subarray(256),
  );
  strictEqual(input[1] << 16 | input[2] << 8 | input[3], 0xffffff, "the field says extended");
  assertReads(input, [msg(4, 9, 1, ts, payload)]);
  deepStrictEqual(encodeChunks(msg(4, 9, 1, ts, payload), 128), input);
});

Deno.test("chunk: a timestamp of exactly 0xFFFFFF is sent extended", () => {
  const input = concat(fmt0(4, 0xffffff, 2, 9, 1), [1, 2]);
  strictEqual(input.length, 1 + 11 + 4 + 2);
  assertReads(input, [msg(4, 9, 1, 0xffffff, new Uint8Array([1, 2]))]);
  deepStrictEqual(encodeChunks(msg(4, 9, 1, 0xffffff, new Uint8Array([1, 2])), 128), input);
  // One below is not.
  strictEqual(encodeChunks(msg(4, 9, 1, 0xfffffe, new Uint8Array([1, 2])), 128).length, 14);
});

Deno.test("chunk: extended deltas on type 1 and 2; a type 3 new message reuses them", () => {
  const p = [1, 2, 3, 4, 5].map((s) => bytes(4, s));
  const big = 0x01000000;
  const input = concat(
    fmt0(5, 10, 4, 8, 1),
    p[0],
    fmt1(5, big, 4, 8),
    p[1],
    fmt2(5, big + 1),
    p[2],
    // A new message with a type 3 header after an extended delta: the 4 bytes come
    // again and the delta is reused.
    fmt3(5, big + 1),
    p[3],
    fmt2(5, 5),
    p[4],
  );
  assertReads(input, [
    msg(5, 8, 1, 10, p[0]),
    msg(5, 8, 1, 10 + big, p[1]),
    msg(5, 8, 1, 11 + 2 * big, p[2]),
    msg(5, 8, 1, 12 + 3 * big, p[3]),
    msg(5, 8, 1, 17 + 3 * big, p[4]),
  ]);
});

Deno.test("chunk: an extended message split in chunks after a type 2 extended delta", () => {
  const delta = 0x02000000;
  const a = bytes(10, 1);
  const b = bytes(150, 2);
  const input = concat(
    fmt0(6, 0, 10, 9, 1),
    a,
    fmt1(6, delta, 150, 9),
    b.subarray(0, 128),
    fmt3(6, delta),
    b.subarray(128),
  );
  assertReads(input, [msg(6, 9, 1, 0, a), msg(6, 9, 1, delta, b)]);
});

Deno.test("chunk: timestamps wrap modulo 2^32", () => {
  const a = bytes(2, 1);
  const b = bytes(2, 2);
  const input = concat(fmt0(4, 0xfffffff0, 2, 8, 1), a, fmt2(4, 0x20), b);
  assertReads(input, [msg(4, 8, 1, 0xfffffff0, a), msg(4, 8, 1, 0x10, b)]);
});

Deno.test("chunk: a type 0 header sets the absolute timestamp even going backwards", () => {
  const a = bytes(2, 1);
  const b = bytes(2, 2);
  const input = concat(fmt0(4, 5000, 2, 8, 1), a, fmt0(4, 100, 2, 8, 1), b);
  assertReads(input, [msg(4, 8, 1, 5000, a), msg(4, 8, 1, 100, b)]);
});

// ---------------------------------------------------------------------------
// Interleaving and chunk size

Deno.test("chunk: messages interleaved on two chunk streams", () => {
  const video = bytes(300, 1);
  const audio = bytes(200, 2);
  const input = concat(
    fmt0(6, 40, 300, 9, 1),
    video.subarray(0, 128),
    fmt0(4, 33, 200, 8, 1),
    audio.subarray(0, 128),
    fmt3(6),
    video.subarray(128, 256),
    fmt3(4),
    audio.subarray(128),
    fmt3(6),
    video.subarray(256),
  );
  assertReads(input, [msg(4, 8, 1, 33, audio), msg(6, 9, 1, 40, video)]);
});

Deno.test("chunk: Set Chunk Size applied between messages changes how the next is read", () => {
  const big = bytes(1000, 3);
  const input = concat(
    fmt0(2, 0, 4, 1, 0),
    u32be(4096),
    fmt0(3, 0, 1000, 20, 0),
    big,
  );
  const reader = new ChunkStreamReader(LIMITS);
  reader.push(input);
  const first = reader.next();
  ok(first);
  strictEqual(first.type, 1);
  // Without the caller applying it, the next message would be read at 128.
  reader.setChunkSize(new DataView(first.payload.buffer).getUint32(0));
  strictEqual(reader.chunkSize, 4096);
  deepStrictEqual(drain(reader), [msg(3, 20, 0, 0, big)]);
  strictEqual(reader.buffered, 0);
});

Deno.test("chunk: chunk sizes up to 0x7FFFFFFF are accepted; messages stay bounded", () => {
  const reader = new ChunkStreamReader({ maxMessageSize: 100_000, maxChunkSize: 0x7fffffff });
  reader.setChunkSize(0x7fffffff);
  const payload = bytes(100_000);
  reader.push(concat(fmt0(6, 0, payload.length, 9, 1), payload));
  deepStrictEqual(drain(reader), [msg(6, 9, 1, 0, payload)]);
  // One byte over the message bound is refused from the header alone, before any payload.
  reader.push(new Uint8Array(fmt0(6, 0, 100_001, 9, 1)));
  throws(() => reader.next(), RtmpError);
});

Deno.test("chunk: Set Chunk Size outside 1..2^31-1 or over the configured maximum is an RtmpError", () => {
  const reader = new ChunkStreamReader({ maxMessageSize: 1000, maxChunkSize: 65536 });
  for (const size of [0, -1, 0x80000000, 1.5, NaN, 65537]) {
    throws(() => reader.setChunkSize(size), RtmpError, `size ${size}`);
  }
  reader.setChunkSize(1);
  reader.setChunkSize(65536);
  strictEqual(reader.chunkSize, 65536);
});

Deno.test("chunk: chunk size 1 splits every byte into its own chunk", () => {
  const payload = bytes(5);
  const parts: (number[] | Uint8Array)[] = [fmt0(3, 0, 5, 20, 0), payload.subarray(0, 1)];
  for (let i = 1; i < 5; i++) parts.push(fmt3(3), payload.subarray(i, i + 1));
  const reader = new ChunkStreamReader(LIMITS);
  reader.setChunkSize(1);
  deepStrictEqual(readAll(concat(...parts), reader), [msg(3, 20, 0, 0, payload)]);
});

// ---------------------------------------------------------------------------
// Protocol violations

Deno.test("chunk: a message length over maxMessageSize is an RtmpError (type 0 and type 1)", () => {
  const limits = { maxMessageSize: 1000, maxChunkSize: 0x7fffffff };
  throws(() => readAll(new Uint8Array(fmt0(4, 0, 1001, 9, 1)), new ChunkStreamReader(limits)), {
    name: "RtmpError",
    message: /1001 bytes exceeds the configured maximum 1000/,
  });
  throws(
    () => readAll(new Uint8Array(fmt0(4, 0, 0xffffff, 9, 1)), new ChunkStreamReader(limits)),
    RtmpError,
  );
  const reader = new ChunkStreamReader(limits);
  reader.setChunkSize(1000);
  reader.push(concat(fmt0(4, 0, 1000, 9, 1), bytes(1000)));
  strictEqual(drain(reader).length, 1, "exactly the maximum is fine");
  reader.push(new Uint8Array(fmt1(4, 1, 1001, 9)));
  throws(() => reader.next(), RtmpError);
});

Deno.test("chunk: type 1, 2 or 3 header on a never-seen chunk stream is an RtmpError", () => {
  const headers = [fmt1(9, 0, 4, 8), fmt2(9, 0), fmt3(9)];
  for (const header of headers) {
    throws(() => readAll(concat(header, [1, 2, 3, 4])), {
      name: "RtmpError",
      message: /chunk stream 9: first chunk has header type [123], expected 0/,
    });
  }
  // Also when another chunk stream is known.
  throws(() => readAll(concat(fmt0(4, 0, 1, 8, 1), [0], fmt2(5, 0), [0])), RtmpError);
});

Deno.test("chunk: Abort drops a partial message; the chunk stream goes on", () => {
  const reader = new ChunkStreamReader(LIMITS);
  const dropped = bytes(300, 1);
  reader.push(concat(fmt0(6, 40, 300, 9, 1), dropped.subarray(0, 128)));
  deepStrictEqual(drain(reader), []);
  reader.abort(6);
  reader.abort(77); // unknown chunk streams are ignored
  const next = bytes(3, 2);
  reader.push(concat(fmt0(6, 80, 3, 9, 1), next));
  deepStrictEqual(drain(reader), [msg(6, 9, 1, 80, next)]);
  // A type 3 header after an abort starts a fresh message from the stored header, its
  // delta being the type 0 timestamp (80): the aborted one at 160, this one at 240.
  reader.setChunkSize(1);
  reader.push(concat(fmt3(6), [0xee]));
  deepStrictEqual(drain(reader), [], "one byte of three");
  reader.abort(6);
  const again = bytes(3, 3);
  reader.push(concat(fmt3(6), again.subarray(0, 1), fmt3(6), again.subarray(1, 2)));
  reader.push(concat(fmt3(6), again.subarray(2)));
  deepStrictEqual(drain(reader), [msg(6, 9, 1, 240, again)]);
});

Deno.test("chunk: a new header in the middle of a message replaces the partial message", () => {
  const full = bytes(4, 9);
  const input = concat(fmt0(4, 0, 300, 9, 1), bytes(128), fmt0(4, 50, 4, 8, 1), full);
  assertReads(input, [msg(4, 8, 1, 50, full)]);
});

Deno.test("chunk: more chunk streams than maxChunkStreams is an RtmpError", () => {
  const limits = { ...LIMITS, maxChunkStreams: 4 };
  const parts: number[][] = [];
  for (let csid = 3; csid < 7; csid++) parts.push(fmt0(csid, 0, 1, 8, 1), [csid]);
  const reader = new ChunkStreamReader(limits);
  strictEqual(readAll(concat(...parts), reader).length, 4);
  // Known chunk streams still work; a fifth does not.
  reader.push(concat(fmt2(3, 1), [0]));
  strictEqual(drain(reader).length, 1);
  reader.push(concat(fmt0(300, 0, 1, 8, 1), [0]));
  throws(() => reader.next(), { name: "RtmpError", message: /more than 4 chunk streams/ });
});

Deno.test("chunk: a 3-byte basic header and type 0 header arriving byte by byte", () => {
  const reader = new ChunkStreamReader({ ...LIMITS, maxChunkStreams: 1 });
  const header = fmt0(400, 0, 2, 8, 1);
  // Every prefix of the header first, then the rest: still one stream, one message.
  for (let i = 0; i < header.length; i++) {
    reader.push(new Uint8Array([header[i]]));
    strictEqual(reader.next(), undefined);
  }
  reader.push(new Uint8Array([1, 2]));
  deepStrictEqual(drain(reader), [msg(400, 8, 1, 0, new Uint8Array([1, 2]))]);
});

Deno.test("chunk: partially received messages are bounded in total", () => {
  const reader = new ChunkStreamReader({ maxMessageSize: 1000, maxChunkSize: 0x7fffffff });
  let caught: unknown;
  try {
    for (let csid = 3; csid < 10; csid++) {
      reader.push(concat(fmt0(csid, 0, 1000, 9, 1), bytes(128)));
      drain(reader);
    }
  } catch (err) {
    caught = err;
  }
  ok(caught instanceof RtmpError, "open messages past 2 × maxMessageSize are refused");
});

// ---------------------------------------------------------------------------
// Round trips

function randomMessage(rand: () => number, maxLength: number): RtmpMessage {
  const csidPick = rand();
  const csid = csidPick < 0.6
    ? randInt(rand, 2, 63)
    : csidPick < 0.8
    ? randInt(rand, 64, 319)
    : randInt(rand, 320, 65599);
  const timestamp = rand() < 0.3 ? randInt(rand, 0xffff00, 0xffffffff) : randInt(rand, 0, 100_000);
  const length = rand() < 0.1 ? 0 : randInt(rand, 1, maxLength);
  const payload = new Uint8Array(length);
  for (let i = 0; i < length; i++) payload[i] = Math.floor(rand() * 256);
  return {
    csid,
    type: randInt(rand, 3, 22),
    streamId: rand() < 0.5 ? randInt(rand, 0, 3) : randInt(rand, 0, 0xffffffff),
    timestamp,
    payload,
  };
}

Deno.test("chunk: encodeChunks → ChunkStreamReader round trips at many chunk sizes", () => {
  const rand = mulberry32(0x5eed);
  for (const chunkSize of [1, 2, 3, 7, 64, 128, 1000, 4096, 65536, 0x7fffffff]) {
    const messages = Array.from({ length: 40 }, () => randomMessage(rand, 3000));
    const input = concat(...messages.map((m) => encodeChunks(m, chunkSize)));
    const whole = new ChunkStreamReader({ ...LIMITS, maxChunkStreams: 64 });
    whole.setChunkSize(chunkSize);
    deepStrictEqual(readAll(input, whole), messages, `chunk size ${chunkSize}, one push`);
    strictEqual(whole.buffered, 0);

    // Random splits.
    const split = new ChunkStreamReader({ ...LIMITS, maxChunkStreams: 64 });
    split.setChunkSize(chunkSize);
    const got: RtmpMessage[] = [];
    for (let at = 0; at < input.length;) {
      const n = randInt(rand, 1, 700);
      split.push(input.subarray(at, at + n));
      at += n;
      got.push(...drain(split));
    }
    deepStrictEqual(got, messages, `chunk size ${chunkSize}, random splits`);
  }
});

Deno.test("chunk: round trip byte by byte with Set Chunk Size changes in between", () => {
  const rand = mulberry32(42);
  const parts: Uint8Array[] = [];
  const expected: RtmpMessage[] = [];
  let size = DEFAULT_CHUNK_SIZE;
  for (let i = 0; i < 30; i++) {
    if (i % 5 === 4) {
      const next = [1, 50, 128, 4096, 60000][randInt(rand, 0, 4)];
      const set = msg(2, 1, 0, 0, new Uint8Array(u32be(next)));
      parts.push(encodeChunks(set, size));
      expected.push(set);
      size = next;
    }
    const m = randomMessage(rand, 2000);
    parts.push(encodeChunks(m, size));
    expected.push(m);
  }
  const reader = new ChunkStreamReader(LIMITS);
  const input = concat(...parts);
  const got: RtmpMessage[] = [];
  for (let i = 0; i < input.length; i++) {
    reader.push(input.subarray(i, i + 1));
    let m: RtmpMessage | undefined;
    while ((m = reader.next()) !== undefined) {
      got.push(m);
      if (m.type === 1) reader.setChunkSize(new DataView(m.payload.buffer).getUint32(0));
    }
  }
  deepStrictEqual(got, expected);
});

// ---------------------------------------------------------------------------
// Fuzzing: only RtmpError may escape; no hang; the buffer stays bounded.

const FUZZ_LIMITS = { maxMessageSize: 64 * 1024, maxChunkSize: 0x7fffffff, maxChunkStreams: 8 };

/**
 * Feeds `input` in random pieces the way the session does (applying Set Chunk Size
 * and Abort), and checks the invariants. Returns the messages read before the end
 * or the first RtmpError.
 */
function fuzzOne(input: Uint8Array, rand: () => number): { messages: number; error?: RtmpError } {
  const reader = new ChunkStreamReader(FUZZ_LIMITS);
  let messages = 0;
  let pushed = 0;
  try {
    for (let at = 0; at < input.length;) {
      const n = rand() < 0.3 ? 1 : randInt(rand, 1, 300);
      const piece = input.subarray(at, at + n);
      reader.push(piece);
      pushed += piece.length;
      at += n;
      let m: RtmpMessage | undefined;
      while ((m = reader.next()) !== undefined) {
        messages++;
        // Each message consumes at least its one-byte basic header: more would be a loop.
        if (messages > pushed) throw new Error(`${messages} messages out of ${pushed} bytes`);
        if (m.payload.length > FUZZ_LIMITS.maxMessageSize) {
          throw new Error(`message of ${m.payload.length} bytes passed the bound`);
        }
        if (m.type === 1 || m.type === 2) {
          if (m.payload.length < 4) throw new RtmpError("control message too short");
          const value = new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0);
          if (m.type === 1) reader.setChunkSize(value & 0x7fffffff);
          else reader.abort(value);
        }
      }
      // Whatever is left is at most one incomplete chunk.
      if (reader.buffered >= MAX_CHUNK_HEADER + FUZZ_LIMITS.maxMessageSize) {
        throw new Error(`reader holds ${reader.buffered} bytes`);
      }
    }
  } catch (err) {
    if (err instanceof RtmpError) return { messages, error: err };
    throw new Error(`input ${hex(input)} threw a non-RtmpError: ${err}`, { cause: err });
  }
  return { messages };
}

function hex(b: Uint8Array): string {
  const shown = [...b.subarray(0, 64)].map((x) => x.toString(16).padStart(2, "0")).join("");
  return b.length > 64 ? `${shown}… (${b.length} bytes)` : shown;
}

/** A valid chunk stream with a Set Chunk Size, interleaving and extended timestamps. */
function validStream(rand: () => number): Uint8Array {
  const parts: Uint8Array[] = [];
  let size = DEFAULT_CHUNK_SIZE;
  const count = randInt(rand, 1, 8);
  for (let i = 0; i < count; i++) {
    if (rand() < 0.2) {
      const next = randInt(rand, 3, 512);
      parts.push(encodeChunks(msg(2, 1, 0, 0, new Uint8Array(u32be(next))), size));
      size = next;
    }
    const m = randomMessage(rand, 600);
    parts.push(encodeChunks({ ...m, csid: randInt(rand, 2, 6) }, size));
    if (rand() < 0.2) {
      // Relative headers by hand, so type 1/2/3 paths get mutated too.
      const csid = randInt(rand, 2, 6);
      parts.push(
        concat(fmt0(csid, 100, 3, 8, 1), [1, 2, 3], fmt2(csid, 0xffffff + 3), [4, 5, 6]),
        concat(fmt3(csid, 0xffffff + 3), [7, 8, 9], fmt1(csid, 20, 2, 9), [1, 2]),
      );
    }
  }
  return concat(...parts);
}

function mutate(input: Uint8Array, rand: () => number): Uint8Array {
  let out: Uint8Array = input.slice();
  const edits = randInt(rand, 1, 6);
  for (let e = 0; e < edits; e++) {
    const at = out.length ? randInt(rand, 0, out.length - 1) : 0;
    switch (randInt(rand, 0, 6)) {
      case 0: // flip a bit
        if (out.length) out[at] ^= 1 << randInt(rand, 0, 7);
        break;
      case 1: // overwrite a byte
        if (out.length) out[at] = randInt(rand, 0, 255);
        break;
      case 2: // an interesting value
        if (out.length) {
          out[at] = [0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff][randInt(rand, 0, 7)];
        }
        break;
      case 3: // insert random bytes
        out = concat(
          out.subarray(0, at),
          Array.from({ length: randInt(rand, 1, 8) }, () => randInt(rand, 0, 255)),
          out.subarray(at),
        );
        break;
      case 4: // delete a run
        out = concat(out.subarray(0, at), out.subarray(at + randInt(rand, 1, 16)));
        break;
      case 5: // truncate
        out = out.slice(0, at);
        break;
      case 6: { // duplicate a run
        const end = Math.min(out.length, at + randInt(rand, 1, 64));
        out = concat(out.subarray(0, end), out.subarray(at, end), out.subarray(end));
        break;
      }
    }
  }
  return out;
}

Deno.test("chunk fuzz: random byte strings throw only RtmpError", () => {
  const rand = mulberry32(0xdecafbad);
  let errors = 0;
  for (let i = 0; i < 4000; i++) {
    const length = randInt(rand, 0, 800);
    const input = new Uint8Array(length);
    for (let j = 0; j < length; j++) input[j] = Math.floor(rand() * 256);
    // Half the time start with a type 0 header so the parser gets past the first byte.
    if (length && rand() < 0.5) input[0] &= 0x3f;
    if (fuzzOne(input, rand).error) errors++;
  }
  ok(errors > 0, "random bytes do trip the checks");
});

Deno.test("chunk fuzz: mutated valid chunk streams throw only RtmpError", () => {
  const rand = mulberry32(0xc0ffee);
  let clean = 0;
  let messages = 0;
  for (let i = 0; i < 5000; i++) {
    const valid = validStream(rand);
    if (i % 10 === 0) {
      const result = fuzzOne(valid, rand);
      strictEqual(result.error, undefined, "the unmutated stream reads cleanly");
    }
    const result = fuzzOne(mutate(valid, rand), rand);
    if (!result.error) clean++;
    messages += result.messages;
  }
  ok(clean > 0 && messages > 0, "some mutations still read, so deeper paths ran");
});

Deno.test("chunk fuzz: huge announced lengths never make the reader buffer past its bound", () => {
  const rand = mulberry32(7);
  const limits = { maxMessageSize: 4096, maxChunkSize: 0x7fffffff };
  for (let i = 0; i < 500; i++) {
    const reader = new ChunkStreamReader(limits);
    reader.setChunkSize(0x7fffffff);
    const length = randInt(rand, 0, 0xffffff);
    reader.push(new Uint8Array(fmt0(randInt(rand, 2, 65599), 0, length, 9, 1)));
    if (length > limits.maxMessageSize) {
      throws(() => reader.next(), RtmpError);
      continue;
    }
    // Within the bound: the reader waits for exactly the payload.
    strictEqual(reader.next(), undefined);
    reader.push(new Uint8Array(length));
    const m = reader.next();
    strictEqual(m?.payload.length, length);
    strictEqual(reader.buffered, 0);
  }
});
