/**
 * A small FLV file reader: the file header and an iterator over its tags.
 * Meant for replaying recorded streams (tests, benchmarks); live ingest gets
 * tag bodies from RTMP messages instead.
 *
 * @module
 */

import { FlvError } from "./tag.ts";

/** FLV tag type of an audio tag (same number as the RTMP audio message type). */
export const FLV_TAG_AUDIO = 8;
/** FLV tag type of a video tag (same number as the RTMP video message type). */
export const FLV_TAG_VIDEO = 9;
/** FLV tag type of a script data tag (AMF0 `onMetaData`). */
export const FLV_TAG_SCRIPT = 18;

/** What the FLV file header announces. */
export interface FlvHeader {
  /** FLV version; 1 for every file in practice. */
  readonly version: number;
  readonly hasAudio: boolean;
  readonly hasVideo: boolean;
  /** Byte offset of the first PreviousTagSize field (the header length). */
  readonly dataOffset: number;
}

/** One tag of an FLV file. */
export interface FlvTag {
  /** Tag type: {@linkcode FLV_TAG_AUDIO}, {@linkcode FLV_TAG_VIDEO}, {@linkcode FLV_TAG_SCRIPT} or other. */
  readonly type: number;
  /** Timestamp in milliseconds (24 bits plus the extended high byte). */
  readonly timestamp: number;
  /** Tag body, a view into the file bytes (for media tags: input to the tag parsers). */
  readonly body: Uint8Array;
  /** Byte offset of the tag header in the file, for error messages. */
  readonly offset: number;
}

const HEADER_SIZE = 9;
const TAG_HEADER_SIZE = 11;
const PREVIOUS_TAG_SIZE = 4;

/**
 * Parses the 9-byte FLV file header.
 *
 * @example
 * ```ts
 * import { parseFlvHeader } from "./file.ts";
 *
 * const header = parseFlvHeader(new Uint8Array([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9]));
 * // header: { version: 1, hasAudio: true, hasVideo: true, dataOffset: 9 }
 * ```
 *
 * @param file The file bytes (at least the header).
 * @returns The header fields.
 * @throws {FlvError} When the signature is not "FLV" or the header is truncated.
 */
export function parseFlvHeader(file: Uint8Array): FlvHeader {
  if (file.length < HEADER_SIZE) {
    throw new FlvError(`expected a ${HEADER_SIZE}-byte FLV header, got ${file.length} byte(s)`);
  }
  if (file[0] !== 0x46 || file[1] !== 0x4c || file[2] !== 0x56) {
    const got = Array.from(file.subarray(0, 3), (b) => b.toString(16).padStart(2, "0"));
    throw new FlvError(`expected FLV signature 46 4c 56 ("FLV"), got ${got.join(" ")}`);
  }
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const dataOffset = view.getUint32(5);
  if (dataOffset < HEADER_SIZE || dataOffset > file.length) {
    throw new FlvError(
      `expected FLV header size between ${HEADER_SIZE} and the file size ${file.length}, ` +
        `got ${dataOffset}`,
    );
  }
  return {
    version: file[3],
    hasAudio: (file[4] & 0x04) !== 0,
    hasVideo: (file[4] & 0x01) !== 0,
    dataOffset,
  };
}

/**
 * Iterates over the tags of a complete FLV file, checking every length
 * against the bytes present.
 *
 * @example Count the video tags of a file
 * ```ts ignore
 * import { FLV_TAG_VIDEO, readFlvTags } from "./file.ts";
 *
 * const file = await Deno.readFile("stream.flv");
 * let videoTags = 0;
 * for (const tag of readFlvTags(file)) if (tag.type === FLV_TAG_VIDEO) videoTags++;
 * ```
 *
 * @param file The whole file, header included.
 * @returns A generator of tags in file order.
 * @throws {FlvError} When the header is invalid, a tag is truncated (a
 *   recording cut off mid-tag included), a PreviousTagSize does not match
 *   the tag before it, or a tag is encrypted (filtered).
 */
export function* readFlvTags(file: Uint8Array): Generator<FlvTag> {
  const { dataOffset } = parseFlvHeader(file);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let offset = dataOffset;
  let previousSize = 0;
  while (true) {
    if (file.length - offset < PREVIOUS_TAG_SIZE) {
      throw new FlvError(
        `truncated FLV file: expected a 4-byte PreviousTagSize at offset ${offset}, ` +
          `got ${file.length - offset} byte(s)`,
      );
    }
    const declared = view.getUint32(offset);
    if (declared !== previousSize) {
      throw new FlvError(
        `expected PreviousTagSize ${previousSize} at offset ${offset}, got ${declared}`,
      );
    }
    offset += PREVIOUS_TAG_SIZE;
    if (offset === file.length) return;
    if (file.length - offset < TAG_HEADER_SIZE) {
      throw new FlvError(
        `truncated FLV file: expected an ${TAG_HEADER_SIZE}-byte tag header at offset ${offset}, ` +
          `got ${file.length - offset} byte(s)`,
      );
    }
    const flags = view.getUint8(offset);
    if (flags & 0x20) {
      throw new FlvError(`expected an unencrypted tag at offset ${offset}, got the Filter bit set`);
    }
    const type = flags & 0x1f;
    const size = (view.getUint8(offset + 1) << 16) | view.getUint16(offset + 2);
    const timestamp = ((view.getUint8(offset + 7) << 24) |
      (view.getUint8(offset + 4) << 16) | view.getUint16(offset + 5)) >>> 0;
    const bodyStart = offset + TAG_HEADER_SIZE;
    if (size > file.length - bodyStart) {
      throw new FlvError(
        `truncated FLV tag at offset ${offset}: expected ${size} body byte(s), ` +
          `got ${file.length - bodyStart}`,
      );
    }
    yield { type, timestamp, body: file.subarray(bodyStart, bodyStart + size), offset };
    offset = bodyStart + size;
    previousSize = TAG_HEADER_SIZE + size;
  }
}
