/**
 * FLV: audio/video tag bodies (as RTMP messages 8 and 9 carry them) into
 * neutral media units, plus a small FLV file reader for replaying recordings.
 *
 * ```ts
 * import { parseVideoTagBody } from "./mod.ts";
 *
 * const units = parseVideoTagBody(new Uint8Array([0x17, 2, 0, 0, 0]), 0);
 * // units: [{ kind: "video-end", codec: "h264", dts: 0 }]
 * ```
 *
 * @module
 */

export { FlvError, parseAudioTagBody, parseVideoTagBody } from "./tag.ts";
export {
  FLV_TAG_AUDIO,
  FLV_TAG_SCRIPT,
  FLV_TAG_VIDEO,
  type FlvHeader,
  type FlvTag,
  parseFlvHeader,
  readFlvTags,
} from "./file.ts";
