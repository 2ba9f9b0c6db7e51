import assert from "node:assert/strict";
import {
  DEFAULT_MAX_PAYLOAD,
  depacketizeH264,
  fuA,
  packetizeH264,
  stapA,
} from "../../lib/webrtc/h264_packetizer.ts";
import { annexBToNalUnits } from "../../lib/codec/mod.ts";
import { mulberry32 } from "../support/prng.ts";

function nal(type: number, size: number, nri = 3, fill = 0xab): Uint8Array {
  const n = new Uint8Array(size).fill(fill);
  n[0] = (nri << 5) | type;
  return n;
}

const SPS = nal(7, 12);
const PPS = nal(8, 5);

Deno.test("packetizer: small non-IDR access unit → one single-NAL packet with the marker", () => {
  const slice = nal(1, 500, 2);
  const out = packetizeH264([slice], [SPS, PPS]);
  assert.equal(out.length, 1);
  assert.deepEqual(out[0].payload, slice);
  assert.equal(out[0].marker, true);
});

Deno.test("packetizer: IDR gets SPS+PPS in a STAP-A first, from the avcC", () => {
  const idr = nal(5, 800);
  const out = packetizeH264([idr], [SPS, PPS]);
  assert.equal(out.length, 2);
  assert.equal(out[0].payload[0] & 0x1f, 24, "STAP-A");
  assert.equal(out[0].payload[0] & 0x60, 0x60, "NRI is the highest of its units");
  assert.equal(out[0].marker, false);
  assert.deepEqual(depacketizeH264([out[0].payload]), [SPS, PPS]);
  assert.deepEqual(out[1].payload, idr);
  assert.equal(out[1].marker, true);
});

Deno.test("packetizer: in-band SPS/PPS are aggregated and not duplicated; AUD and filler dropped", () => {
  const out = packetizeH264([nal(9, 2), SPS, PPS, nal(6, 30), nal(5, 300), nal(12, 40)], [
    SPS,
    PPS,
  ]);
  const nals = depacketizeH264(out.map((p) => p.payload));
  assert.deepEqual(nals.map((n) => n[0] & 0x1f), [7, 8, 6, 5]);
});

Deno.test("packetizer: large NAL units split into FU-A within the budget, start/end bits right", () => {
  const big = nal(5, 5000);
  for (let i = 1; i < big.length; i++) big[i] = i & 0xff;
  const out = packetizeH264([big], [SPS, PPS]);
  const fus = out.slice(1);
  assert.ok(fus.length === Math.ceil((big.length - 1) / (DEFAULT_MAX_PAYLOAD - 2)));
  for (const [i, p] of fus.entries()) {
    assert.ok(p.payload.length <= DEFAULT_MAX_PAYLOAD);
    assert.equal(p.payload[0] & 0x1f, 28);
    assert.equal(p.payload[0] & 0xe0, big[0] & 0xe0, "F and NRI kept in the indicator");
    assert.equal(p.payload[1] & 0x1f, 5);
    assert.equal(!!(p.payload[1] & 0x80), i === 0, "S bit only on the first");
    assert.equal(!!(p.payload[1] & 0x40), i === fus.length - 1, "E bit only on the last");
    assert.equal(p.marker, i === fus.length - 1);
  }
  assert.deepEqual(depacketizeH264(out.map((p) => p.payload)), [SPS, PPS, big]);
});

Deno.test("packetizer: STAP-A and FU-A helpers reject what RFC 6184 cannot carry", () => {
  assert.throws(() => stapA([new Uint8Array(70000)]), RangeError);
  assert.throws(() => fuA(nal(1, 10), 2), RangeError);
});

Deno.test("packetizer: seeded random access units round-trip and respect the budget", () => {
  const rand = mulberry32(6184);
  for (let i = 0; i < 2000; i++) {
    const budget = 100 + Math.floor(rand() * 1400);
    const count = 1 + Math.floor(rand() * 6);
    const units = Array.from({ length: count }, () => {
      const types = [1, 5, 6, 7, 8];
      const n = nal(types[Math.floor(rand() * types.length)], 2 + Math.floor(rand() * 6000));
      for (let k = 1; k < n.length; k++) n[k] = Math.floor(rand() * 256);
      return n;
    });
    const out = packetizeH264(units, [SPS, PPS], budget);
    assert.ok(out.length > 0);
    for (const p of out) {
      assert.ok(p.payload.length <= budget, `payload ${p.payload.length} > ${budget}`);
    }
    assert.equal(out.filter((p) => p.marker).length, 1);
    assert.equal(out[out.length - 1].marker, true);
    const back = depacketizeH264(out.map((p) => p.payload));
    const hasIdr = units.some((u) => (u[0] & 0x1f) === 5);
    const hasSps = units.some((u) => (u[0] & 0x1f) === 7);
    const expected = hasIdr && !hasSps ? [SPS, PPS, ...units] : units;
    assert.deepEqual(back, expected);
  }
});

Deno.test("packetizer: a real x264 access unit survives packetization byte for byte", async () => {
  const dir = new URL("../fixtures/codec/", import.meta.url);
  let file: Uint8Array | undefined;
  for await (const e of Deno.readDir(dir)) {
    if (e.name.endsWith(".h264")) {
      file = await Deno.readFile(new URL(e.name, dir));
      break;
    }
  }
  assert.ok(file, "an .h264 fixture exists");
  const nals = annexBToNalUnits(file);
  const out = packetizeH264(nals, []);
  const back = depacketizeH264(out.map((p) => p.payload));
  const kept = nals.filter((n) => ![9, 12].includes(n[0] & 0x1f));
  assert.deepEqual(back, kept);
});
