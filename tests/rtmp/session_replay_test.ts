/**
 * Replays a real ffmpeg publish recorded with tests/support/record_rtmp.ts:
 *
 * ```sh
 * deno run -A main.ts --rtmp-port 0 --http-port 0 --host 127.0.0.1   # note rtmp=<port>
 * deno run -A tests/support/record_rtmp.ts --target 127.0.0.1:<port> \
 *   --out tests/fixtures/ffmpeg-publish-session.bin                  # note port=<proxy>
 * ffmpeg -nostdin -re -f lavfi -i testsrc2=size=320x240:rate=15 -f lavfi -i sine -t 2 \
 *   -c:v libx264 -preset veryfast -tune zerolatency -g 15 -b:v 200k -c:a aac -b:a 32k \
 *   -f flv rtmp://127.0.0.1:<proxy>/live/rec
 * ```
 *
 * The fixture holds every byte ffmpeg sent: C0+C1, C2, then the chunk stream.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { ChunkStreamReader, type RtmpMessage } from "../../lib/rtmp/chunk.ts";
import { amfProp, amfString, decodeAmf0 } from "../../lib/rtmp/amf0.ts";
import { HANDSHAKE_SIZE } from "../../lib/rtmp/handshake.ts";
import { MessageType } from "../../lib/rtmp/messages.ts";
import type { RoomEvent, RoomSnapshot } from "../../mod.ts";
import { defaultConfig, startServer } from "../../mod.ts";
import { mulberry32 } from "../support/prng.ts";

const FIXTURE = new URL("../fixtures/ffmpeg-publish-session.bin", import.meta.url);
const HANDSHAKE_BYTES = 1 + 2 * HANDSHAKE_SIZE;

// What the recording holds. `ffprobe -count_packets` on the same ffmpeg command written
// to an FLV file reports 30 video packets (320x240) and 88 audio packets; over RTMP
// ffmpeg adds an AVC sequence header, an AVC end-of-sequence and an AAC
// AudioSpecificConfig message.
const VIDEO_FRAMES = 30;
const AUDIO_FRAMES = 88;
const KEYFRAMES = 2; // -g 15 over 30 frames
const VIDEO_MESSAGES = VIDEO_FRAMES + 2;
const AUDIO_MESSAGES = AUDIO_FRAMES + 1;
const WIDTH = 320;
const HEIGHT = 240;

const LIMITS = { maxMessageSize: 16 * 1024 * 1024, maxChunkSize: 0x7fffffff };

function u32(payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0);
}

/** A message and the offset (in the bytes fed) just past the byte that completed it. */
interface Read {
  readonly message: RtmpMessage;
  readonly end: number;
}

/** Reads a chunk stream fed in pieces of `step` bytes, applying Set Chunk Size as it comes. */
function readChunkStream(bytes: Uint8Array, step: number): Read[] {
  const reader = new ChunkStreamReader(LIMITS);
  const out: Read[] = [];
  for (let at = 0; at < bytes.length; at += step) {
    reader.push(bytes.subarray(at, at + step));
    let message: RtmpMessage | undefined;
    while ((message = reader.next()) !== undefined) {
      out.push({ message, end: Math.min(at + step, bytes.length) });
      if (message.type === MessageType.SET_CHUNK_SIZE) {
        reader.setChunkSize(u32(message.payload) & 0x7fffffff);
      }
    }
  }
  strictEqual(reader.buffered, 0, "nothing left over");
  return out;
}

/** The command or data name a message starts with, if it is one. */
function commandName(message: RtmpMessage): string | undefined {
  if (message.type !== MessageType.COMMAND_AMF0 && message.type !== MessageType.DATA_AMF0) {
    return undefined;
  }
  return amfString(decodeAmf0(message.payload)[0]);
}

async function loadChunkStream(): Promise<{ session: Uint8Array; chunks: Uint8Array }> {
  const session = await Deno.readFile(FIXTURE);
  ok(session.length < 150 * 1024, "the fixture stays small");
  strictEqual(session[0], 3, "C0");
  return { session, chunks: session.subarray(HANDSHAKE_BYTES) };
}

Deno.test("session replay: byte at a time reads the same messages as one push", async () => {
  const { chunks } = await loadChunkStream();
  const whole = readChunkStream(chunks, chunks.length).map((r) => r.message);
  const byByte = readChunkStream(chunks, 1).map((r) => r.message);
  strictEqual(byByte.length, whole.length);
  for (let i = 0; i < whole.length; i++) {
    const a = whole[i];
    const b = byByte[i];
    deepStrictEqual(
      [b.type, b.csid, b.streamId, b.timestamp],
      [a.type, a.csid, a.streamId, a.timestamp],
      `message ${i}`,
    );
    deepStrictEqual(b.payload, a.payload, `payload of message ${i}`);
  }

  // What an ffmpeg publish consists of, in order.
  const names = whole.map(commandName).filter((n) => n !== undefined);
  deepStrictEqual(names, [
    "connect",
    "releaseStream",
    "FCPublish",
    "createStream",
    "publish",
    "@setDataFrame",
    "FCUnpublish",
    "deleteStream",
  ]);
  const setChunkSize = whole.filter((m) => m.type === MessageType.SET_CHUNK_SIZE);
  strictEqual(setChunkSize.length, 1);
  strictEqual(u32(setChunkSize[0].payload), 4096);

  const video = whole.filter((m) => m.type === MessageType.VIDEO);
  const audio = whole.filter((m) => m.type === MessageType.AUDIO);
  strictEqual(video.length, VIDEO_MESSAGES);
  strictEqual(audio.length, AUDIO_MESSAGES);
  // FLV tag bodies: AVC packet type 0 = sequence header, 1 = NALUs, 2 = end of sequence.
  const avcTypes = video.map((m) => m.payload[1]);
  strictEqual(avcTypes.filter((t) => t === 0).length, 1);
  strictEqual(avcTypes.filter((t) => t === 1).length, VIDEO_FRAMES);
  strictEqual(avcTypes.filter((t) => t === 2).length, 1);
  strictEqual(video.filter((m) => m.payload[1] === 1 && m.payload[0] >> 4 === 1).length, KEYFRAMES);
  strictEqual(audio.filter((m) => m.payload[1] === 0).length, 1, "one AudioSpecificConfig");
  ok(audio.every((m) => m.payload[0] >> 4 === 10), "all AAC");

  // Media goes to the published stream with timestamps that never go backwards.
  const publish = whole.find((m) => commandName(m) === "publish")!;
  ok(publish.streamId !== 0);
  for (const media of [video, audio]) {
    ok(media.every((m) => m.streamId === publish.streamId));
    for (let i = 1; i < media.length; i++) ok(media[i].timestamp >= media[i - 1].timestamp);
  }
  ok(video.at(-1)!.timestamp > 1800 && video.at(-1)!.timestamp < 2100, "about two seconds");
});

/** Writes `bytes` in random pieces of 1..37 bytes, yielding now and then so they arrive apart. */
async function writeInPieces(
  conn: Deno.Conn,
  bytes: Uint8Array,
  rand: () => number,
): Promise<number> {
  let writes = 0;
  for (let at = 0; at < bytes.length;) {
    const n = Math.min(bytes.length - at, 1 + Math.floor(rand() * 37));
    let done = 0;
    while (done < n) done += await conn.write(bytes.subarray(at + done, at + n));
    at += n;
    writes++;
    if (writes % 4 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  return writes;
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = fn();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test("session replay: the real server takes the recorded publish in small writes", async () => {
  const { session, chunks } = await loadChunkStream();
  // Split where the last media message is complete, so the room can be checked live
  // before the recorded FCUnpublish/deleteStream end it.
  const reads = readChunkStream(chunks, 1);
  const lastMedia = reads.findLast((r) =>
    r.message.type === MessageType.VIDEO || r.message.type === MessageType.AUDIO
  )!;
  const cut = HANDSHAKE_BYTES + lastMedia.end;

  const dataDir = await Deno.makeTempDir({ prefix: "sluice-replay-" });
  const server = await startServer(
    defaultConfig({ host: "127.0.0.1", rtmpPort: 0, httpPort: 0, dataDir }),
  );
  const events: RoomEvent[] = [];
  const unsubscribe = server.rooms.onEvent((e) => events.push(e));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.rtmpPort });
  try {
    conn.setNoDelay(true);
    // The server's replies, read in the background until it closes.
    const replies = (async () => {
      const parts: Uint8Array[] = [];
      const buf = new Uint8Array(16 * 1024);
      try {
        while (true) {
          const n = await conn.read(buf);
          if (n === null) break;
          parts.push(buf.slice(0, n));
        }
      } catch { /* closed under us */ }
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.length;
      }
      return all;
    })();

    const rand = mulberry32(0x5e55);
    const started = Date.now();
    const writes = await writeInPieces(conn, session.subarray(0, cut), rand);
    ok(writes > 1000, `sent in ${writes} small writes`);

    const snapshot = await waitFor("all frames to reach the room", () => {
      const s: RoomSnapshot | undefined = server.rooms.get("rec")?.snapshot();
      return s?.frames?.video === VIDEO_FRAMES && s.frames.audio === AUDIO_FRAMES ? s : undefined;
    });
    strictEqual(snapshot.live, true);
    strictEqual(snapshot.video?.codec, "h264");
    strictEqual(snapshot.video?.width, WIDTH);
    strictEqual(snapshot.video?.height, HEIGHT);
    strictEqual(snapshot.audio?.codec, "aac");
    strictEqual(snapshot.frames?.keyframes, KEYFRAMES);
    strictEqual(snapshot.bFrames, false);

    // The HTTP API says the same.
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/api/rooms/rec`);
    strictEqual(res.status, 200);
    const api = await res.json() as RoomSnapshot;
    strictEqual(api.live, true);
    strictEqual(api.video?.width, WIDTH);
    strictEqual(api.video?.height, HEIGHT);
    deepStrictEqual(api.frames, snapshot.frames);

    // The rest of the recording unpublishes.
    await writeInPieces(conn, session.subarray(cut), rand);
    const stopped = await waitFor(
      "stream.stopped",
      () => events.find((e) => e.type === "stream.stopped"),
    );
    strictEqual(stopped.type, "stream.stopped");
    if (stopped.type === "stream.stopped") {
      strictEqual(stopped.reason, "unpublished");
      deepStrictEqual(stopped.stream.frames, {
        video: VIDEO_FRAMES,
        audio: AUDIO_FRAMES,
        keyframes: KEYFRAMES,
      });
    }
    deepStrictEqual(events.map((e) => e.type), ["stream.started", "stream.stopped"]);
    strictEqual(server.rooms.get("rec")?.snapshot().live ?? false, false);
    ok(Date.now() - started < 30_000);

    // Client done: the server closes its side, and its replies parse as RTMP.
    await conn.closeWrite();
    const reply = await replies;
    strictEqual(reply[0], 3, "S0");
    const answers = readChunkStream(reply.subarray(HANDSHAKE_BYTES), 1).map((r) => r.message);
    const statuses = answers
      .filter((m) => m.type === MessageType.COMMAND_AMF0)
      .map((m) => decodeAmf0(m.payload))
      .map(([name, , , info]) => {
        const code = amfString(amfProp(info, "code"));
        return `${amfString(name)}${code ? ` ${code}` : ""}`;
      });
    ok(statuses.includes("_result NetConnection.Connect.Success"), statuses.join(", "));
    ok(statuses.includes("onStatus NetStream.Publish.Start"), statuses.join(", "));
    ok(statuses.includes("onStatus NetStream.Unpublish.Success"), statuses.join(", "));
  } finally {
    unsubscribe();
    try {
      conn.close();
    } catch { /* already closed */ }
    await server.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
