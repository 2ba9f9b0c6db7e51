/**
 * The per-viewer sequencing on top of a room's shared RTP: a real room and room
 * stream fed real H.264 access units; the viewer's transport records what it sends.
 */
import assert from "node:assert/strict";
import { PublishKeys, RoomRegistry } from "../../lib/room/mod.ts";
import { RoomStream } from "../../lib/webrtc/room_stream.ts";
import { Viewer } from "../../lib/webrtc/viewer.ts";
import type { SharedRtp, ViewerTransport } from "../../lib/webrtc/transport.ts";
import { logger } from "../../lib/log.ts";
import { nalUnitsToAvcc } from "../../lib/codec/mod.ts";

const log = logger("test");
// A real avcC (x264 640x360 High) so the room parses its SPS.
const SPS = Uint8Array.from([
  0x67,
  0x64,
  0x00,
  0x1e,
  0xac,
  0xd9,
  0x40,
  0xa0,
  0x2f,
  0xf9,
  0x70,
  0x11,
  0x00,
  0x00,
  0x03,
  0x00,
  0x01,
  0x00,
  0x00,
  0x03,
  0x00,
  0x3c,
  0x0f,
  0x16,
  0x2d,
  0x96,
]);
const PPS = Uint8Array.from([0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
const AVCC = Uint8Array.from([
  1,
  0x64,
  0x00,
  0x1e,
  0xff,
  0xe1,
  0,
  SPS.length,
  ...SPS,
  1,
  0,
  PPS.length,
  ...PPS,
]);

class RecordingTransport implements ViewerTransport {
  sent: SharedRtp[] = [];
  connected = true;
  inFlight = 0;
  answer() {
    return Promise.resolve("");
  }
  addCandidate() {
    return Promise.resolve();
  }
  remoteUfrag = undefined;
  restartIce() {
    return Promise.reject(new Error("not in this test"));
  }
  sendVideoFrame(packets: readonly SharedRtp[], firstSeq: number, timestamp: number) {
    packets.forEach((p, i) =>
      this.sent.push({ ...p, sequenceNumber: (firstSeq + i) & 0xffff, timestamp })
    );
  }
  sendAudio() {}
  close() {
    return Promise.resolve();
  }
}

function setup() {
  const rooms = new RoomRegistry({
    maxRooms: 10,
    maxViewers: 10,
    maxGopBytes: 1 << 20,
    keys: new PublishKeys({}),
    log,
  });
  const grant = rooms.publish({ room: "r", key: null, remoteAddress: "test" });
  assert.ok(grant.ok);
  const pub = grant.publication;
  pub.push({ kind: "video-config", codec: "h264", dts: 0, record: AVCC });
  let dts = 0;
  const frame = (keyframe: boolean, size = 3000) => {
    const n = new Uint8Array(size).fill(7);
    n[0] = keyframe ? 0x65 : 0x41;
    pub.push({ kind: "video", codec: "h264", dts, cts: 0, keyframe, data: nalUnitsToAvcc([n]) });
    dts += 33;
  };
  return { rooms, room: grant.room, pub, frame };
}

function assertContiguous(sent: SharedRtp[]) {
  for (let i = 1; i < sent.length; i++) {
    assert.equal(sent[i].sequenceNumber, (sent[i - 1].sequenceNumber + 1) & 0xffff, `seq at ${i}`);
    assert.ok(
      ((sent[i].timestamp - sent[i - 1].timestamp) >>> 0) < 0x80000000,
      `timestamp goes forward at ${i}`,
    );
  }
}

Deno.test("viewer: joining mid-GOP replays the GOP squeezed in time, then continues live", () => {
  const { room, frame, pub } = setup();
  frame(true);
  for (let i = 0; i < 9; i++) frame(false);
  const stream = new RoomStream(room, log, 1 << 20);
  room.subscribe(stream);
  const t = new RecordingTransport();
  const viewer = new Viewer(t, stream, { maxInFlight: 100, minReplayIntervalMs: 0 }, () => {});
  stream.add(viewer);
  viewer.connected();
  assert.equal(viewer.counters.replays, 1);
  const burst = t.sent.length;
  assert.ok(burst >= 10 * 3, "the whole GOP went out");
  const frameTs = [...new Set(t.sent.map((p) => p.timestamp))];
  assert.equal(frameTs.length, 10);
  assert.ok(frameTs[9] - frameTs[0] === 9, "squeezed to one tick apart");
  for (let i = 0; i < 5; i++) frame(false);
  assert.ok(t.sent.length > burst);
  assertContiguous(t.sent);
  assert.ok(
    t.sent[burst].timestamp - t.sent[burst - 1].timestamp >= 2900,
    "live keeps real spacing",
  );
  pub.end("unpublished");
});

Deno.test("viewer: a PLI replays from the cached keyframe without a sequence gap", () => {
  const { room, frame } = setup();
  const stream = new RoomStream(room, log, 1 << 20);
  room.subscribe(stream);
  const t = new RecordingTransport();
  const viewer = new Viewer(t, stream, { maxInFlight: 100, minReplayIntervalMs: 0 }, () => {});
  stream.add(viewer);
  viewer.connected(); // nothing cached yet: waits for a keyframe
  frame(false);
  assert.equal(t.sent.length, 0, "no picture before a keyframe");
  frame(true);
  frame(false);
  frame(false);
  const before = t.sent.length;
  viewer.keyframeRequest();
  assert.equal(viewer.counters.replays, 1);
  assert.ok(t.sent.length > before);
  frame(false);
  assertContiguous(t.sent);
});

Deno.test("viewer: a slow viewer drops to the next keyframe and resumes without a gap", () => {
  const { room, frame } = setup();
  const stream = new RoomStream(room, log, 1 << 20);
  room.subscribe(stream);
  const t = new RecordingTransport();
  const viewer = new Viewer(t, stream, { maxInFlight: 10, minReplayIntervalMs: 0 }, () => {});
  stream.add(viewer);
  frame(true);
  frame(false);
  t.inFlight = 50; // the send path is backed up
  frame(false);
  frame(false);
  t.inFlight = 0;
  frame(false); // still dropping: not a keyframe
  assert.equal(viewer.counters.framesDropped, 3);
  frame(true);
  frame(false);
  assertContiguous(t.sent);
  assert.equal(viewer.counters.framesSent, 4);
});

Deno.test("room stream: a publisher reconnect keeps sequence numbers and moves timestamps forward", () => {
  const { rooms, room, frame, pub } = setup();
  const stream = new RoomStream(room, log, 1 << 20);
  room.subscribe(stream);
  const t = new RecordingTransport();
  const viewer = new Viewer(t, stream, { maxInFlight: 100, minReplayIntervalMs: 0 }, () => {});
  stream.add(viewer);
  room.join(); // a viewer keeps the room while the publisher is away
  frame(true);
  frame(false);
  pub.end("disconnected");
  const again = rooms.publish({ room: "r", key: null, remoteAddress: "test" });
  assert.ok(again.ok);
  again.publication.push({ kind: "video-config", codec: "h264", dts: 0, record: AVCC });
  const n = new Uint8Array(2000).fill(1);
  n[0] = 0x65;
  again.publication.push({
    kind: "video",
    codec: "h264",
    dts: 0,
    cts: 0,
    keyframe: true,
    data: nalUnitsToAvcc([n]),
  });
  assertContiguous(t.sent);
});

Deno.test("room stream: a dropped publisher makes viewers wait, ended after the grace period", async () => {
  const { room, pub, rooms } = setup();
  const stream = new RoomStream(room, log, 1 << 20, undefined, 50);
  room.subscribe(stream);
  const states: string[] = [];
  stream.add({ video() {}, audio() {}, roomState: (s) => states.push(s) });
  room.join();
  pub.end("disconnected");
  assert.deepEqual(states, ["waiting"]);
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(states, ["waiting", "ended"]);
  const again = rooms.publish({ room: "r", key: null, remoteAddress: "test" });
  assert.ok(again.ok);
  assert.deepEqual(states, ["waiting", "ended", "live"]);
  again.publication.end("unpublished");
  assert.deepEqual(states, ["waiting", "ended", "live", "ended"], "a deliberate stop ends at once");
  stream.dispose();
});
