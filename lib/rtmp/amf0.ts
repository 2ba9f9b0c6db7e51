/**
 * AMF0 (Action Message Format, version 0): the value encoding of RTMP command
 * messages (type 20) and data messages (type 18, e.g. `onMetaData`).
 *
 * Every length and count read from the wire is checked against the bytes that
 * remain and against {@linkcode AmfDecodeOptions} before it is used, so hostile
 * input fails with an {@linkcode AmfError} instead of allocating or recursing
 * without limit.
 *
 * @example Decode the fields of an RTMP command
 * ```ts
 * import { amfNumber, amfProp, amfString, decodeAmf0, encodeAmf0 } from "./amf0.ts";
 *
 * const payload = encodeAmf0("connect", 1, { app: "live" });
 * const [name, transactionId, command] = decodeAmf0(payload);
 * amfString(name); // "connect"
 * amfNumber(transactionId); // 1
 * amfString(amfProp(command, "app")); // "live"
 * ```
 *
 * @module
 */

/** Any value AMF0 can carry. */
export type AmfValue =
  | number
  | boolean
  | string
  | null
  | undefined
  | Date
  | AmfValue[]
  | AmfObject
  | AmfEcmaArray;

/** An anonymous AMF0 object (type 0x03): string keys to values. */
export interface AmfObject {
  [key: string]: AmfValue;
}

/**
 * An AMF0 ECMA array (type 0x08), an associative array such as the body of
 * `onMetaData`. Kept distinct from {@linkcode AmfObject} so re-encoding emits
 * the same type marker.
 */
export class AmfEcmaArray {
  /** The array's entries, by key. */
  readonly entries: Record<string, AmfValue>;

  /** Wraps `entries` so it encodes as an ECMA array rather than an object. */
  constructor(entries: Record<string, AmfValue>) {
    this.entries = entries;
  }
}

/** Malformed AMF0 input, or a value that AMF0 cannot encode. */
export class AmfError extends Error {
  override name = "AmfError";
}

/** Bounds applied while decoding untrusted AMF0. */
export interface AmfDecodeOptions {
  /**
   * Deepest nesting of objects, ECMA arrays and strict arrays (a top-level
   * object is depth 1). Default 32; at most {@linkcode AMF0_MAX_DEPTH_LIMIT}.
   */
  maxDepth?: number;
  /** Most keys or elements in any one container. Default 4096. */
  maxItems?: number;
}

/** The largest `maxDepth` accepted, which keeps decoding recursion well inside the call stack. */
export const AMF0_MAX_DEPTH_LIMIT = 1024;

const DEFAULT_MAX_DEPTH = 32;
const DEFAULT_MAX_ITEMS = 4096;

const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const MOVIECLIP = 0x04;
const NULL = 0x05;
const UNDEFINED = 0x06;
const REFERENCE = 0x07;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;
const UNSUPPORTED = 0x0d;
const RECORDSET = 0x0e;
const XML_DOCUMENT = 0x0f;
const TYPED_OBJECT = 0x10;
const AVMPLUS = 0x11;

const MAX_U16 = 0xffff;
const MAX_U32 = 0xffffffff;

// ignoreBOM: a leading U+FEFF is part of the string, not a marker to strip.
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Decoding

interface Cursor {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  pos: number;
  readonly maxDepth: number;
  readonly maxItems: number;
}

/**
 * Decodes every AMF0 value in `bytes`, in order, until the end.
 *
 * @param bytes A whole AMF0 payload, e.g. the body of an RTMP command message.
 * @param options Bounds on nesting and container size.
 * @returns The decoded values; empty for empty input.
 * @throws {AmfError} On truncation, an unknown or unsupported type marker
 *   (including the AMF3 switch 0x11), nesting deeper than `maxDepth`, a
 *   container larger than `maxItems`, or an object without its end marker.
 * @throws {RangeError} If `options` are out of range.
 */
export function decodeAmf0(bytes: Uint8Array, options?: AmfDecodeOptions): AmfValue[] {
  const cursor = openCursor(bytes, 0, options);
  const values: AmfValue[] = [];
  while (cursor.pos < bytes.length) values.push(readValue(cursor, 0));
  return values;
}

/**
 * Decodes the one AMF0 value that starts at `offset`.
 *
 * @param bytes Buffer holding the value.
 * @param offset Index of the value's type marker.
 * @param options Bounds on nesting and container size.
 * @returns The value and the offset just past it.
 * @throws {AmfError} On malformed input, as {@linkcode decodeAmf0}; also when
 *   `offset` is at the end of `bytes`.
 * @throws {RangeError} If `offset` is not an integer within `bytes`, or
 *   `options` are out of range.
 */
export function decodeAmf0Value(
  bytes: Uint8Array,
  offset: number,
  options?: AmfDecodeOptions,
): { value: AmfValue; next: number } {
  if (!Number.isInteger(offset) || offset < 0 || offset > bytes.length) {
    throw new RangeError(
      `AMF0: expected an offset between 0 and ${bytes.length}, got ${offset}`,
    );
  }
  const cursor = openCursor(bytes, offset, options);
  const value = readValue(cursor, 0);
  return { value, next: cursor.pos };
}

function openCursor(bytes: Uint8Array, pos: number, options?: AmfDecodeOptions): Cursor {
  const maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
  const maxItems = options?.maxItems ?? DEFAULT_MAX_ITEMS;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > AMF0_MAX_DEPTH_LIMIT) {
    throw new RangeError(
      `AMF0: expected maxDepth to be an integer from 0 to ${AMF0_MAX_DEPTH_LIMIT}, got ${maxDepth}`,
    );
  }
  if (!Number.isInteger(maxItems) || maxItems < 0) {
    throw new RangeError(`AMF0: expected maxItems to be a non-negative integer, got ${maxItems}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { bytes, view, pos, maxDepth, maxItems };
}

function remaining(c: Cursor): number {
  return c.bytes.length - c.pos;
}

function need(c: Cursor, count: number, what: string): void {
  const left = remaining(c);
  if (left < count) {
    throw new AmfError(
      `AMF0: expected ${count} byte(s) of ${what} at offset ${c.pos}, but only ${left} remain`,
    );
  }
}

function readU8(c: Cursor, what: string): number {
  need(c, 1, what);
  return c.bytes[c.pos++];
}

function readU16(c: Cursor, what: string): number {
  need(c, 2, what);
  const v = c.view.getUint16(c.pos);
  c.pos += 2;
  return v;
}

function readU32(c: Cursor, what: string): number {
  need(c, 4, what);
  const v = c.view.getUint32(c.pos);
  c.pos += 4;
  return v;
}

function readF64(c: Cursor, what: string): number {
  need(c, 8, what);
  const v = c.view.getFloat64(c.pos);
  c.pos += 8;
  return v;
}

function readUtf8(c: Cursor, length: number, what: string): string {
  need(c, length, what);
  const s = utf8Decoder.decode(c.bytes.subarray(c.pos, c.pos + length));
  c.pos += length;
  return s;
}

/** `depth` is the number of containers already open around this value. */
function readValue(c: Cursor, depth: number): AmfValue {
  const at = c.pos;
  const marker = readU8(c, "type marker");
  switch (marker) {
    case NUMBER:
      return readF64(c, "number");
    case BOOLEAN:
      return readU8(c, "boolean") !== 0;
    case STRING:
      return readUtf8(c, readU16(c, "string length"), "string");
    case OBJECT:
      enter(c, depth, "object", at);
      return readProperties(c, depth + 1, "object");
    case NULL:
      return null;
    case UNDEFINED:
    case UNSUPPORTED:
      return undefined;
    case REFERENCE: {
      const index = readU16(c, "reference index");
      throw new AmfError(
        `AMF0: references are not supported (reference to index ${index} at offset ${at})`,
      );
    }
    case ECMA_ARRAY:
      enter(c, depth, "ECMA array", at);
      // The count is only a hint (encoders get it wrong); the end marker is authoritative.
      readU32(c, "ECMA array count");
      return new AmfEcmaArray(readProperties(c, depth + 1, "ECMA array"));
    case OBJECT_END:
      throw new AmfError(`AMF0: expected a value at offset ${at}, got the object-end marker 0x09`);
    case STRICT_ARRAY:
      enter(c, depth, "strict array", at);
      return readStrictArray(c, depth + 1);
    case DATE: {
      const ms = readF64(c, "date");
      readU16(c, "date time zone"); // Reserved, always 0 in practice.
      return new Date(ms);
    }
    case LONG_STRING:
      return readUtf8(c, readU32(c, "long string length"), "long string");
    case XML_DOCUMENT:
      return readUtf8(c, readU32(c, "XML document length"), "XML document");
    case TYPED_OBJECT: {
      enter(c, depth, "typed object", at);
      // The class name has no place in AmfObject; the properties are what callers read.
      readUtf8(c, readU16(c, "typed object class name length"), "typed object class name");
      return readProperties(c, depth + 1, "typed object");
    }
    case AVMPLUS:
      throw new AmfError(
        `AMF0: AMF3 values (AVM+ switch marker 0x11 at offset ${at}) are not supported`,
      );
    case MOVIECLIP:
    case RECORDSET:
    default:
      throw new AmfError(`AMF0: unknown or unsupported type marker ${hex(marker)} at offset ${at}`);
  }
}

function enter(c: Cursor, depth: number, kind: string, at: number): void {
  if (depth >= c.maxDepth) {
    throw new AmfError(
      `AMF0: ${kind} at offset ${at} nests deeper than maxDepth ${c.maxDepth}`,
    );
  }
}

function readProperties(c: Cursor, depth: number, kind: string): Record<string, AmfValue> {
  const props: Record<string, AmfValue> = {};
  let count = 0;
  // Each pass consumes at least three bytes, so the loop ends with the input.
  for (;;) {
    const keyAt = c.pos;
    const keyLength = readU16(c, `${kind} key length or end marker`);
    if (keyLength === 0 && readU8(c, `${kind} end marker or value`) === OBJECT_END) {
      return props;
    }
    if (keyLength === 0) c.pos--; // An empty key with a real value: reread its marker.
    if (count >= c.maxItems) {
      throw new AmfError(
        `AMF0: ${kind} has more than maxItems ${c.maxItems} properties (at offset ${keyAt})`,
      );
    }
    const key = readUtf8(c, keyLength, `${kind} key`);
    setOwn(props, key, readValue(c, depth));
    count++;
  }
}

function readStrictArray(c: Cursor, depth: number): AmfValue[] {
  const at = c.pos;
  const count = readU32(c, "strict array count");
  if (count > c.maxItems) {
    throw new AmfError(
      `AMF0: strict array at offset ${at} declares ${count} elements, more than maxItems ${c.maxItems}`,
    );
  }
  // Every element takes at least its one-byte marker.
  if (count > remaining(c)) {
    throw new AmfError(
      `AMF0: strict array at offset ${at} declares ${count} elements, but only ${
        remaining(c)
      } bytes remain`,
    );
  }
  const items: AmfValue[] = [];
  for (let i = 0; i < count; i++) items.push(readValue(c, depth));
  return items;
}

/** Defines an own property even for keys like `__proto__`, which plain assignment would not. */
function setOwn(target: Record<string, AmfValue>, key: string, value: AmfValue): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

// ---------------------------------------------------------------------------
// Encoding

/**
 * Encodes values as consecutive AMF0, e.g. an RTMP command's name,
 * transaction id and arguments.
 *
 * Numbers encode as 0x00, booleans 0x01, strings 0x02 (0x0C when over 65535
 * UTF-8 bytes), `null` 0x05, `undefined` 0x06, `Date` 0x0B, arrays as strict
 * arrays 0x0A, {@linkcode AmfEcmaArray} as 0x08 and other objects as 0x03.
 * Object and ECMA array entries whose value is a function are skipped.
 *
 * @param values The values, in wire order.
 * @returns The encoded bytes.
 * @throws {AmfError} For a value of a type AMF0 cannot carry (function,
 *   symbol, bigint) outside an object entry, a cyclic structure, or a
 *   property key longer than 65535 UTF-8 bytes.
 */
export function encodeAmf0(...values: AmfValue[]): Uint8Array {
  const w = new ByteWriter();
  const open = new Set<object>();
  for (const v of values) writeValue(w, v, open);
  return w.finish();
}

/** A growable big-endian byte buffer. */
class ByteWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #length = 0;

  u8(v: number): void {
    this.#reserve(1);
    this.#buf[this.#length++] = v;
  }

  u16(v: number): void {
    this.#reserve(2);
    this.#view.setUint16(this.#length, v);
    this.#length += 2;
  }

  u32(v: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.#length, v);
    this.#length += 4;
  }

  f64(v: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.#length, v);
    this.#length += 8;
  }

  bytes(v: Uint8Array): void {
    this.#reserve(v.length);
    this.#buf.set(v, this.#length);
    this.#length += v.length;
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#length);
  }

  #reserve(count: number): void {
    const needed = this.#length + count;
    if (needed <= this.#buf.length) return;
    let capacity = this.#buf.length * 2;
    while (capacity < needed) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.#buf.subarray(0, this.#length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
}

function writeValue(w: ByteWriter, value: unknown, open: Set<object>): void {
  if (value === null) return w.u8(NULL);
  switch (typeof value) {
    case "undefined":
      return w.u8(UNDEFINED);
    case "number":
      w.u8(NUMBER);
      return w.f64(value);
    case "boolean":
      w.u8(BOOLEAN);
      return w.u8(value ? 1 : 0);
    case "string":
      return writeString(w, value);
    case "object":
      return writeObjectLike(w, value, open);
    default:
      throw new AmfError(
        `AMF0: expected a number, boolean, string, null, undefined, Date, array or object, got a ${typeof value}`,
      );
  }
}

function writeString(w: ByteWriter, value: string): void {
  const utf8 = utf8Encoder.encode(value);
  if (utf8.length > MAX_U16) {
    w.u8(LONG_STRING);
    w.u32(utf8.length);
  } else {
    w.u8(STRING);
    w.u16(utf8.length);
  }
  w.bytes(utf8);
}

function writeObjectLike(w: ByteWriter, value: object, open: Set<object>): void {
  if (value instanceof Date) {
    w.u8(DATE);
    w.f64(value.getTime());
    return w.u16(0);
  }
  if (open.has(value)) {
    throw new AmfError("AMF0: expected an acyclic value, got a structure that contains itself");
  }
  open.add(value);
  try {
    if (Array.isArray(value)) {
      w.u8(STRICT_ARRAY);
      w.u32(value.length);
      for (let i = 0; i < value.length; i++) writeValue(w, value[i], open);
    } else if (value instanceof AmfEcmaArray) {
      const entries = encodableEntries(value.entries);
      w.u8(ECMA_ARRAY);
      w.u32(Math.min(entries.length, MAX_U32));
      writeProperties(w, entries, open);
    } else {
      w.u8(OBJECT);
      writeProperties(w, encodableEntries(value), open);
    }
  } finally {
    open.delete(value);
  }
}

function encodableEntries(value: object): [string, unknown][] {
  return Object.entries(value).filter(([, v]) => typeof v !== "function");
}

function writeProperties(w: ByteWriter, entries: [string, unknown][], open: Set<object>): void {
  for (const [key, v] of entries) {
    const utf8 = utf8Encoder.encode(key);
    if (utf8.length > MAX_U16) {
      throw new AmfError(
        `AMF0: expected a property key of at most ${MAX_U16} UTF-8 bytes, got ${utf8.length}`,
      );
    }
    w.u16(utf8.length);
    w.bytes(utf8);
    writeValue(w, v, open);
  }
  w.u16(0);
  w.u8(OBJECT_END);
}

// ---------------------------------------------------------------------------
// Reading command fields

/**
 * Narrows a decoded value to a string.
 *
 * @param v Any decoded value.
 * @returns `v` if it is a string, else `undefined`.
 */
export function amfString(v: AmfValue): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/**
 * Narrows a decoded value to a number.
 *
 * @param v Any decoded value.
 * @returns `v` if it is a number, else `undefined`.
 */
export function amfNumber(v: AmfValue): number | undefined {
  return typeof v === "number" ? v : undefined;
}

/**
 * Reads one own property of a decoded object or ECMA array.
 *
 * @param obj Any decoded value.
 * @param key Property name.
 * @returns The property's value; `undefined` if `obj` is not an object or
 *   {@linkcode AmfEcmaArray}, or has no such own property.
 */
export function amfProp(obj: AmfValue, key: string): AmfValue {
  if (obj instanceof AmfEcmaArray) {
    return Object.hasOwn(obj.entries, key) ? obj.entries[key] : undefined;
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj) || obj instanceof Date) {
    return undefined;
  }
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}
