/**
 * RTMP message type ids and builders for the protocol control, user control and
 * command messages the server sends.
 *
 * @module
 */
import { type AmfValue, encodeAmf0 } from "./amf0.ts";
import type { RtmpMessage } from "./chunk.ts";

/** Message type ids (RTMP 1.0 §5.4, §7.1). */
export const MessageType = {
  SET_CHUNK_SIZE: 1,
  ABORT: 2,
  ACKNOWLEDGEMENT: 3,
  USER_CONTROL: 4,
  WINDOW_ACK_SIZE: 5,
  SET_PEER_BANDWIDTH: 6,
  AUDIO: 8,
  VIDEO: 9,
  DATA_AMF3: 15,
  SHARED_OBJECT_AMF3: 16,
  COMMAND_AMF3: 17,
  DATA_AMF0: 18,
  SHARED_OBJECT_AMF0: 19,
  COMMAND_AMF0: 20,
  AGGREGATE: 22,
} as const;

/** User control event types (RTMP 1.0 §7.1.7). */
export const UserControl = {
  STREAM_BEGIN: 0,
  STREAM_EOF: 1,
  STREAM_DRY: 2,
  SET_BUFFER_LENGTH: 3,
  STREAM_IS_RECORDED: 4,
  PING_REQUEST: 6,
  PING_RESPONSE: 7,
} as const;

/** Chunk stream ids the server writes on. */
export const ChunkStream = { CONTROL: 2, COMMAND: 3 } as const;

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0);
  return out;
}

function control(type: number, payload: Uint8Array): RtmpMessage {
  return { csid: ChunkStream.CONTROL, type, streamId: 0, timestamp: 0, payload };
}

/** Set Chunk Size (type 1). */
export function setChunkSizeMessage(size: number): RtmpMessage {
  return control(MessageType.SET_CHUNK_SIZE, u32(size & 0x7fffffff));
}

/** Acknowledgement (type 3) carrying the bytes received so far, modulo 2^32. */
export function acknowledgementMessage(sequence: number): RtmpMessage {
  return control(MessageType.ACKNOWLEDGEMENT, u32(sequence));
}

/** Window Acknowledgement Size (type 5). */
export function windowAckSizeMessage(size: number): RtmpMessage {
  return control(MessageType.WINDOW_ACK_SIZE, u32(size));
}

/** Set Peer Bandwidth (type 6); limit 0 hard, 1 soft, 2 dynamic. */
export function setPeerBandwidthMessage(size: number, limit: 0 | 1 | 2): RtmpMessage {
  const payload = new Uint8Array(5);
  new DataView(payload.buffer).setUint32(0, size >>> 0);
  payload[4] = limit;
  return control(MessageType.SET_PEER_BANDWIDTH, payload);
}

/** User Control (type 4) with a 32-bit argument (stream id or ping timestamp). */
export function userControlMessage(event: number, value: number): RtmpMessage {
  const payload = new Uint8Array(6);
  const view = new DataView(payload.buffer);
  view.setUint16(0, event);
  view.setUint32(2, value >>> 0);
  return control(MessageType.USER_CONTROL, payload);
}

/** An AMF0 command (type 20): name, transaction id, then arguments. */
export function commandMessage(
  streamId: number,
  name: string,
  transactionId: number,
  ...args: AmfValue[]
): RtmpMessage {
  return {
    csid: ChunkStream.COMMAND,
    type: MessageType.COMMAND_AMF0,
    streamId,
    timestamp: 0,
    payload: encodeAmf0(name, transactionId, ...args),
  };
}

/** An `onStatus` command with an info object. */
export function onStatusMessage(
  streamId: number,
  level: "status" | "error" | "warning",
  code: string,
  description: string,
): RtmpMessage {
  return commandMessage(streamId, "onStatus", 0, null, { level, code, description });
}
