/**
 * Ingest and packetization throughput: how fast the RTMP chunk reader, the FLV
 * parser and the H.264 RTP packetizer go on one core, from a recorded ffmpeg session.
 */
import { ChunkStreamReader } from "../lib/rtmp/chunk.ts";
import { parseAudioTagBody, parseVideoTagBody } from "../lib/flv/mod.ts";
import { iterateAvccNalUnits } from "../lib/codec/mod.ts";
import { packetizeH264 } from "../lib/webrtc/h264_packetizer.ts";
import type { VideoFrame } from "../lib/media.ts";

const session = await Deno.readFile(
  new URL("../tests/fixtures/ffmpeg-publish-session.bin", import.meta.url),
);
const body = session.subarray(1 + 1536 + 1536);

function parseAll(): { messages: number; frames: VideoFrame[] } {
  const reader = new ChunkStreamReader({
    maxMessageSize: 16 << 20,
    maxChunkSize: 0x7fffffff,
  });
  reader.push(body);
  let messages = 0;
  const frames: VideoFrame[] = [];
  for (let m = reader.next(); m; m = reader.next()) {
    messages++;
    if (m.type === 1) {
      reader.setChunkSize(
        new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0),
      );
    }
    if (m.type === 9) {
      for (const u of parseVideoTagBody(m.payload, m.timestamp)) {
        if (u.kind === "video") frames.push(u);
      }
    } else if (m.type === 8) parseAudioTagBody(m.payload, m.timestamp);
  }
  return { messages, frames };
}

// Steady state: one long-lived reader fed 64 KiB reads of 4096-byte chunks, as a socket does.
{
  const { encodeChunks } = await import("../lib/rtmp/chunk.ts");
  const msgs = Deno.args.includes("--quick") ? 500 : 2000;
  const payload = new Uint8Array(20_000).fill(0x17);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < msgs; i++) {
    parts.push(
      encodeChunks({
        csid: 6,
        type: 9,
        streamId: 1,
        timestamp: i * 33,
        payload,
      }, 4096),
    );
  }
  const stream = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    stream.set(p, o);
    o += p.length;
  }
  const run = () => {
    const reader = new ChunkStreamReader({
      maxMessageSize: 16 << 20,
      maxChunkSize: 0x7fffffff,
    });
    reader.setChunkSize(4096);
    const start = performance.now();
    let n = 0;
    for (let off = 0; off < stream.length; off += 65536) {
      reader.push(stream.subarray(off, off + 65536));
      while (reader.next()) n++;
    }
    return { n, secs: (performance.now() - start) / 1000 };
  };
  for (let i = 0; i < 3; i++) run(); // let the JIT settle
  const { n: got, secs } = run();
  console.log(
    `chunk reader, steady state: ${(stream.length / secs / 1e6).toFixed(0)} MB/s ` +
      `(${got} messages of 20 kB; ${(stream.length * 8 / secs / 1e9).toFixed(2)} Gbit/s per core)`,
  );
}

const { messages, frames } = parseAll();
const rounds = Deno.args.includes("--quick") ? 100 : 400;
for (let i = 0; i < 30; i++) parseAll(); // warm-up
for (let i = 0; i < 30; i++) {
  for (const f of frames) packetizeH264([...iterateAvccNalUnits(f.data)]);
}
let t0 = performance.now();
for (let i = 0; i < rounds; i++) parseAll();
let ms = performance.now() - t0;
const mbps = (body.length * rounds * 8) / (ms / 1000) / 1e6;
console.log(
  `recorded ffmpeg session, fresh reader each pass + FLV parse: ${
    (body.length * rounds / 1e6 / (ms / 1000)).toFixed(0)
  } MB/s ` +
    `(${mbps.toFixed(0)} Mbit/s of RTMP per core; ${messages} messages a pass)`,
);

t0 = performance.now();
let packets = 0;
for (let i = 0; i < rounds; i++) {
  for (const f of frames) {
    packets += packetizeH264([...iterateAvccNalUnits(f.data)]).length;
  }
}
ms = performance.now() - t0;
console.log(
  `packetizer: ${(packets / (ms / 1000) / 1e6).toFixed(2)} M RTP payloads/s ` +
    `(${((ms * 1000) / packets).toFixed(2)} µs per payload, once per room)`,
);
