/**
 * RTMP ingest: handshake, chunk stream, AMF0 commands, publish. The session hands
 * each publish's media units to the {@linkcode MediaSink} the server grants.
 *
 * @module
 */
export { startRtmpServer } from "./server.ts";
export type { RtmpServer, RtmpServerOptions } from "./server.ts";
export { RtmpSession } from "./session.ts";
export type {
  MediaSink,
  PublishDecision,
  PublishEndReason,
  PublishRequest,
  RtmpSessionOptions,
} from "./session.ts";
export { ChunkStreamReader, DEFAULT_CHUNK_SIZE, encodeChunks } from "./chunk.ts";
export type { ChunkStreamLimits, RtmpMessage } from "./chunk.ts";
export { RtmpError } from "./errors.ts";
export {
  buildServerHandshake,
  buildSignedClientC1,
  findClientDigest,
  HANDSHAKE_SIZE,
  verifyServerS1,
  verifyServerS2,
} from "./handshake.ts";
export { ChunkStream, MessageType, UserControl } from "./messages.ts";
export * from "./amf0.ts";
