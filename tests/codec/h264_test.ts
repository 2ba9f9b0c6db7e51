import assert from "node:assert/strict";
import {
  annexBToNalUnits,
  BitReader,
  BitWriter,
  CodecError,
  containsBSlice,
  isKeyframeAvcc,
  iterateAvccNalUnits,
  NalType,
  nalUnitsToAvcc,
  parseAvcDecoderConfig,
  parseSps,
  removeEmulationPrevention,
  SliceType,
  sliceType,
} from "../../lib/codec/mod.ts";
import { mulberry32 } from "../support/prng.ts";

const FIXTURES = new URL("../fixtures/codec/", import.meta.url);

/** NAL units of a committed Annex B fixture (see tests/fixtures/codec/generate.sh). */
function fixtureNals(name: string): Uint8Array[] {
  return annexBToNalUnits(Deno.readFileSync(new URL(name, FIXTURES)));
}

function nalOfType(nals: Uint8Array[], type: number): Uint8Array {
  const nal = nals.find((n) => (n[0] & 0x1f) === type);
  assert.ok(nal, `expected a NAL unit of type ${type}`);
  return nal;
}

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.replace(/\s/g, "").match(/../g)!, (byte) => parseInt(byte, 16));
}

/** Groups NAL units into access units: a new one starts at a slice with first_mb_in_slice 0. */
function accessUnits(nals: Uint8Array[]): Uint8Array[][] {
  const units: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let hasSlice = false;
  for (const nal of nals) {
    const type = nal[0] & 0x1f;
    const isSlice = type === NalType.SLICE || type === NalType.IDR;
    const startsPicture = isSlice && new BitReader(nal.subarray(1)).readUE() === 0;
    if (hasSlice && (startsPicture || !isSlice)) {
      units.push(current);
      current = [];
      hasSlice = false;
    }
    current.push(nal);
    hasSlice ||= isSlice;
  }
  if (current.length > 0) units.push(current);
  return units;
}

/** A damaged copy of `base`: flipped bits, changed bytes, truncation or random bytes. */
function mutate(random: () => number, base: Uint8Array): Uint8Array {
  const int = (n: number) => Math.floor(random() * n);
  const choice = int(5);
  if (choice === 0) return Uint8Array.from({ length: int(64) }, () => int(256));
  let out = base.slice();
  if (choice === 1) out = out.subarray(0, int(out.length + 1));
  const edits = 1 + int(6);
  for (let i = 0; i < edits && out.length > 0; i++) {
    const at = int(out.length);
    if (choice === 2) out[at] ^= 1 << int(8);
    else out[at] = int(4) === 0 ? 0 : int(256);
  }
  if (choice === 4) {
    const extra = Uint8Array.from({ length: int(8) }, () => int(256));
    const joined = new Uint8Array(out.length + extra.length);
    joined.set(out);
    joined.set(extra, out.length);
    out = joined;
  }
  return out;
}

/** Runs `fn`, letting it return or throw CodecError; anything else fails the test. */
function expectReturnOrCodecError(fn: () => unknown, input: Uint8Array): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof CodecError)) {
      const bytes = Array.from(input, (b) => b.toString(16).padStart(2, "0")).join("");
      assert.fail(`expected CodecError, got ${error} for input ${bytes}`);
    }
  }
}

// ---- bit reader -------------------------------------------------------------------------------

Deno.test("BitReader reads fixed fields and exp-Golomb codes", () => {
  // 1 | 010 (ue 1) | 011 (ue 2) | 00100 (ue 3 → se −2) | 0000 1000 0 (ue 15)
  const w = new BitWriter();
  w.writeBits(1, 1);
  w.writeBits(0b010, 3);
  w.writeBits(0b011, 3);
  w.writeBits(0b00101, 5);
  w.writeBits(0b000010000, 9);
  w.writeBits(0xdeadbeef, 32);
  const r = new BitReader(w.toBytes());
  assert.equal(r.readBit(), 1);
  assert.equal(r.readUE(), 1);
  assert.equal(r.readUE(), 2);
  assert.equal(r.readSE(), -2);
  assert.equal(r.readUE(), 15);
  assert.equal(r.readBits(32), 0xdeadbeef);
  assert.equal(r.bitsLeft, 3);
  assert.throws(() => r.readBits(4), CodecError);
});

Deno.test("BitReader bounds exp-Golomb codes at 31 leading zeros", () => {
  const largest = new Uint8Array([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
  assert.equal(new BitReader(largest).readUE(), 2 ** 32 - 2);
  assert.throws(() => new BitReader(new Uint8Array(8)).readUE(), CodecError);
  assert.throws(() => new BitReader(new Uint8Array([0, 0, 0, 0, 0x80])).readUE(), CodecError);
  assert.throws(() => new BitReader(new Uint8Array([0x01])).readUE(), CodecError); // truncated
});

Deno.test("removeEmulationPrevention drops the 03 of each 00 00 03", () => {
  const plain = hex("6764001f ac");
  assert.equal(removeEmulationPrevention(plain), plain);
  assert.deepEqual(
    removeEmulationPrevention(hex("00 00 03 01 00 00 03 00 00 03 03 00 00 03")),
    hex("00 00 01 00 00 00 00 03 00 00"),
  );
  assert.deepEqual(removeEmulationPrevention(hex("00 03 00 00 00 03")), hex("00 03 00 00 00"));
});

// ---- Annex B / AVCC framing ------------------------------------------------------------------

Deno.test("annexBToNalUnits splits on 3- and 4-byte start codes", () => {
  const stream = hex("ff 00 00 00 01 67 42 00 00 01 68 ce 00 00 00 00 01 65 88 00 00 00 01 00 00");
  assert.deepEqual(annexBToNalUnits(stream), [hex("67 42"), hex("68 ce"), hex("65 88")]);
  assert.deepEqual(annexBToNalUnits(hex("67 42 00")), []);
  assert.deepEqual(annexBToNalUnits(new Uint8Array()), []);
  const units = annexBToNalUnits(stream);
  assert.equal(units[0].buffer, stream.buffer, "expected subarrays, not copies");
});

Deno.test("nalUnitsToAvcc and iterateAvccNalUnits round-trip", () => {
  const nals = [hex("67 64 00 28"), hex("68 ee"), hex("65 88 84 00 33")];
  const avcc = nalUnitsToAvcc(nals);
  assert.deepEqual(avcc.subarray(0, 4), hex("00 00 00 04"));
  assert.deepEqual([...iterateAvccNalUnits(avcc)], nals);
  assert.deepEqual([...iterateAvccNalUnits(hex("02 67 64 00 01 68"), 1)], [
    hex("67 64"),
    hex("68"),
  ]);
  assert.deepEqual([...iterateAvccNalUnits(hex("0000 0001 09"), 2)], [hex("09")]);
  assert.deepEqual([...iterateAvccNalUnits(new Uint8Array())], []);
});

Deno.test("iterateAvccNalUnits rejects lengths that overrun", () => {
  assert.throws(() => [...iterateAvccNalUnits(hex("00 00 00 05 65 88"))], CodecError);
  assert.throws(() => [...iterateAvccNalUnits(hex("00 00 00 01 65 00 00"))], CodecError);
  assert.throws(() => [...iterateAvccNalUnits(hex("ff ff ff ff 65"))], CodecError);
  assert.throws(() => [...iterateAvccNalUnits(hex("01 65"), 3 as 4)], CodecError);
});

// ---- avcC -------------------------------------------------------------------------------------

/** avcC that ffmpeg 5.1 wrote for high_1920x1080_30fps.h264 muxed into MP4 (ffprobe -show_data). */
const FFMPEG_AVCC = hex(`
  0164 0028 ffe1 001b 6764 0028 acd9 4078 0227 e5c0 4400 0003 0004 0000 0300 f03c
  60c6 5801 0006 68eb e04d 2c8b fdf8 f800`);

Deno.test("parseAvcDecoderConfig reads ffmpeg's avcC, High profile extension and all", () => {
  const config = parseAvcDecoderConfig(FFMPEG_AVCC);
  const nals = fixtureNals("high_1920x1080_30fps.h264");
  assert.equal(config.profile, 0x64);
  assert.equal(config.compatibility, 0);
  assert.equal(config.level, 0x28);
  assert.equal(config.nalLengthSize, 4);
  assert.deepEqual(config.sps, [nalOfType(nals, NalType.SPS)]);
  assert.deepEqual(config.pps, [nalOfType(nals, NalType.PPS)]);
  assert.notEqual(config.sps[0].buffer, FFMPEG_AVCC.buffer, "expected copies");
  assert.equal(parseSps(config.sps[0]).width, 1920);
});

Deno.test("parseAvcDecoderConfig handles several parameter sets and short lengths", () => {
  const config = parseAvcDecoderConfig(
    hex("01 42 c0 1e fd e2 0002 6742 0003 6742c0 02 0001 68 0002 68ce"),
  );
  assert.equal(config.nalLengthSize, 2);
  assert.deepEqual(config.sps, [hex("67 42"), hex("67 42 c0")]);
  assert.deepEqual(config.pps, [hex("68"), hex("68 ce")]);
  assert.equal(parseAvcDecoderConfig(hex("01 42 c0 1e fc e1 0001 67 00")).nalLengthSize, 1);
});

Deno.test("parseAvcDecoderConfig rejects malformed records", () => {
  const cases: [string, RegExp][] = [
    ["01 64 00 28", /at least 7 bytes, got 4/],
    ["02 64 00 28 ff e1 0001 67 00", /configurationVersion 1, got 2/],
    ["01 64 00 28 fe e1 0001 67 00", /1, 2 or 4 bytes, got 3/],
    ["01 64 00 28 ff e0 00", /at least one SPS/],
    ["01 64 00 28 ff e1 0005 67 64", /SPS 1 of 1 of ≤ 2 bytes, got 5/],
    ["01 64 00 28 ff ff 0002 6764", /2-byte length of avcC SPS 2 of 31, got 0 bytes/],
    ["01 64 00 28 ff e1 0002 6764", /PPS count/],
    ["01 64 00 28 ff e1 0002 6764 02 0001 68", /PPS 2 of 2/],
    ["01 64 00 28 ff e1 0000 01 0001 68", /non-empty avcC SPS 1/],
  ];
  for (const [record, message] of cases) {
    assert.throws(() => parseAvcDecoderConfig(hex(record)), (error: unknown) => {
      assert.ok(error instanceof CodecError);
      assert.match(error.message, message);
      return true;
    });
  }
});

// ---- SPS from real encoders ----------------------------------------------------------------

Deno.test("parseSps: 1080p30 High crops 1088 coded lines to 1080", () => {
  const sps = nalOfType(fixtureNals("high_1920x1080_30fps.h264"), NalType.SPS);
  assert.ok(sps.length !== removeEmulationPrevention(sps).length, "fixture holds 00 00 03");
  const info = parseSps(sps);
  assert.deepEqual(info, {
    profileIdc: 100,
    constraintFlags: 0,
    levelIdc: 40,
    width: 1920,
    height: 1080,
    fps: 30,
    profileLevelId: "640028",
    maxNumReorderFrames: 2,
    chromaFormatIdc: 1,
    bitDepthLuma: 8,
    frameMbsOnly: true,
  });
});

Deno.test("parseSps: real encoder output across profiles matches ffprobe", () => {
  const cases = [
    // file, width, height, fps, profile-level-id, chroma, bit depth, frames only, reorder
    ["baseline_640x360_25fps.h264", 640, 360, 25, "42c01e", 1, 8, true, 0],
    ["main_642x362.h264", 642, 362, 24, "4d401e", 1, 8, true, 2],
    ["interlaced_1920x1080.h264", 1920, 1080, 25, "640028", 1, 8, false, 2],
    ["high422_10bit_352x288.h264", 352, 288, 30, "7a000d", 2, 10, true, 2],
    ["high444_350x200.h264", 350, 200, 30, "f4000d", 3, 8, true, 2],
    ["zerolatency_320x180.h264", 320, 180, 30, "64000d", 1, 8, true, 0],
  ] as const;
  for (const [file, width, height, fps, pli, chroma, depth, frameMbsOnly, reorder] of cases) {
    const info = parseSps(nalOfType(fixtureNals(file), NalType.SPS));
    assert.deepEqual(
      [info.width, info.height, info.fps, info.profileLevelId],
      [width, height, fps, pli],
      file,
    );
    assert.deepEqual(
      [info.chromaFormatIdc, info.bitDepthLuma, info.frameMbsOnly, info.maxNumReorderFrames],
      [chroma, depth, frameMbsOnly, reorder],
      file,
    );
  }
});

// ---- SPS built field by field ----------------------------------------------------------------

class SpsWriter extends BitWriter {
  ue(value: number): void {
    const bits = (value + 1).toString(2).length;
    this.writeBits(0, bits - 1);
    this.writeBits(value + 1, bits);
  }
  se(value: number): void {
    this.ue(value > 0 ? 2 * value - 1 : -2 * value);
  }
  flag(on: boolean): void {
    this.writeBits(on ? 1 : 0, 1);
  }
  /** The NAL unit: header byte, RBSP with its stop bit, emulation prevention inserted. */
  nal(): Uint8Array {
    this.writeBits(1, 1);
    const rbsp = this.toBytes();
    const out = [0x67];
    let zeros = 0;
    for (const byte of rbsp) {
      if (zeros >= 2 && byte <= 3) {
        out.push(3);
        zeros = 0;
      }
      out.push(byte);
      zeros = byte === 0 ? zeros + 1 : 0;
    }
    return Uint8Array.from(out);
  }
}

Deno.test("parseSps: Main, POC type 1, fields, cropping and a full VUI with HRD", () => {
  const w = new SpsWriter();
  w.writeBits(77, 8);
  w.writeBits(0x40, 8);
  w.writeBits(31, 8);
  w.ue(0); // seq_parameter_set_id
  w.ue(0); // log2_max_frame_num_minus4
  w.ue(1); // pic_order_cnt_type
  w.flag(false);
  w.se(-3);
  w.se(5);
  w.ue(3); // num_ref_frames_in_pic_order_cnt_cycle
  w.se(1), w.se(-1), w.se(0);
  w.ue(4); // max_num_ref_frames
  w.flag(false);
  w.ue(79); // 1280 wide
  w.ue(22); // 23 field map units → 736 lines
  w.flag(false); // frame_mbs_only_flag
  w.flag(true); // mb_adaptive_frame_field_flag
  w.flag(true);
  w.flag(true); // frame_cropping_flag: 4:2:0 fields crop in units of 4 lines
  w.ue(0), w.ue(0), w.ue(0), w.ue(4);
  w.flag(true); // vui_parameters_present_flag
  w.flag(true), w.writeBits(255, 8), w.writeBits(4, 16), w.writeBits(3, 16);
  w.flag(true), w.flag(false);
  w.flag(true), w.writeBits(5, 3), w.flag(false), w.flag(true), w.writeBits(0x010101, 24);
  w.flag(true), w.ue(1), w.ue(1);
  w.flag(true), w.writeBits(1001, 32), w.writeBits(60000, 32), w.flag(true);
  w.flag(true); // nal_hrd_parameters_present_flag
  w.ue(1), w.writeBits(0x44, 8);
  for (let i = 0; i < 2; i++) w.ue(1000 * (i + 1)), w.ue(2000), w.flag(i === 0);
  w.writeBits(0xfffff, 20);
  w.flag(false); // vcl_hrd_parameters_present_flag
  w.flag(false); // low_delay_hrd_flag
  w.flag(false); // pic_struct_present_flag
  w.flag(true), w.flag(true), w.ue(2), w.ue(1), w.ue(16), w.ue(16), w.ue(1), w.ue(4);
  const info = parseSps(w.nal());
  assert.equal(info.profileLevelId, "4d401f");
  assert.equal(info.width, 1280);
  assert.equal(info.height, 720);
  assert.equal(info.frameMbsOnly, false);
  assert.equal(info.fps, 60000 / 2002);
  assert.equal(info.maxNumReorderFrames, 1);
});

/** High profile SPS prefix up to and including the scaling matrix. */
function highSpsPrefix(w: SpsWriter, chroma: number, separatePlanes = false): void {
  w.writeBits(100, 8), w.writeBits(0, 8), w.writeBits(30, 8);
  w.ue(0);
  w.ue(chroma);
  if (chroma === 3) w.flag(separatePlanes);
  w.ue(0), w.ue(0), w.flag(false);
  w.flag(true); // seq_scaling_matrix_present_flag
  for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) {
    w.flag(i % 3 !== 2);
    if (i % 3 === 2) continue;
    if (i === 1) {
      w.se(-8); // nextScale 0 at once: use the default list
      continue;
    }
    for (let j = 0; j < (i < 6 ? 16 : 64); j++) w.se(j % 2 === 0 ? 3 : -2);
  }
}

Deno.test("parseSps: monochrome crops in single samples after scaling lists", () => {
  const w = new SpsWriter();
  highSpsPrefix(w, 0);
  w.ue(0), w.ue(2), w.ue(1), w.flag(false);
  w.ue(6), w.ue(3), w.flag(true), w.flag(true); // 112x64 coded
  w.flag(true), w.ue(0), w.ue(12), w.ue(0), w.ue(14);
  w.flag(false);
  const info = parseSps(w.nal());
  assert.deepEqual([info.width, info.height, info.chromaFormatIdc], [100, 50, 0]);
  assert.equal(info.fps, undefined);
  assert.equal(info.maxNumReorderFrames, undefined);
});

Deno.test("parseSps: 4:4:4 with separate colour planes crops in single samples", () => {
  const w = new SpsWriter();
  highSpsPrefix(w, 3, true);
  w.ue(0), w.ue(2), w.ue(1), w.flag(false);
  w.ue(6), w.ue(3), w.flag(true), w.flag(true);
  w.flag(true), w.ue(1), w.ue(0), w.ue(3), w.ue(0);
  w.flag(false);
  const info = parseSps(w.nal());
  assert.deepEqual([info.width, info.height, info.chromaFormatIdc], [111, 61, 3]);
});

Deno.test("parseSps: a VUI cut short keeps what it had", () => {
  const w = new SpsWriter();
  w.writeBits(66, 8), w.writeBits(0xc0, 8), w.writeBits(30, 8);
  w.ue(0), w.ue(0), w.ue(2), w.ue(1), w.flag(false);
  w.ue(39), w.ue(29), w.flag(true), w.flag(true), w.flag(false);
  w.flag(true); // VUI
  w.flag(false), w.flag(false), w.flag(false), w.flag(false);
  w.flag(true), w.writeBits(1, 32), w.writeBits(50, 32), w.flag(true);
  w.flag(false), w.flag(false), w.flag(false);
  w.flag(true), w.flag(true), w.ue(2); // bitstream restriction, then the data ends
  const info = parseSps(w.nal());
  assert.deepEqual([info.width, info.height, info.fps], [640, 480, 25]);
  assert.equal(info.maxNumReorderFrames, undefined);
});

Deno.test("parseSps rejects what is not a sane SPS", () => {
  const cases: [Uint8Array, RegExp][] = [
    [hex("68 ee 3c 80"), /NAL unit type 7 \(SPS\), got 8/],
    [hex("67 64"), /at least 4 bytes/],
    [hex("67 64 00 28"), /exhausted|more bits/],
    [hex("67 64 00 28 00 00 00 00 00 00 00 00 ff"), /31 leading zero bits/],
    [hex("67 42 00 1e cb"), /pic_order_cnt_type in 0..2, got 4/], // ue 0, ue 0, ue 4
  ];
  for (const [nal, message] of cases) {
    assert.throws(() => parseSps(nal), (error: unknown) => {
      assert.ok(error instanceof CodecError, String(error));
      assert.match(error.message, message);
      return true;
    });
  }
  const w = new SpsWriter(); // cropping larger than the picture
  w.writeBits(66, 8), w.writeBits(0, 8), w.writeBits(30, 8);
  w.ue(0), w.ue(0), w.ue(2), w.ue(1), w.flag(false);
  w.ue(0), w.ue(0), w.flag(true), w.flag(true);
  w.flag(true), w.ue(4), w.ue(4), w.ue(0), w.ue(0), w.flag(false);
  assert.throws(() => parseSps(w.nal()), /frame cropping inside the 16x16 coded picture/);
});

// ---- slices, B-frames, keyframes -------------------------------------------------------------

Deno.test("sliceType and containsBSlice find libx264's B-frames per access unit", () => {
  const units = accessUnits(fixtureNals("bframes_320x180.h264"));
  assert.equal(units.length, 12);
  const avcc = units.map((unit) => nalUnitsToAvcc(unit));
  // Decode order of ffprobe's presentation order I B B B P B B B P B B P.
  assert.deepEqual(
    avcc.map((au) => containsBSlice(au)),
    [false, false, true, true, true, false, true, true, true, false, true, true],
  );
  assert.deepEqual(
    avcc.map((au) => isKeyframeAvcc(au)),
    [true, ...Array(11).fill(false)],
  );
  const types = units.flat().map(sliceType).filter((type) => type !== undefined);
  assert.deepEqual(types.slice(0, 3), [SliceType.I, SliceType.P, SliceType.B]);
});

Deno.test("containsBSlice is false for -tune zerolatency (two slices a frame)", () => {
  const units = accessUnits(fixtureNals("zerolatency_320x180.h264"));
  assert.equal(units.length, 12);
  for (const unit of units) assert.equal(containsBSlice(nalUnitsToAvcc(unit)), false);
  assert.equal(isKeyframeAvcc(nalUnitsToAvcc(units[0])), true);
  assert.deepEqual(units[1].map(sliceType), [SliceType.P, SliceType.P]);
  assert.equal(units.slice(1).some((unit) => isKeyframeAvcc(nalUnitsToAvcc(unit))), false);
});

Deno.test("sliceType ignores non-slices and unreadable headers", () => {
  assert.equal(sliceType(hex("67 64 00 28")), undefined);
  assert.equal(sliceType(hex("41")), undefined);
  assert.equal(sliceType(hex("41 00 00 00 00 00")), undefined);
  assert.equal(sliceType(hex("41 80 00")), undefined); // slice_type ue runs off the end
  assert.equal(sliceType(hex("41 9a")), SliceType.P); // ue 0, ue 5 (P, all slices)
  assert.equal(sliceType(hex("01 9c")), SliceType.B); // nal_ref_idc 0, ue 0, ue 6
  assert.equal(sliceType(hex("41 81 00")), undefined); // slice_type 63 is out of range
  assert.equal(containsBSlice(hex("00 02 01 9c"), 2), true);
  assert.equal(isKeyframeAvcc(hex("00 02 65 88 00 01 06"), 2), true);
  assert.throws(() => containsBSlice(hex("00 09 01 b0"), 2), CodecError);
});

// ---- fuzzing ---------------------------------------------------------------------------------

const FUZZ_CASES = 3000;

Deno.test("fuzz: parseSps returns or throws CodecError", () => {
  const random = mulberry32(0x5eed_0001);
  const files = [
    "high_1920x1080_30fps.h264",
    "interlaced_1920x1080.h264",
    "high444_350x200.h264",
    "baseline_640x360_25fps.h264",
  ];
  const seeds: Uint8Array[] = [
    ...files.map((file) => nalOfType(fixtureNals(file), NalType.SPS)),
  ];
  for (let i = 0; i < FUZZ_CASES; i++) {
    const input = mutate(random, seeds[i % seeds.length]);
    if (i % 7 === 0 && input.length > 0) input[0] = 0x67;
    expectReturnOrCodecError(() => {
      const info = parseSps(input);
      assert.ok(Number.isInteger(info.width) && info.width > 0, "width");
      assert.ok(Number.isInteger(info.height) && info.height > 0, "height");
      assert.match(info.profileLevelId, /^[0-9a-f]{6}$/);
    }, input);
  }
});

Deno.test("fuzz: parseAvcDecoderConfig returns or throws CodecError", () => {
  const random = mulberry32(0x5eed_0002);
  for (let i = 0; i < FUZZ_CASES; i++) {
    const input = mutate(random, FFMPEG_AVCC);
    expectReturnOrCodecError(() => {
      const config = parseAvcDecoderConfig(input);
      const bytes = config.sps.concat(config.pps).reduce((sum, set) => sum + 2 + set.length, 7);
      assert.ok(bytes <= input.length, "parameter sets fit in the record");
    }, input);
  }
});

Deno.test("fuzz: iterateAvccNalUnits and slice parsing return or throw CodecError", () => {
  const random = mulberry32(0x5eed_0003);
  const seeds = accessUnits(fixtureNals("bframes_320x180.h264"))
    .slice(0, 4)
    .map((unit) => nalUnitsToAvcc(unit.map((nal) => nal.subarray(0, 24))));
  const sizes = [1, 2, 4] as const;
  for (let i = 0; i < FUZZ_CASES; i++) {
    const input = mutate(random, seeds[i % seeds.length]);
    const lengthSize = sizes[i % 3];
    expectReturnOrCodecError(() => {
      let total = 0;
      for (const nal of iterateAvccNalUnits(input, lengthSize)) {
        total += lengthSize + nal.length;
        sliceType(nal);
      }
      assert.ok(total <= input.length);
    }, input);
    expectReturnOrCodecError(() => containsBSlice(input, lengthSize), input);
    expectReturnOrCodecError(() => isKeyframeAvcc(input, lengthSize), input);
    for (const nal of annexBToNalUnits(input)) assert.ok(nal.length > 0);
  }
});
