/**
 * Bit-level reading and writing for codec headers: a big-endian bit reader with
 * exp-Golomb codes (H.264 7.2, 9.1), a matching writer, and removal of the
 * emulation prevention bytes that keep start codes out of NAL unit payloads.
 *
 * Every read is bounded by the bytes given; running past the end throws
 * {@linkcode CodecError}, never a `RangeError`.
 *
 * @module
 */

import { CodecError } from "./errors.ts";

/** Exp-Golomb codes longer than this cannot encode a 32-bit value (H.264 9.1). */
const MAX_EXP_GOLOMB_LEADING_ZEROS = 31;

/**
 * Reads bits most-significant first from a byte array, with the exp-Golomb
 * codes H.264 uses for most header fields.
 *
 * The reader does not remove emulation prevention bytes itself: hand it the
 * output of {@linkcode removeEmulationPrevention} when reading a NAL unit.
 *
 * @example
 * ```ts
 * const reader = new BitReader(new Uint8Array([0b1010_0000]));
 * reader.readBit(); // 1
 * reader.readUE(); // 0b010 → 1
 * ```
 */
export class BitReader {
  #data: Uint8Array;
  #bit = 0;

  /**
   * Starts reading at the first bit of `data`.
   *
   * @param data The bytes to read; not copied, not modified.
   */
  constructor(data: Uint8Array) {
    this.#data = data;
  }

  /** Bits consumed so far. */
  get bitPosition(): number {
    return this.#bit;
  }

  /** Bits not yet read. */
  get bitsLeft(): number {
    return this.#data.length * 8 - this.#bit;
  }

  /**
   * Reads one bit.
   *
   * @returns 0 or 1.
   * @throws {CodecError} When no bits are left.
   */
  readBit(): number {
    if (this.#bit >= this.#data.length * 8) {
      throw new CodecError(
        `expected 1 more bit, but the ${this.#data.length}-byte input is exhausted`,
      );
    }
    const byte = this.#data[this.#bit >> 3];
    const bit = (byte >> (7 - (this.#bit & 7))) & 1;
    this.#bit++;
    return bit;
  }

  /** Reads one bit as a boolean flag. */
  readFlag(): boolean {
    return this.readBit() === 1;
  }

  /**
   * Reads an unsigned big-endian value of `count` bits.
   *
   * @param count Number of bits, 0 to 32.
   * @returns A non-negative integer below 2^count.
   * @throws {CodecError} When fewer than `count` bits are left.
   */
  readBits(count: number): number {
    if (!Number.isInteger(count) || count < 0 || count > 32) {
      throw new CodecError(`expected a bit count of 0..32, got ${count}`);
    }
    this.#ensure(count);
    let value = 0;
    let remaining = count;
    while (remaining > 0) {
      const offset = this.#bit & 7;
      const take = Math.min(8 - offset, remaining);
      const byte = this.#data[this.#bit >> 3];
      const chunk = (byte >> (8 - offset - take)) & ((1 << take) - 1);
      // Multiplication, not shifts: a 32-bit value must stay unsigned.
      value = value * (1 << take) + chunk;
      this.#bit += take;
      remaining -= take;
    }
    return value;
  }

  /**
   * Skips `count` bits.
   *
   * @throws {CodecError} When fewer than `count` bits are left.
   */
  skipBits(count: number): void {
    if (!Number.isInteger(count) || count < 0) {
      throw new CodecError(`expected a non-negative bit count, got ${count}`);
    }
    this.#ensure(count);
    this.#bit += count;
  }

  /**
   * Reads an unsigned exp-Golomb code, `ue(v)`.
   *
   * @returns A value from 0 to 2^32 − 2.
   * @throws {CodecError} On more than 31 leading zero bits or a truncated code.
   */
  readUE(): number {
    let leadingZeros = 0;
    while (this.readBit() === 0) {
      leadingZeros++;
      if (leadingZeros > MAX_EXP_GOLOMB_LEADING_ZEROS) {
        throw new CodecError(
          `expected an exp-Golomb code with at most ${MAX_EXP_GOLOMB_LEADING_ZEROS} leading zero bits, got more`,
        );
      }
    }
    return 2 ** leadingZeros - 1 + this.readBits(leadingZeros);
  }

  /**
   * Reads a signed exp-Golomb code, `se(v)`: 0, 1, −1, 2, −2, …
   *
   * @throws {CodecError} On more than 31 leading zero bits or a truncated code.
   */
  readSE(): number {
    const code = this.readUE();
    return code % 2 === 1 ? (code + 1) / 2 : -(code / 2);
  }

  #ensure(count: number): void {
    if (count > this.bitsLeft) {
      throw new CodecError(
        `expected ${count} more bits, but only ${this.bitsLeft} are left in the ${this.#data.length}-byte input`,
      );
    }
  }
}

/**
 * Writes bits most-significant first; the counterpart of {@linkcode BitReader}
 * for building small headers.
 *
 * @example
 * ```ts
 * const writer = new BitWriter();
 * writer.writeBits(2, 5);
 * writer.toBytes(); // Uint8Array [0b00010_000]
 * ```
 */
export class BitWriter {
  #bytes: number[] = [];
  #bit = 0;

  /** Bits written so far. */
  get bitLength(): number {
    return this.#bit;
  }

  /**
   * Appends the low `count` bits of `value`.
   *
   * @param value A non-negative integer below 2^count.
   * @param count Number of bits, 0 to 32.
   * @throws {CodecError} When `value` does not fit in `count` bits.
   */
  writeBits(value: number, count: number): void {
    if (!Number.isInteger(count) || count < 0 || count > 32) {
      throw new CodecError(`expected a bit count of 0..32, got ${count}`);
    }
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** count) {
      throw new CodecError(`expected a value that fits in ${count} bits, got ${value}`);
    }
    for (let i = count - 1; i >= 0; i--) {
      const bit = Math.floor(value / 2 ** i) % 2;
      if ((this.#bit & 7) === 0) this.#bytes.push(0);
      if (bit === 1) this.#bytes[this.#bytes.length - 1] |= 0x80 >> (this.#bit & 7);
      this.#bit++;
    }
  }

  /** The bits written, padded with zero bits to a whole byte. */
  toBytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

/**
 * Turns a NAL unit payload into its raw byte sequence payload (RBSP) by
 * dropping each emulation prevention byte: the `0x03` in `00 00 03`
 * (H.264 7.4.1).
 *
 * @param data NAL unit bytes.
 * @returns `data` itself when it holds no emulation prevention byte, else a copy without them.
 */
export function removeEmulationPrevention(data: Uint8Array): Uint8Array {
  const first = findEmulationPrevention(data, 0);
  if (first < 0) return data;
  const out = new Uint8Array(data.length);
  let written = 0;
  let from = 0;
  for (let at = first; at >= 0; at = findEmulationPrevention(data, at + 1)) {
    out.set(data.subarray(from, at), written);
    written += at - from;
    from = at + 1;
  }
  out.set(data.subarray(from), written);
  written += data.length - from;
  return out.subarray(0, written);
}

/** Index of the next `0x03` that follows two zero bytes, or −1. */
function findEmulationPrevention(data: Uint8Array, start: number): number {
  let zeros = 0;
  for (let i = start; i < data.length; i++) {
    const byte = data[i];
    if (byte === 0x03 && zeros >= 2) return i;
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return -1;
}
