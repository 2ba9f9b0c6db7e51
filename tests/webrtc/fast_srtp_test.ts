/**
 * The native SRTP (native/fanout.c) against werift's SrtpSession, in both profiles
 * and both directions: seeded random packets, header extensions and CSRCs, a
 * sequence number wrap (ROC), retransmissions of older packets, tampering.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { RtcpPacketConverter, RtpHeader, RtpPacket, SrtcpSession, SrtpSession } from "werift";
import { loadFanout, NativeLoop, SrtpContext, SrtpProfile } from "../../lib/webrtc/fast/ffi.ts";
import { mulberry32 } from "../support/prng.ts";

const lib = loadFanout();
const ignore = lib instanceof Error;
if (ignore) console.warn(`skipping native SRTP tests: ${lib.message}`);

function keys(rand: () => number, saltLength: number) {
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
  return { key: bytes(16), salt: bytes(saltLength) };
}

/** Both DTLS-SRTP profiles the native code speaks, by name. */
const PROFILES = [
  ["AES_CM_128_HMAC_SHA1_80", SrtpProfile.AES128_CM_HMAC_SHA1_80],
  ["AEAD_AES_128_GCM", SrtpProfile.AEAD_AES_128_GCM],
] as const;

/** werift session keys: the same key and salt both ways (it protects and unprotects here). */
function weriftKeys(k: { key: Uint8Array; salt: Uint8Array }) {
  return {
    localMasterKey: Buffer.from(k.key),
    localMasterSalt: Buffer.from(k.salt),
    remoteMasterKey: Buffer.from(k.key),
    remoteMasterSalt: Buffer.from(k.salt),
  };
}

function weriftSession(profile: number, k: { key: Uint8Array; salt: Uint8Array }) {
  // werift's session protects with "local" keys and unprotects with "remote" ones.
  return new SrtpSession({ profile: profile as 1, keys: weriftKeys(k) });
}

for (const [name, profile] of PROFILES) {
  Deno.test({
    name: `native SRTP ${name}: werift decrypts what it protects and the reverse`,
    ignore,
    fn() {
      const fanout = lib as Exclude<typeof lib, Error>;
      const rand = mulberry32(profile * 1000 + 7);
      const k = keys(rand, profile === SrtpProfile.AEAD_AES_128_GCM ? 12 : 14);
      const native = new SrtpContext(fanout, profile, k.key, k.salt);
      const nativeRx = new SrtpContext(fanout, profile, k.key, k.salt);
      const werift = weriftSession(profile, k);
      const ssrc = 0x1234abcd;
      // Cross a sequence number wrap: 65530 … 65535, 0 … (ROC 0 → 1).
      let seq = 65_000;
      let last: Uint8Array | undefined;
      for (let i = 0; i < 1200; i++) {
        const payload = Uint8Array.from(
          { length: 1 + Math.floor(rand() * 1200) },
          () => Math.floor(rand() * 256),
        );
        const header = new RtpHeader({
          payloadType: 96 + (i % 3),
          sequenceNumber: seq,
          timestamp: (i * 3000) >>> 0,
          ssrc,
          marker: i % 5 === 0,
        });
        const rtp = new Uint8Array(new RtpPacket(header, Buffer.from(payload)).serialize());
        // native → werift
        const protectedNative = native.protect(rtp);
        const opened = new Uint8Array(werift.decrypt(Buffer.from(protectedNative)));
        assert.deepEqual(opened, rtp, `packet ${i} (seq ${seq})`);
        // werift → native
        const protectedWerift = new Uint8Array(werift.encrypt(Buffer.from(payload), header));
        assert.deepEqual(protectedWerift, protectedNative, `same bytes for packet ${i}`);
        assert.deepEqual(nativeRx.unprotect(protectedWerift), rtp);
        last = protectedWerift;
        seq = (seq + 1) & 0xffff;
      }
      // A retransmission of a packet from before the wrap keeps its old ROC.
      const old = new Uint8Array(
        new RtpPacket(
          new RtpHeader({ payloadType: 96, sequenceNumber: 65_534, timestamp: 1, ssrc }),
          Buffer.from([1, 2, 3]),
        ).serialize(),
      );
      const resent = native.protect(old);
      assert.deepEqual(nativeRx.unprotect(resent), old);
      // The same recent packet twice is counted once (a 64-packet window).
      assert.ok(nativeRx.unprotect(last!));
      // Tampering fails authentication.
      const bad = native.protect(old);
      bad[bad.length - 1] ^= 1;
      assert.equal(nativeRx.unprotect(bad), undefined);
      const stats = nativeRx.stats();
      assert.equal(stats.length, 1);
      assert.equal(stats[0].ssrc, ssrc);
      assert.equal(stats[0].received, 1201);
      assert.equal(stats[0].expected, 1200);
      assert.equal(stats[0].reordered, 1);
      assert.equal(stats[0].duplicates, 1);
      assert.equal(stats[0].authFailures, 1);
      native.destroy();
      nativeRx.destroy();
    },
  });
}

for (const [name, profile] of PROFILES) {
  Deno.test({
    name: `native SRTCP ${name}: werift decrypts the sender reports it protects`,
    ignore,
    fn() {
      const fanout = lib as Exclude<typeof lib, Error>;
      const k = keys(mulberry32(profile * 77), profile === SrtpProfile.AEAD_AES_128_GCM ? 12 : 14);
      const native = new SrtpContext(fanout, profile, k.key, k.salt, "rtcp");
      const werift = new SrtcpSession({ profile: profile as 1, keys: weriftKeys(k) });
      for (let i = 0; i < 50; i++) {
        // SR + SDES CNAME as the fast path builds them.
        const sr = new Uint8Array(28 + 16);
        const v = new DataView(sr.buffer);
        v.setUint8(0, 0x80);
        v.setUint8(1, 200);
        v.setUint16(2, 6);
        v.setUint32(4, 0xdeadbeef);
        v.setBigUint64(8, 0x1234567890abcdefn + BigInt(i));
        v.setUint32(16, i * 3000);
        v.setUint32(20, i);
        v.setUint32(24, i * 1000);
        v.setUint8(28, 0x81);
        v.setUint8(29, 202);
        v.setUint16(30, 3);
        v.setUint32(32, 0xdeadbeef);
        v.setUint8(36, 1);
        v.setUint8(37, 4);
        sr.set(new TextEncoder().encode("cnam"), 38);
        const protectedRtcp = native.protectRtcp(sr);
        const opened = new Uint8Array(werift.decrypt(Buffer.from(protectedRtcp)));
        assert.deepEqual(opened, sr, `report ${i}`);
        const [report] = RtcpPacketConverter.deSerialize(Buffer.from(opened)) as unknown as {
          senderInfo: { packetCount: number };
        }[];
        assert.equal(report.senderInfo.packetCount, i);
      }
      native.destroy();
    },
  });
}

Deno.test({
  name: "native UDP: datagrams arrive in order, with their source, through the loop",
  ignore,
  async fn() {
    const fanout = lib as Exclude<typeof lib, Error>;
    const loop = new NativeLoop(fanout);
    try {
      const a = loop.open(4, "127.0.0.1");
      const b = loop.open(4, "127.0.0.1", 41000, 41999);
      assert.ok(b.port >= 41000 && b.port <= 41999);
      const to = loop.sockaddr("127.0.0.1", b.port);
      for (let i = 0; i < 2000; i++) {
        assert.equal(loop.send(a.slot, to, Uint8Array.of(i >> 8, i & 255, 0, 0)), 4);
      }
      const got: number[] = [];
      while (got.length < 2000) {
        assert.ok(await loop.wait(2000) > 0, `only ${got.length} datagrams arrived`);
        loop.drain((d) => {
          assert.equal(d.slot, b.slot);
          assert.equal(d.address, "127.0.0.1");
          assert.equal(d.port, a.port);
          got.push((d.data[0] << 8) | d.data[1]);
        });
      }
      assert.deepEqual(got, Array.from({ length: 2000 }, (_, i) => i));
      // The hot path: header + SRTP in one call, decrypted by a sink that only counts.
      const k = keys(mulberry32(3), 14);
      const tx = new SrtpContext(fanout, SrtpProfile.AES128_CM_HMAC_SHA1_80, k.key, k.salt);
      const rx = new SrtpContext(fanout, SrtpProfile.AES128_CM_HMAC_SHA1_80, k.key, k.salt);
      loop.setSink(b.slot, rx);
      const payload = new Uint8Array(1100).fill(9);
      for (let i = 0; i < 500; i++) {
        loop.sendRtp(
          a.slot,
          to,
          tx.handle,
          96,
          false,
          (65_500 + i) & 0xffff,
          i * 3000,
          42,
          payload,
        );
      }
      let surfaced = 0;
      while ((rx.stats()[0]?.received ?? 0) < 500) {
        assert.ok(await loop.wait(2000) > 0, "media arrives");
        loop.drain(() => surfaced++);
      }
      assert.equal(surfaced, 0, "media for a sink is not surfaced");
      assert.deepEqual(
        { ...rx.stats()[0], bytes: 0 },
        {
          ssrc: 42,
          received: 500,
          bytes: 0,
          expected: 500,
          reordered: 0,
          duplicates: 0,
          authFailures: 0,
        },
      );
      // A frame in one call (UDP GSO runs of equal-size packets): every packet arrives
      // as its own datagram, in order, with its sequence number, marker and payload.
      loop.setSink(b.slot, null);
      const sizes = [1200, 1200, 1200, 700, 33, 1200, 1200, 90, 1200];
      const frame = sizes.map((n, i) =>
        Uint8Array.from({ length: n }, (_, j) => (i * 7 + j) & 255)
      );
      const packed = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
      let at = 0;
      for (const f of frame) {
        packed.set(f, at);
        at += f.length;
      }
      const lens = Uint16Array.from(sizes, (n, i) => n | (i === sizes.length - 1 ? 0x8000 : 0));
      const rx2 = new SrtpContext(fanout, SrtpProfile.AES128_CM_HMAC_SHA1_80, k.key, k.salt);
      const tx2 = new SrtpContext(fanout, SrtpProfile.AES128_CM_HMAC_SHA1_80, k.key, k.salt);
      assert.equal(
        loop.sendRtpFrame(a.slot, to, tx2.handle, 97, 65_533, 123456, 7, packed, lens),
        sizes.length,
      );
      // Lengths that overrun the packed payloads are refused, nothing sent.
      assert.equal(
        loop.sendRtpFrame(a.slot, to, tx2.handle, 97, 1, 1, 7, packed.subarray(0, 100), lens),
        -22,
      );
      const arrived: Uint8Array[] = [];
      while (arrived.length < sizes.length) {
        assert.ok(await loop.wait(2000) > 0, `${arrived.length} of the frame's packets arrived`);
        loop.drain((d) => arrived.push(rx2.unprotect(d.data)!));
      }
      arrived.forEach((rtp, i) => {
        assert.ok(rtp, `packet ${i} authenticates`);
        assert.equal((rtp[2] << 8) | rtp[3], (65_533 + i) & 0xffff);
        assert.equal(rtp[1], (i === sizes.length - 1 ? 0x80 : 0) | 97);
        assert.deepEqual(rtp.subarray(12), frame[i]);
      });
      loop.close(a.slot);
      loop.close(b.slot);
    } finally {
      loop.destroy();
    }
  },
});
