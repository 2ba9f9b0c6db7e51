import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  AmfEcmaArray,
  AmfError,
  amfNumber,
  type AmfObject,
  amfProp,
  amfString,
  type AmfValue,
  decodeAmf0,
  decodeAmf0Value,
  encodeAmf0,
} from "../../lib/rtmp/amf0.ts";
import { mulberry32 } from "../support/prng.ts";

// ---------------------------------------------------------------------------
// Helpers

/** Bytes from a hex string; whitespace is ignored. */
function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Bytes of an ASCII string. */
function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (ch) => ch.charCodeAt(0));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Runs `fn` and requires it either to return or to throw AmfError, within `ms`. */
function decodesOrAmfError(bytes: Uint8Array, fn: () => unknown, ms = 100): unknown {
  const start = performance.now();
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    if (!(e instanceof AmfError)) {
      throw new Error(`expected AmfError or success for bytes ${toHex(bytes)}, got ${e}`);
    }
  }
  const took = performance.now() - start;
  ok(took < ms, `decoding ${bytes.length} bytes took ${took.toFixed(1)} ms`);
  return result;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function roundTrip(value: AmfValue): AmfValue {
  const bytes = encodeAmf0(value);
  const { value: decoded, next } = decodeAmf0Value(bytes, 0);
  strictEqual(next, bytes.length);
  return decoded;
}

// ---------------------------------------------------------------------------
// Round trips

Deno.test("amf0: round-trips numbers", () => {
  for (const n of [0, -0, 1, -1.5, 3.141592653589793, 2 ** 53, -(2 ** 60), Infinity, -Infinity]) {
    strictEqual(Object.is(roundTrip(n), n), true, `number ${n}`);
  }
  ok(Number.isNaN(roundTrip(NaN)));
  deepStrictEqual(encodeAmf0(1), hex("00 3ff0000000000000"));
});

Deno.test("amf0: round-trips booleans, null and undefined", () => {
  strictEqual(roundTrip(true), true);
  strictEqual(roundTrip(false), false);
  strictEqual(roundTrip(null), null);
  strictEqual(roundTrip(undefined), undefined);
  deepStrictEqual(encodeAmf0(true, false, null, undefined), hex("0101 0100 05 06"));
  // Any non-zero byte is true.
  deepStrictEqual(decodeAmf0(hex("01 7f")), [true]);
});

Deno.test("amf0: round-trips strings, UTF-8 and long strings", () => {
  for (const s of ["", "live", "héllo wörld", "日本語", "🎥 stream", "\uFEFFbom-first"]) {
    strictEqual(roundTrip(s), s);
  }
  deepStrictEqual(encodeAmf0("é"), hex("02 0002 c3a9"));

  const atLimit = "a".repeat(0xffff);
  const overLimit = "a".repeat(0x10000);
  strictEqual(encodeAmf0(atLimit)[0], 0x02);
  strictEqual(encodeAmf0(overLimit)[0], 0x0c);
  strictEqual(roundTrip(atLimit), atLimit);
  strictEqual(roundTrip(overLimit), overLimit);
  // Multi-byte characters count by UTF-8 bytes, not UTF-16 units.
  const wide = "é".repeat(40000);
  strictEqual(encodeAmf0(wide)[0], 0x0c);
  strictEqual(roundTrip(wide), wide);
});

Deno.test("amf0: round-trips dates", () => {
  const d = new Date(Date.UTC(2024, 4, 1, 12, 30, 15, 250));
  const back = roundTrip(d);
  ok(back instanceof Date);
  strictEqual(back.getTime(), d.getTime());
  deepStrictEqual(encodeAmf0(new Date(0)), hex("0b 0000000000000000 0000"));
  // A non-zero time zone field is accepted and ignored.
  deepStrictEqual(decodeAmf0(hex("0b 0000000000000000 ffc4")), [new Date(0)]);
});

Deno.test("amf0: round-trips objects, ECMA arrays and strict arrays", () => {
  const obj: AmfObject = { a: 1, b: "two", c: null, d: undefined, e: [true, false], f: { g: {} } };
  deepStrictEqual(roundTrip(obj), obj);
  deepStrictEqual(encodeAmf0({ a: 1 }), hex("03 0001 61 00 3ff0000000000000 000009"));

  const ecma = new AmfEcmaArray({ duration: 0, width: 1280, nested: new AmfEcmaArray({}) });
  const back = roundTrip(ecma);
  ok(back instanceof AmfEcmaArray);
  deepStrictEqual(back, ecma);
  deepStrictEqual(encodeAmf0(new AmfEcmaArray({})), hex("08 00000000 000009"));

  const arr: AmfValue[] = [1, "x", null, [2, [3]], { k: "v" }, new AmfEcmaArray({ q: 1 })];
  deepStrictEqual(roundTrip(arr), arr);
  deepStrictEqual(encodeAmf0([]), hex("0a 00000000"));
  // Holes encode as undefined.
  deepStrictEqual(roundTrip(new Array(2)), [undefined, undefined]);
});

Deno.test("amf0: encoding skips function-valued keys and rejects what AMF0 cannot carry", () => {
  const withMethod = { a: 1, f: () => 1 } as unknown as AmfObject;
  deepStrictEqual(encodeAmf0(withMethod), encodeAmf0({ a: 1 }));
  const ecma = new AmfEcmaArray({ a: 1, f: (() => 1) as unknown as AmfValue });
  deepStrictEqual(encodeAmf0(ecma), hex("08 00000001 0001 61 00 3ff0000000000000 000009"));

  throws(() => encodeAmf0((() => 1) as unknown as AmfValue), AmfError);
  throws(() => encodeAmf0(Symbol("x") as unknown as AmfValue), AmfError);
  throws(() => encodeAmf0(1n as unknown as AmfValue), AmfError);
  const cyclic: AmfObject = {};
  cyclic.self = cyclic;
  throws(() => encodeAmf0(cyclic), /acyclic/);
  throws(() => encodeAmf0({ ["k".repeat(0x10000)]: 1 }), AmfError);
  // The same object twice (not nested in itself) is fine.
  const shared = { x: 1 };
  deepStrictEqual(roundTrip([shared, shared]), [{ x: 1 }, { x: 1 }]);
});

Deno.test("amf0: encodes several values back to back and decodes them all", () => {
  const values: AmfValue[] = ["_result", 1, null, { code: "NetConnection.Connect.Success" }];
  deepStrictEqual(decodeAmf0(encodeAmf0(...values)), values);
  deepStrictEqual(decodeAmf0(new Uint8Array()), []);
  deepStrictEqual(encodeAmf0(), new Uint8Array());
});

// ---------------------------------------------------------------------------
// Fixtures

// An ffmpeg-style `connect` command body, written out byte by byte.
const CONNECT = concat(
  hex("02 0007"),
  ascii("connect"),
  hex("00 3ff0000000000000"), // transaction id 1
  hex("03"),
  hex("0003"),
  ascii("app"),
  hex("02 0004"),
  ascii("live"),
  hex("0004"),
  ascii("type"),
  hex("02 000a"),
  ascii("nonprivate"),
  hex("0008"),
  ascii("flashVer"),
  hex("02 001f"),
  ascii("FMLE/3.0 (compatible; FMSc/1.0)"),
  hex("0005"),
  ascii("tcUrl"),
  hex("02 001a"),
  ascii("rtmp://127.0.0.1:1935/live"),
  hex("000009"),
);

const CONNECT_VALUES: AmfValue[] = [
  "connect",
  1,
  {
    app: "live",
    type: "nonprivate",
    flashVer: "FMLE/3.0 (compatible; FMSc/1.0)",
    tcUrl: "rtmp://127.0.0.1:1935/live",
  },
];

Deno.test("amf0: decodes an ffmpeg connect command", () => {
  const values = decodeAmf0(CONNECT);
  deepStrictEqual(values, CONNECT_VALUES);
  const [name, txn, cmd] = values;
  strictEqual(amfString(name), "connect");
  strictEqual(amfNumber(txn), 1);
  strictEqual(amfString(amfProp(cmd, "app")), "live");
  strictEqual(amfString(amfProp(cmd, "tcUrl")), "rtmp://127.0.0.1:1935/live");
  // Encoding the same values reproduces ffmpeg's bytes exactly.
  deepStrictEqual(encodeAmf0(...CONNECT_VALUES), CONNECT);
});

// `@setDataFrame`, `onMetaData`, then the ECMA array, as ffmpeg's FLV muxer sends it.
const METADATA = concat(
  hex("02 000d"),
  ascii("@setDataFrame"),
  hex("02 000a"),
  ascii("onMetaData"),
  hex("08 00000005"),
  hex("0008"),
  ascii("duration"),
  hex("00 0000000000000000"),
  hex("0005"),
  ascii("width"),
  hex("00 4094000000000000"), // 1280
  hex("0006"),
  ascii("height"),
  hex("00 4086800000000000"), // 720
  hex("0007"),
  ascii("encoder"),
  hex("02 000d"),
  ascii("Lavf60.16.100"),
  hex("0006"),
  ascii("stereo"),
  hex("01 01"),
  hex("000009"),
);

Deno.test("amf0: decodes an onMetaData ECMA array", () => {
  const [set, name, meta] = decodeAmf0(METADATA);
  strictEqual(set, "@setDataFrame");
  strictEqual(name, "onMetaData");
  ok(meta instanceof AmfEcmaArray);
  deepStrictEqual(meta.entries, {
    duration: 0,
    width: 1280,
    height: 720,
    encoder: "Lavf60.16.100",
    stereo: true,
  });
  strictEqual(amfNumber(amfProp(meta, "width")), 1280);
  strictEqual(amfProp(meta, "missing"), undefined);
  deepStrictEqual(encodeAmf0(set, name, meta), METADATA);
});

Deno.test("amf0: ECMA array count is a hint; the end marker decides", () => {
  const wrongCount = hex("08 00000063 0001 61 05 000009"); // claims 99, holds 1
  deepStrictEqual(decodeAmf0(wrongCount), [new AmfEcmaArray({ a: null })]);
  const zeroCount = hex("08 00000000 0001 61 05 0001 62 05 000009");
  deepStrictEqual(decodeAmf0(zeroCount), [new AmfEcmaArray({ a: null, b: null })]);
});

Deno.test("amf0: decodes typed objects as objects and XML documents as strings", () => {
  const typed = concat(hex("10 0003"), ascii("Foo"), hex("0001 78 00 4000000000000000 000009"));
  deepStrictEqual(decodeAmf0(typed), [{ x: 2 }]);
  deepStrictEqual(decodeAmf0(concat(hex("0f 00000003"), ascii("<a>"))), ["<a>"]);
  deepStrictEqual(decodeAmf0(hex("0d")), [undefined]);
});

Deno.test("amf0: decodeAmf0Value reports the next offset and checks it", () => {
  const first = decodeAmf0Value(CONNECT, 0);
  strictEqual(first.value, "connect");
  strictEqual(first.next, 10);
  const second = decodeAmf0Value(CONNECT, first.next);
  strictEqual(second.value, 1);
  strictEqual(second.next, 19);
  throws(() => decodeAmf0Value(CONNECT, CONNECT.length), AmfError);
  throws(() => decodeAmf0Value(CONNECT, -1), RangeError);
  throws(() => decodeAmf0Value(CONNECT, CONNECT.length + 1), RangeError);
  throws(() => decodeAmf0Value(CONNECT, 0.5), RangeError);
});

Deno.test("amf0: decodes from a view into a larger buffer", () => {
  const big = new Uint8Array(CONNECT.length + 20);
  big.set(CONNECT, 7);
  deepStrictEqual(decodeAmf0(big.subarray(7, 7 + CONNECT.length)), CONNECT_VALUES);
});

Deno.test("amf0: keys such as __proto__ become own properties", () => {
  const bytes = concat(hex("03 0009"), ascii("__proto__"), hex("03 0001 70 01 01 000009 000009"));
  const [obj] = decodeAmf0(bytes);
  ok(obj !== null && typeof obj === "object");
  strictEqual(Object.getPrototypeOf(obj), Object.prototype);
  ok(Object.hasOwn(obj, "__proto__"));
  deepStrictEqual(amfProp(obj, "__proto__"), { p: true });
  strictEqual(({} as Record<string, unknown>).p, undefined);
  // amfProp never reads through the prototype.
  strictEqual(amfProp({}, "toString"), undefined);
});

Deno.test("amf0: helpers narrow or give undefined", () => {
  strictEqual(amfString("x"), "x");
  strictEqual(amfString(1), undefined);
  strictEqual(amfNumber(2), 2);
  strictEqual(amfNumber("2"), undefined);
  strictEqual(amfProp({ a: 1 }, "a"), 1);
  strictEqual(amfProp(["a"], "0"), undefined);
  strictEqual(amfProp("abc", "length"), undefined);
  strictEqual(amfProp(null, "a"), undefined);
  strictEqual(amfProp(new Date(0), "a"), undefined);
});

// ---------------------------------------------------------------------------
// Malformed input

Deno.test("amf0: every truncation of a value throws AmfError", () => {
  const samples: AmfValue[] = [
    1,
    true,
    "connect",
    "x".repeat(70000),
    new Date(5),
    CONNECT_VALUES[2],
    new AmfEcmaArray({ a: 1, b: [1, 2, { c: "d" }] }),
    [1, [2, [3, "four"]], null, undefined],
  ];
  const encodings = samples.map((v) => encodeAmf0(v));
  encodings.push(
    concat(hex("10 0003"), ascii("Foo"), hex("0001 78 05 000009")),
    concat(hex("0f 00000003"), ascii("<a>")),
  );
  for (const bytes of encodings) {
    // The long string: check every prefix near the edges, not all 70000.
    const lengths = bytes.length > 1000
      ? [...Array(200).keys(), ...Array.from({ length: 200 }, (_, i) => bytes.length - 1 - i)]
      : [...Array(bytes.length).keys()];
    for (const n of lengths) {
      const prefix = bytes.subarray(0, n);
      throws(
        () => decodeAmf0Value(prefix, 0),
        AmfError,
        `prefix ${n} of a ${bytes.length}-byte value`,
      );
      if (n > 0) throws(() => decodeAmf0(prefix), AmfError);
    }
  }
  // Prefixes of a whole command either stop at a value boundary or throw AmfError.
  for (let n = 0; n < CONNECT.length; n++) {
    const values = decodesOrAmfError(CONNECT, () => decodeAmf0(CONNECT.subarray(0, n)));
    if (values !== undefined) ok((values as AmfValue[]).length < 3);
  }
  for (let n = 0; n < METADATA.length; n++) {
    decodesOrAmfError(METADATA, () => decodeAmf0(METADATA.subarray(0, n)));
  }
});

Deno.test("amf0: an object without its end marker throws AmfError", () => {
  throws(() => decodeAmf0(hex("03 0001 61 05")), /end marker/);
  throws(() => decodeAmf0(hex("03 0001 61 05 0000")), AmfError);
  throws(() => decodeAmf0(hex("08 00000001 0001 61 05")), AmfError);
  // A bare object-end where a value belongs is an error, not an empty value.
  throws(() => decodeAmf0(hex("09")), /object-end/);
  throws(() => decodeAmf0(hex("03 0001 61 09")), /object-end/);
});

Deno.test("amf0: unknown markers, references and AMF3 throw AmfError", () => {
  for (const marker of [0x04, 0x0e, 0x12, 0x7f, 0xff]) {
    throws(() => decodeAmf0(new Uint8Array([marker, 0, 0, 0, 0])), /type marker/);
  }
  throws(() => decodeAmf0(hex("07 0000")), /references are not supported/);
  throws(() => decodeAmf0(hex("11 06 05 61")), /AMF3/);
});

Deno.test("amf0: a depth bomb of 1000 nested containers throws AmfError", () => {
  const depth = 1000;
  const objects = concat(
    hex("03"),
    ...Array.from({ length: depth - 1 }, () => hex("0001 61 03")),
    ...Array.from({ length: depth }, () => hex("000009")),
  );
  throws(() => decodeAmf0(objects), /maxDepth/);
  // Even the largest allowed maxDepth stays clear of the call stack limit.
  throws(() => decodeAmf0(objects, { maxDepth: 999 }), /maxDepth/);
  deepStrictEqual(decodeAmf0(objects, { maxDepth: 1000 }).length, 1);

  const arrays = concat(...Array.from({ length: depth }, () => hex("0a 00000001")), hex("05"));
  throws(() => decodeAmf0(arrays), /maxDepth/);
  const ecmas = concat(
    ...Array.from({ length: depth }, () => hex("08 00000001 0001 61")),
    hex("05"),
    ...Array.from({ length: depth }, () => hex("000009")),
  );
  throws(() => decodeAmf0(ecmas), /maxDepth/);
  // A bomb with no end markers at all fails on depth before truncation.
  throws(() => decodeAmf0(hex("03" + " 0001 61 03".repeat(5000))), /maxDepth/);
});

Deno.test("amf0: maxDepth counts containers, default 32", () => {
  const nested = (n: number): AmfValue => n === 0 ? 1 : [nested(n - 1)];
  deepStrictEqual(decodeAmf0(encodeAmf0(nested(32))), [nested(32)]);
  throws(() => decodeAmf0(encodeAmf0(nested(33))), /maxDepth 32/);
  deepStrictEqual(decodeAmf0(encodeAmf0({ a: 1 }), { maxDepth: 1 }), [{ a: 1 }]);
  throws(() => decodeAmf0(encodeAmf0({}), { maxDepth: 0 }), AmfError);
  deepStrictEqual(decodeAmf0(encodeAmf0("flat", 1), { maxDepth: 0 }), ["flat", 1]);
  throws(() => decodeAmf0(CONNECT, { maxDepth: 2000 }), RangeError);
  throws(() => decodeAmf0(CONNECT, { maxDepth: -1 }), RangeError);
  throws(() => decodeAmf0(CONNECT, { maxItems: 1.5 }), RangeError);
});

Deno.test("amf0: maxItems bounds every container", () => {
  const many = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, i]));
  deepStrictEqual(decodeAmf0(encodeAmf0(many), { maxItems: 5 }), [many]);
  throws(() => decodeAmf0(encodeAmf0(many), { maxItems: 4 }), /maxItems 4/);
  throws(() => decodeAmf0(encodeAmf0(new AmfEcmaArray(many)), { maxItems: 4 }), /maxItems/);
  throws(() => decodeAmf0(encodeAmf0([1, 2, 3, 4, 5]), { maxItems: 4 }), /maxItems/);
  const big = Array.from({ length: 4097 }, () => null);
  throws(() => decodeAmf0(encodeAmf0(big)), /maxItems 4096/);
  deepStrictEqual(decodeAmf0(encodeAmf0(big.slice(1))), [big.slice(1)]);
});

Deno.test("amf0: a strict array claiming 2^31 elements throws quickly", () => {
  const bomb = hex("0a 80000000 05 05 05");
  const start = performance.now();
  throws(() => decodeAmf0(bomb), /maxItems/);
  // Even with maxItems lifted, the remaining bytes bound the count before allocation.
  throws(() => decodeAmf0(bomb, { maxItems: 2 ** 32 }), /only 3 bytes remain/);
  throws(() => decodeAmf0(hex("0a ffffffff"), { maxItems: 2 ** 32 }), AmfError);
  ok(performance.now() - start < 50);
});

Deno.test("amf0: lengths beyond the input throw AmfError", () => {
  throws(() => decodeAmf0(hex("02 ffff 61")), /string/);
  throws(() => decodeAmf0(hex("0c ffffffff 61")), /long string/);
  throws(() => decodeAmf0(hex("03 ffff 61")), /object key/);
  throws(() => decodeAmf0(hex("10 ffff")), /class name/);
});

// ---------------------------------------------------------------------------
// Fuzzing

const MARKERS = [
  0x00,
  0x01,
  0x02,
  0x03,
  0x05,
  0x06,
  0x07,
  0x08,
  0x09,
  0x0a,
  0x0b,
  0x0c,
  0x10,
  0x11,
];

function randomString(rand: () => number): string {
  const length = Math.floor(rand() * 12);
  let s = "";
  for (let i = 0; i < length; i++) {
    const r = rand();
    // Mostly ASCII, some 2-, 3- and 4-byte UTF-8; never lone surrogates.
    const cp = r < 0.7
      ? 0x20 + Math.floor(rand() * 95)
      : r < 0.8
      ? 0x80 + Math.floor(rand() * 0x700)
      : r < 0.9
      ? 0xe000 + Math.floor(rand() * 0x1000)
      : 0x10000 + Math.floor(rand() * 0x1000);
    s += String.fromCodePoint(cp);
  }
  return s;
}

function randomValue(rand: () => number, depth: number): AmfValue {
  const kinds = depth >= 4 ? 7 : 10;
  switch (Math.floor(rand() * kinds)) {
    case 0:
      return rand() < 0.5 ? Math.floor(rand() * 100000) : (rand() - 0.5) * 1e12;
    case 1:
      return rand() < 0.5;
    case 2:
      return randomString(rand);
    case 3:
      return null;
    case 4:
      return undefined;
    case 5:
      return new Date(Math.floor(rand() * 2e12));
    case 6:
      return randomString(rand);
    case 7:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    case 8:
      return randomObject(rand, depth);
    default:
      return new AmfEcmaArray(randomObject(rand, depth));
  }
}

function randomObject(rand: () => number, depth: number): AmfObject {
  const obj: AmfObject = {};
  const n = Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) obj[randomString(rand)] = randomValue(rand, depth + 1);
  return obj;
}

function mutate(rand: () => number, input: Uint8Array): Uint8Array {
  const bytes = Array.from(input);
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    switch (Math.floor(rand() * 6)) {
      case 0: // flip one byte
        if (at < bytes.length) bytes[at] = Math.floor(rand() * 256);
        break;
      case 1: // insert a byte
        bytes.splice(at, 0, Math.floor(rand() * 256));
        break;
      case 2: // delete a byte
        bytes.splice(at, 1);
        break;
      case 3: // truncate
        bytes.length = at;
        break;
      case 4: // blow up a would-be length field
        for (let i = 0; i < 4 && at + i < bytes.length; i++) bytes[at + i] = 0xff;
        break;
      default: // plant a valid marker
        if (at < bytes.length) bytes[at] = MARKERS[Math.floor(rand() * MARKERS.length)];
    }
  }
  return Uint8Array.from(bytes);
}

/** Decoded values must re-encode, and re-decoding them must be a fixpoint. */
function checkStable(values: AmfValue[]): void {
  const once = encodeAmf0(...values);
  const twice = encodeAmf0(...decodeAmf0(once, { maxItems: 2 ** 32, maxDepth: 1024 }));
  deepStrictEqual(twice, once);
}

Deno.test("amf0: round-trips 2000 random values", () => {
  const rand = mulberry32(0x5eed);
  for (let i = 0; i < 2000; i++) {
    const value = randomValue(rand, 0);
    deepStrictEqual(roundTrip(value), value);
  }
});

Deno.test("amf0: 5000 random byte strings decode or throw AmfError", () => {
  const rand = mulberry32(0xc0ffee);
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    const bytes = new Uint8Array(Math.floor(rand() * 64));
    for (let j = 0; j < bytes.length; j++) {
      // Bias toward real markers and small numbers so parsing gets past the first byte.
      const r = rand();
      bytes[j] = r < 0.3
        ? MARKERS[Math.floor(rand() * MARKERS.length)]
        : r < 0.6
        ? Math.floor(rand() * 4)
        : Math.floor(rand() * 256);
    }
    const values = decodesOrAmfError(bytes, () => decodeAmf0(bytes));
    if (values !== undefined) {
      decoded++;
      checkStable(values as AmfValue[]);
    }
    decodesOrAmfError(bytes, () => decodeAmf0Value(bytes, Math.floor(rand() * bytes.length)));
  }
  ok(decoded > 0, "some random inputs should decode");
});

Deno.test("amf0: 5000 mutations of valid encodings decode or throw AmfError", () => {
  const rand = mulberry32(0xbadf00d);
  let decoded = 0;
  let failed = 0;
  for (let i = 0; i < 5000; i++) {
    const source = i % 10 === 0
      ? (i % 20 === 0 ? CONNECT : METADATA)
      : encodeAmf0(randomValue(rand, 0), randomValue(rand, 0));
    const bytes = mutate(rand, source);
    const values = decodesOrAmfError(bytes, () => decodeAmf0(bytes, { maxDepth: 8, maxItems: 64 }));
    if (values === undefined) {
      failed++;
    } else {
      decoded++;
      checkStable(values as AmfValue[]);
    }
  }
  ok(decoded > 0 && failed > 0, `decoded ${decoded}, failed ${failed}`);
});
