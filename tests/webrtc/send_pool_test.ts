/**
 * The native send pool (sf_pool_*, native/fanout.c): several threads each sending
 * a room frame to their share of the viewers. Real sockets on loopback, receivers
 * that decrypt and count every packet: each viewer gets every frame, in order,
 * under its own keys, while viewers leave (socket closed, SRTP context destroyed)
 * with frames of theirs still queued on a lane.
 */
import assert from "node:assert/strict";
import {
  loadFanout,
  NativeLoop,
  POOL_TARGET_BYTES,
  poolTarget,
  SendPool,
  setPoolFrame,
  SrtpContext,
  SrtpProfile,
} from "../../lib/webrtc/fast/ffi.ts";
import { mulberry32 } from "../support/prng.ts";

const lib = loadFanout();
const ignore = lib instanceof Error;
if (ignore) console.warn(`skipping send pool tests: ${lib.message}`);

Deno.test({
  name:
    "send pool: 3 lanes, 60 viewers, every frame to every viewer in order, audio alongside; leavers are safe",
  ignore,
  async fn() {
    const fanout = lib as Exclude<typeof lib, Error>;
    const tx = new NativeLoop(fanout);
    const rx = new NativeLoop(fanout);
    const pool = new SendPool(fanout, 3);
    const rand = mulberry32(11);
    const VIEWERS = 60, FRAMES = 40, LEAVERS = [5, 17, 33, 48];
    const viewers = Array.from({ length: VIEWERS }, (_, i) => {
      const profile = i % 2 ? SrtpProfile.AEAD_AES_128_GCM : SrtpProfile.AES128_CM_HMAC_SHA1_80;
      const key = Uint8Array.from({ length: 16 }, () => rand() * 256);
      const salt = Uint8Array.from({ length: profile === 7 ? 12 : 14 }, () => rand() * 256);
      const out = tx.open(4, "127.0.0.1");
      const inn = rx.open(4, "127.0.0.1");
      const sink = new SrtpContext(fanout, profile, key, salt);
      rx.setSink(inn.slot, sink);
      const srtp = new SrtpContext(fanout, profile, key, salt);
      const record = poolTarget({
        lane: i % pool.lanes,
        payloadType: 102,
        slot: out.slot,
        ssrc: 1000 + i,
        srtp: srtp.handle,
        sockaddr: tx.sockaddr("127.0.0.1", inn.port),
      });
      return { out, inn, sink, srtp, record, firstSeq: Math.floor(rand() * 65536) };
    });
    try {
      assert.equal(pool.lanes, 3);
      const sizes = [1200, 1200, 1200, 1200, 640, 1200, 90];
      const payloads = new Uint8Array(sizes.reduce((a, b) => a + b, 0)).map(() => rand() * 256);
      const lens = Uint16Array.from(sizes, (n, i) => n | (i === sizes.length - 1 ? 0x8000 : 0));
      const audio = new Uint8Array(160).map(() => rand() * 256);
      const targets = new Uint8Array(VIEWERS * POOL_TARGET_BYTES);
      const view = new DataView(targets.buffer);
      const gone = new Set<number>();
      for (let f = 0; f < FRAMES; f++) {
        let count = 0;
        viewers.forEach((v, i) => {
          if (gone.has(i)) return;
          targets.set(v.record, count * POOL_TARGET_BYTES);
          setPoolFrame(view, count * POOL_TARGET_BYTES, v.firstSeq + f * sizes.length, f * 3000);
          count++;
        });
        const queued = pool.sendFrame(tx, payloads, lens, targets, count, 0);
        assert.equal(queued, count, `frame ${f}: ${queued} of ${count} queued`);
        // Audio from the main thread under the same SRTP contexts, while the lanes send
        // video with them: the contexts' mutex keeps both streams authentic.
        viewers.forEach((v, i) => {
          if (gone.has(i)) return;
          const to = tx.sockaddr("127.0.0.1", v.inn.port);
          tx.sendRtp(v.out.slot, to, v.srtp.handle, 111, true, f, f * 960, 5000 + i, audio);
        });
        if (f === FRAMES / 2) {
          // Leaving at once, frames of theirs possibly still queued: the lanes hold
          // references, so neither the socket nor the SRTP context goes away under them.
          for (const i of LEAVERS) {
            tx.close(viewers[i].out.slot);
            viewers[i].srtp.destroy();
            gone.add(i);
          }
        }
        if (f % 8 === 0) await new Promise((r) => setTimeout(r, 5)); // real-time-ish
      }
      const expected = FRAMES * sizes.length;
      const deadline = Date.now() + 10_000;
      const stayed = viewers.filter((_, i) => !gone.has(i));
      const stream = (v: (typeof viewers)[number], ssrc: number) =>
        v.sink.stats().find((s) => s.ssrc === ssrc);
      const received = (v: (typeof viewers)[number], i: number) =>
        (stream(v, 1000 + i)?.received ?? 0) + (stream(v, 5000 + i)?.received ?? 0);
      while (viewers.some((v, i) => !gone.has(i) && received(v, i) < expected + FRAMES)) {
        assert.ok(Date.now() < deadline, "every packet arrives within 10 s");
        if (await rx.wait(200) > 0) rx.drain(() => {});
      }
      viewers.forEach((v, i) => {
        if (gone.has(i)) return;
        const video = stream(v, 1000 + i)!, sound = stream(v, 5000 + i)!;
        assert.equal(video.received, expected);
        assert.equal(sound.received, FRAMES);
        for (const s of [video, sound]) {
          assert.equal(s.reordered, 0, "in order");
          assert.equal(s.duplicates, 0);
          assert.equal(s.authFailures, 0, "under this viewer's own keys");
        }
      });
      assert.equal(stayed.length, VIEWERS - LEAVERS.length);
      // A leaver's frames queued before it left still went out (the lanes held its socket
      // and SRTP context), and nothing after.
      const beforeLeaving = (FRAMES / 2 + 1) * sizes.length;
      while (LEAVERS.some((i) => (stream(viewers[i], 1000 + i)?.received ?? 0) < beforeLeaving)) {
        assert.ok(Date.now() < deadline, "a leaver's queued frames arrive");
        if (await rx.wait(200) > 0) rx.drain(() => {});
      }
      for (const i of LEAVERS) {
        const s = stream(viewers[i], 1000 + i)!;
        assert.equal(s.received, beforeLeaving);
        assert.equal(s.reordered + s.duplicates + s.authFailures, 0);
      }
      const stats = pool.stats();
      assert.equal(stats.framesDropped, 0);
      assert.equal(stats.framesWaiting, 0);
      assert.equal(stats.laneCpuSeconds.length, 3);
      assert.ok(stats.laneCpuSeconds.every((s) => s > 0), "every lane worked");
      const latencies = pool.takeLatencies();
      assert.equal(latencies.length, FRAMES, "one latency per frame, when its last lane is done");
      assert.ok(latencies.every((s) => s >= 0 && s < 5));
      assert.deepEqual(pool.takeLatencies(), []);
    } finally {
      pool.destroy();
      for (const v of viewers) {
        v.sink.destroy();
        v.srtp.destroy();
      }
      tx.destroy();
      rx.destroy();
    }
  },
});

Deno.test({
  name: "send pool: records naming a closed socket, a lane beyond the pool or no SRTP are skipped",
  ignore,
  fn() {
    const fanout = lib as Exclude<typeof lib, Error>;
    const loop = new NativeLoop(fanout);
    const pool = new SendPool(fanout, 2);
    const srtp = new SrtpContext(fanout, 1, new Uint8Array(16), new Uint8Array(14));
    try {
      const a = loop.open(4, "127.0.0.1");
      const b = loop.open(4, "127.0.0.1");
      const to = loop.sockaddr("127.0.0.1", b.port);
      const ok = poolTarget({
        lane: 1,
        payloadType: 96,
        slot: a.slot,
        ssrc: 1,
        srtp: srtp.handle,
        sockaddr: to,
      });
      const badLane = poolTarget({
        lane: 5,
        payloadType: 96,
        slot: a.slot,
        ssrc: 2,
        srtp: srtp.handle,
        sockaddr: to,
      });
      const noSrtp = poolTarget({
        lane: 0,
        payloadType: 96,
        slot: a.slot,
        ssrc: 3,
        srtp: null,
        sockaddr: to,
      });
      const closed = poolTarget({
        lane: 0,
        payloadType: 96,
        slot: 4000,
        ssrc: 4,
        srtp: srtp.handle,
        sockaddr: to,
      });
      const targets = new Uint8Array(4 * POOL_TARGET_BYTES);
      [ok, badLane, noSrtp, closed].forEach((r, i) => targets.set(r, i * POOL_TARGET_BYTES));
      const payload = new Uint8Array(100);
      assert.equal(pool.sendFrame(loop, payload, Uint16Array.of(100), targets, 4, 0), 1);
      assert.equal(pool.sendFrame(loop, payload, Uint16Array.of(100), targets, 0, 0), 0);
      assert.throws(
        () =>
          poolTarget({
            lane: 0,
            payloadType: 96,
            slot: 0,
            ssrc: 0,
            srtp: null,
            sockaddr: new Uint8Array(29),
          }),
        RangeError,
      );
    } finally {
      pool.destroy();
      srtp.destroy();
      loop.destroy();
    }
  },
});
