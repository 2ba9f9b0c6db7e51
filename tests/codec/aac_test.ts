import assert from "node:assert/strict";
import {
  type AudioSpecificConfig,
  buildAudioSpecificConfig,
  CodecError,
  parseAudioSpecificConfig,
} from "../../lib/codec/mod.ts";
import { mulberry32 } from "../support/prng.ts";

/** Bytes from a string of bit groups ("00010 0100 0010 000"), zero-padded to a byte. */
function bits(text: string): Uint8Array {
  const digits = text.replace(/\s/g, "");
  const out = new Uint8Array(Math.ceil(digits.length / 8));
  for (let i = 0; i < digits.length; i++) {
    if (digits[i] === "1") out[i >> 3] |= 0x80 >> (i & 7);
  }
  return out;
}

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.replace(/\s/g, "").match(/../g)!, (byte) => parseInt(byte, 16));
}

const LC = { sbr: false, ps: false, frameLength: 1024, codecString: "mp4a.40.2" } as const;

// ffmpeg's native encoder writes the 2-byte LC config plus a 0x2b7 sync extension that
// says "no SBR" (ffprobe -show_data on `-c:a aac` output; see tests/fixtures/codec/generate.sh).
Deno.test("parseAudioSpecificConfig: ffmpeg's AAC-LC configs", () => {
  const cases: [string, Partial<AudioSpecificConfig>][] = [
    ["12 10 56 e5 00", { sampleRate: 44100, channels: 2, channelConfiguration: 2 }],
    ["11 88 56 e5 00", { sampleRate: 48000, channels: 1, channelConfiguration: 1 }],
    ["15 b0 56 e5 00", { sampleRate: 8000, channels: 6, channelConfiguration: 6 }],
  ];
  for (const [asc, expected] of cases) {
    assert.deepEqual(parseAudioSpecificConfig(hex(asc)), {
      objectType: 2,
      ...LC,
      ...expected,
      profileName: "AAC-LC",
    });
  }
});

Deno.test("parseAudioSpecificConfig: the bare 2-byte forms", () => {
  const stereo = parseAudioSpecificConfig(hex("12 10"));
  assert.deepEqual(
    [stereo.objectType, stereo.sampleRate, stereo.channels, stereo.sbr, stereo.frameLength],
    [2, 44100, 2, false, 1024],
  );
  assert.equal(stereo.extensionSampleRate, undefined);
  const mono = parseAudioSpecificConfig(hex("11 88"));
  assert.deepEqual([mono.sampleRate, mono.channels], [48000, 1]);
  const main = parseAudioSpecificConfig(bits("00001 0100 0010 000"));
  assert.deepEqual([main.objectType, main.profileName, main.codecString], [
    1,
    "AAC-Main",
    "mp4a.40.1",
  ]);
  const surround = parseAudioSpecificConfig(bits("00010 0011 0111 000"));
  assert.deepEqual([surround.channelConfiguration, surround.channels], [7, 8]);
});

Deno.test("parseAudioSpecificConfig: explicit HE-AAC (object type 5)", () => {
  // SBR, 22050 Hz core, stereo, SBR at 44100 Hz, core AAC-LC, GASpecificConfig.
  const asc = hex("2b 92 08 00");
  assert.deepEqual(asc, bits("00101 0111 0010 0100 00010 000"));
  assert.deepEqual(parseAudioSpecificConfig(asc), {
    objectType: 2,
    sampleRate: 22050,
    channels: 2,
    channelConfiguration: 2,
    sbr: true,
    ps: false,
    extensionSampleRate: 44100,
    frameLength: 1024,
    codecString: "mp4a.40.5",
    profileName: "HE-AAC",
  });
});

Deno.test("parseAudioSpecificConfig: explicit HE-AACv2 (object type 29)", () => {
  const config = parseAudioSpecificConfig(bits("11101 0110 0001 0011 00010 000"));
  assert.deepEqual(
    [config.objectType, config.sampleRate, config.channels, config.extensionSampleRate],
    [2, 24000, 1, 48000],
  );
  assert.deepEqual([config.sbr, config.ps, config.codecString, config.profileName], [
    true,
    true,
    "mp4a.40.29",
    "HE-AACv2",
  ]);
});

Deno.test("parseAudioSpecificConfig: backward-compatible SBR and PS (sync 0x2b7, 0x548)", () => {
  const core = "00010 0111 0010 000"; // AAC-LC, 22050 Hz, stereo
  const sbr = parseAudioSpecificConfig(bits(`${core} 01010110111 00101 1 0100`));
  assert.deepEqual([sbr.objectType, sbr.sampleRate, sbr.extensionSampleRate], [2, 22050, 44100]);
  assert.deepEqual([sbr.sbr, sbr.ps, sbr.profileName], [true, false, "HE-AAC"]);

  const ps = parseAudioSpecificConfig(
    bits("00010 0110 0001 000 01010110111 00101 1 0011 10101001000 1"),
  );
  assert.deepEqual([ps.sampleRate, ps.channels, ps.extensionSampleRate], [24000, 1, 48000]);
  assert.deepEqual([ps.sbr, ps.ps, ps.codecString, ps.profileName], [
    true,
    true,
    "mp4a.40.29",
    "HE-AACv2",
  ]);

  // An unknown sync word or a broken extension leaves the core config standing.
  assert.equal(parseAudioSpecificConfig(bits(`${core} 01010110110 00101 1 0100`)).sbr, false);
  assert.equal(parseAudioSpecificConfig(bits(`${core} 01010110111 00101 1 1101`)).sbr, false);
});

Deno.test("parseAudioSpecificConfig: 960-sample frames", () => {
  const config = parseAudioSpecificConfig(hex("11 94"));
  assert.deepEqual(config, {
    objectType: 2,
    sampleRate: 48000,
    channels: 2,
    channelConfiguration: 2,
    ...LC,
    frameLength: 960,
    profileName: "AAC-LC",
  });
});

Deno.test("parseAudioSpecificConfig: escaped object type (31 → 32 + 6 bits)", () => {
  // ER AAC-ELD (39), 48 kHz mono; the ELDSpecificConfig after it is not read.
  const eld = parseAudioSpecificConfig(hex("f8 e6 20 00"));
  assert.deepEqual(hex("f8 e6 20"), bits("11111 000111 0011 0001"));
  assert.deepEqual(
    [eld.objectType, eld.sampleRate, eld.channels, eld.codecString, eld.profileName],
    [39, 48000, 1, "mp4a.40.39", "ER AAC-ELD"],
  );
  const usac = parseAudioSpecificConfig(bits("11111 001010 0100 0010 0000"));
  assert.deepEqual([usac.objectType, usac.profileName], [42, "USAC"]);
  const unnamed = parseAudioSpecificConfig(bits("11111 111111 0100 0010"));
  assert.deepEqual([unnamed.objectType, unnamed.profileName], [95, "AOT 95"]);
});

Deno.test("parseAudioSpecificConfig: explicit 24-bit sampling frequency (index 15)", () => {
  const rate = (37800).toString(2).padStart(24, "0");
  const config = parseAudioSpecificConfig(bits(`00010 1111 ${rate} 0010 000`));
  assert.deepEqual([config.sampleRate, config.channels, config.sbr], [37800, 2, false]);
  const sbr = parseAudioSpecificConfig(bits(`00101 1111 ${rate} 0001 1111 ${rate} 00010 000`));
  assert.deepEqual([sbr.sampleRate, sbr.extensionSampleRate], [37800, 37800]);
});

Deno.test("parseAudioSpecificConfig: a program config element is skipped, channels 0", () => {
  const pce = [
    "0000 01 0100", // element_instance_tag, object_type, sampling_frequency_index
    "0001 0000 0001 01 000 0000", // 1 front, 0 side, 1 back, 1 LFE, no assoc data, no CC
    "0 0 0", // no mixdowns
    "1 0000", // front: a channel pair
    "0 0001", // back: a single channel
    "0010", // LFE
  ].join(" ");
  const head = `00010 0011 0000 000 ${pce}`;
  const aligned = head.replace(/\s/g, "").length % 8;
  const pad = "0".repeat((8 - aligned) % 8);
  const comment = "00000010 01101000 01101001"; // comment_field_bytes = 2, "hi"
  const config = parseAudioSpecificConfig(
    bits(`${head} ${pad} ${comment} 01010110111 00101 1 0011`),
  );
  assert.deepEqual(
    [config.channelConfiguration, config.channels, config.sampleRate],
    [0, 0, 48000],
  );
  assert.deepEqual([config.sbr, config.extensionSampleRate], [true, 48000]);
});

Deno.test("parseAudioSpecificConfig rejects malformed configs", () => {
  const cases: [Uint8Array, RegExp][] = [
    [hex("12"), /at least 2 bytes, got 1/],
    [bits("00000 0100 0010 000"), /object type of 1..95, got 0/],
    [bits("00010 1101 0010 000"), /samplingFrequencyIndex 0..12 or 15, got reserved 13/],
    [bits("00010 0100 1001 000"), /channelConfiguration 0..7 or 11..14, got reserved 9/],
    [bits("00010 1111 0000 0000 0000"), /more bits/],
    [bits(`00010 1111 ${"0".repeat(24)} 0010 000`), /explicit sampling frequency above 0/],
    [bits("00101 0111 0010 1110 00010 000"), /reserved 14/],
    [bits("11111 0000"), /more bits/],
  ];
  for (const [asc, message] of cases) {
    assert.throws(() => parseAudioSpecificConfig(asc), (error: unknown) => {
      assert.ok(error instanceof CodecError, String(error));
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("buildAudioSpecificConfig writes the canonical bytes and round-trips", () => {
  assert.deepEqual(buildAudioSpecificConfig(2, 44100, 2), hex("12 10"));
  assert.deepEqual(buildAudioSpecificConfig(2, 48000, 1), hex("11 88"));
  assert.deepEqual(buildAudioSpecificConfig(2, 48000, 2), hex("11 90"));
  for (const [type, rate, channels] of [[2, 8000, 6], [1, 96000, 8], [4, 7350, 3], [2, 37800, 2]]) {
    const config = parseAudioSpecificConfig(buildAudioSpecificConfig(type, rate, channels));
    assert.deepEqual([config.objectType, config.sampleRate, config.channels], [
      type,
      rate,
      channels,
    ]);
    assert.equal(config.frameLength, 1024);
  }
  assert.equal(buildAudioSpecificConfig(2, 37800, 2).length, 5);
});

Deno.test("buildAudioSpecificConfig rejects what it cannot express", () => {
  const bad: [number, number, number][] = [
    [0, 44100, 2],
    [5, 44100, 2],
    [2.5, 44100, 2],
    [2, 0, 2],
    [2, 2 ** 24, 2],
    [2, 44100.5, 2],
    [2, 44100, 0],
    [2, 44100, 7],
    [2, 44100, 9],
  ];
  for (const args of bad) assert.throws(() => buildAudioSpecificConfig(...args), CodecError);
});

Deno.test("fuzz: parseAudioSpecificConfig returns or throws CodecError", () => {
  const random = mulberry32(0x5eed_00ac);
  const int = (n: number) => Math.floor(random() * n);
  const seeds = [
    hex("12 10 56 e5 00"),
    hex("2b 92 08 00"),
    bits("11101 0110 0001 0011 00010 000"),
    bits("00010 0110 0001 000 01010110111 00101 1 0011 10101001000 1"),
    bits("00010 0011 0000 000 0000 01 0100 0001 0000 0001 01 000 0000 000 10000 00001 0010"),
    hex("f8 e6 20 00"),
  ];
  for (let i = 0; i < 3000; i++) {
    let input: Uint8Array;
    if (i % 4 === 0) {
      input = Uint8Array.from({ length: int(12) }, () => int(256));
    } else {
      input = seeds[i % seeds.length].slice();
      for (let edit = 0; edit <= int(4); edit++) input[int(input.length)] ^= 1 << int(8);
      if (i % 3 === 0) input = input.subarray(0, int(input.length + 1));
    }
    try {
      const config = parseAudioSpecificConfig(input);
      assert.ok(config.objectType >= 1 && config.objectType <= 95);
      assert.ok(config.sampleRate > 0 && Number.isInteger(config.sampleRate));
      assert.match(config.codecString, /^mp4a\.40\.\d+$/);
    } catch (error) {
      if (!(error instanceof CodecError)) {
        assert.fail(`expected CodecError, got ${error} for ${input.join(",")}`);
      }
    }
  }
});
