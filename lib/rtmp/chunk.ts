/**
 * RTMP chunk stream: reassembles messages from chunks (any split, byte at a time
 * included) and splits outgoing messages into chunks.
 *
 * @module
 */
import { RtmpError } from "./errors.ts";

/** One reassembled RTMP message. */
export interface RtmpMessage {
  /** Chunk stream id it arrived on. */
  readonly csid: number;
  /** Message type id (1 Set Chunk Size, 8 audio, 9 video, 20 AMF0 command, …). */
  readonly type: number;
  /** Message stream id. */
  readonly streamId: number;
  /** Absolute timestamp in milliseconds, modulo 2^32. */
  readonly timestamp: number;
  readonly payload: Uint8Array;
}

/** Bounds for a {@linkcode ChunkStreamReader}. */
export interface ChunkStreamLimits {
  /** Largest message the peer may send, in bytes. */
  readonly maxMessageSize: number;
  /** Largest chunk size the peer may announce with Set Chunk Size. */
  readonly maxChunkSize: number;
  /** Most chunk streams with a message in progress at once. */
  readonly maxChunkStreams?: number;
}

interface ChunkStreamState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  /** Whether the last header on this chunk stream carried an extended timestamp. */
  extended: boolean;
  payload: Uint8Array | null;
  received: number;
  /** A header of any type has been seen: type 1–3 chunks need one. */
  initialized: boolean;
}

/** The RTMP default chunk size before any Set Chunk Size. */
export const DEFAULT_CHUNK_SIZE = 128;

const MAX_HEADER = 3 + 11 + 4;

/**
 * Incremental chunk stream parser. Feed bytes with {@linkcode push}; pull complete
 * messages with {@linkcode next}. Set Chunk Size and Abort change how the following
 * bytes are read, so the caller applies them (via {@linkcode setChunkSize} and
 * {@linkcode abort}) before asking for the next message.
 */
export class ChunkStreamReader {
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #chunkSize = DEFAULT_CHUNK_SIZE;
  #streams = new Map<number, ChunkStreamState>();
  #pendingBytes = 0;
  readonly #limits: Required<ChunkStreamLimits>;

  constructor(limits: ChunkStreamLimits) {
    this.#limits = { maxChunkStreams: 64, ...limits };
  }

  /** The chunk size currently used to read the peer's chunks. */
  get chunkSize(): number {
    return this.#chunkSize;
  }

  /** Bytes buffered but not yet consumed as complete chunks. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Applies a Set Chunk Size from the peer. */
  setChunkSize(size: number): void {
    if (!Number.isInteger(size) || size < 1 || size > 0x7fffffff) {
      throw new RtmpError(`Set Chunk Size: expected 1..2147483647, got ${size}`);
    }
    if (size > this.#limits.maxChunkSize) {
      throw new RtmpError(
        `Set Chunk Size: ${size} exceeds the configured maximum ${this.#limits.maxChunkSize}`,
      );
    }
    this.#chunkSize = size;
  }

  /** Applies an Abort Message: drops the partial message on that chunk stream. */
  abort(csid: number): void {
    const state = this.#streams.get(csid);
    if (state?.payload) {
      this.#pendingBytes -= state.payload.length;
      state.payload = null;
      state.received = 0;
    }
  }

  /** Appends bytes read from the socket. */
  push(bytes: Uint8Array): void {
    const needed = this.#end - this.#start + bytes.length;
    if (this.#end + bytes.length > this.#buf.length) {
      if (needed <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        let size = this.#buf.length;
        while (size < needed) size *= 2;
        const grown = new Uint8Array(size);
        grown.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = grown;
      }
      this.#end -= this.#start;
      this.#start = 0;
    }
    this.#buf.set(bytes, this.#end);
    this.#end += bytes.length;
  }

  /**
   * Parses buffered chunks until one message completes and returns it, or returns
   * `undefined` when more bytes are needed. Throws {@linkcode RtmpError} on a
   * protocol violation.
   */
  next(): RtmpMessage | undefined {
    while (true) {
      const message = this.#readChunk();
      if (message === null) return undefined; // need more bytes
      if (message !== undefined) return message;
    }
  }

  /** Reads one chunk: null = incomplete, undefined = chunk consumed, message not done. */
  #readChunk(): RtmpMessage | null | undefined {
    const buf = this.#buf;
    let p = this.#start;
    const avail = this.#end - p;
    if (avail < 1) return null;
    const fmt = buf[p] >> 6;
    let csid = buf[p] & 0x3f;
    p++;
    if (csid === 0) {
      if (avail < 2) return null;
      csid = 64 + buf[p++];
    } else if (csid === 1) {
      if (avail < 3) return null;
      csid = 64 + buf[p] + buf[p + 1] * 256;
      p += 2;
    }
    const headerSize = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    if (this.#end - p < headerSize) return null;

    let state = this.#streams.get(csid);
    if (!state) {
      if (fmt !== 0) {
        throw new RtmpError(`chunk stream ${csid}: first chunk has header type ${fmt}, expected 0`);
      }
      if (this.#streams.size >= this.#limits.maxChunkStreams) {
        throw new RtmpError(`more than ${this.#limits.maxChunkStreams} chunk streams in use`);
      }
      state = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        payload: null,
        received: 0,
        initialized: false,
      };
      // Registered only once the whole header has arrived (below), so a partial read
      // leaves no trace.
    }

    let field = 0;
    let length = state.length;
    let type = state.type;
    let streamId = state.streamId;
    if (fmt <= 2) {
      field = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2];
    }
    if (fmt <= 1) {
      length = (buf[p + 3] << 16) | (buf[p + 4] << 8) | buf[p + 5];
      type = buf[p + 6];
    }
    if (fmt === 0) {
      streamId = (buf[p + 7] | (buf[p + 8] << 8) | (buf[p + 9] << 16) | (buf[p + 10] << 24)) >>> 0;
    }
    p += headerSize;
    const extended = fmt <= 2 ? field === 0xffffff : state.extended;
    let extendedValue = 0;
    if (extended) {
      if (this.#end - p < 4) return null;
      extendedValue = ((buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]) >>> 0;
      p += 4;
    }

    const continuing = state.payload !== null;
    if (fmt !== 0 && !state.initialized) {
      throw new RtmpError(`chunk stream ${csid}: header type ${fmt} before any type 0 header`);
    }
    if (continuing && fmt !== 3) {
      // A new header mid-message: the spec leaves this undefined; librtmp and ffmpeg
      // never do it. Treat it as an implicit abort of the partial message.
      this.#pendingBytes -= state.payload!.length;
      state.payload = null;
      state.received = 0;
    }

    const messageLength = state.payload !== null ? state.length : length;
    const remaining = messageLength - state.received;
    const size = Math.min(remaining, this.#chunkSize);
    if (state.payload === null) {
      if (length > this.#limits.maxMessageSize) {
        throw new RtmpError(
          `message of ${length} bytes exceeds the configured maximum ${this.#limits.maxMessageSize}`,
        );
      }
    }
    if (this.#end - p < (state.payload === null ? Math.min(length, this.#chunkSize) : size)) {
      return null;
    }

    // The whole chunk is here: commit the header.
    if (!this.#streams.has(csid)) this.#streams.set(csid, state);
    state.initialized = true;
    if (state.payload === null) {
      const value = extended ? extendedValue : field;
      if (fmt === 0) {
        state.timestamp = value;
        // A type 3 header after a type 0 one repeats the type 0 timestamp field as its
        // delta (RTMP 1.0 §5.3.1.2.4), as ffmpeg and librtmp read it.
        state.delta = value;
      } else if (fmt === 1 || fmt === 2) {
        state.delta = value;
        state.timestamp = (state.timestamp + value) >>> 0;
      } else {
        state.timestamp = (state.timestamp + state.delta) >>> 0;
      }
      state.length = length;
      state.type = type;
      state.streamId = streamId;
      state.extended = extended;
      if (this.#pendingBytes + length > 2 * this.#limits.maxMessageSize) {
        throw new RtmpError("too many bytes in partially received messages");
      }
      state.payload = new Uint8Array(length);
      state.received = 0;
      this.#pendingBytes += length;
    }
    const take = Math.min(state.length - state.received, this.#chunkSize);
    state.payload.set(buf.subarray(p, p + take), state.received);
    state.received += take;
    p += take;
    this.#start = p;
    if (this.#start === this.#end) this.#start = this.#end = 0;

    if (state.received < state.length) return undefined;
    const message: RtmpMessage = {
      csid,
      type: state.type,
      streamId: state.streamId,
      timestamp: state.timestamp,
      payload: state.payload,
    };
    this.#pendingBytes -= state.length;
    state.payload = null;
    state.received = 0;
    return message;
  }
}

/** Largest basic + message + extended header a chunk can have, in bytes. */
export const MAX_CHUNK_HEADER = MAX_HEADER;

/**
 * Splits one message into chunks: a type 0 header, then type 3 continuations (each
 * repeating the extended timestamp when the message has one, as the spec asks).
 */
export function encodeChunks(
  message: Omit<RtmpMessage, "csid"> & { csid: number },
  chunkSize: number,
): Uint8Array {
  const { csid, type, streamId, payload } = message;
  if (csid < 2 || csid > 65599) throw new RangeError(`chunk stream id ${csid} out of 2..65599`);
  const timestamp = message.timestamp >>> 0;
  const extended = timestamp >= 0xffffff;
  const basic = csid < 64 ? 1 : csid < 320 ? 2 : 3;
  const chunks = Math.max(1, Math.ceil(payload.length / chunkSize));
  const contHeader = basic + (extended ? 4 : 0);
  const out = new Uint8Array(
    basic + 11 + (extended ? 4 : 0) + payload.length + (chunks - 1) * contHeader,
  );
  let p = 0;
  const writeBasic = (fmt: number) => {
    if (basic === 1) out[p++] = (fmt << 6) | csid;
    else if (basic === 2) {
      out[p++] = fmt << 6;
      out[p++] = csid - 64;
    } else {
      out[p++] = (fmt << 6) | 1;
      out[p++] = (csid - 64) & 0xff;
      out[p++] = (csid - 64) >> 8;
    }
  };
  const writeExtended = () => {
    out[p++] = timestamp >>> 24;
    out[p++] = (timestamp >> 16) & 0xff;
    out[p++] = (timestamp >> 8) & 0xff;
    out[p++] = timestamp & 0xff;
  };
  writeBasic(0);
  const field = extended ? 0xffffff : timestamp;
  out[p++] = field >> 16;
  out[p++] = (field >> 8) & 0xff;
  out[p++] = field & 0xff;
  out[p++] = payload.length >> 16;
  out[p++] = (payload.length >> 8) & 0xff;
  out[p++] = payload.length & 0xff;
  out[p++] = type;
  out[p++] = streamId & 0xff;
  out[p++] = (streamId >> 8) & 0xff;
  out[p++] = (streamId >> 16) & 0xff;
  out[p++] = (streamId >>> 24) & 0xff;
  if (extended) writeExtended();
  for (let offset = 0; offset < payload.length || offset === 0; offset += chunkSize) {
    if (offset > 0) {
      writeBasic(3);
      if (extended) writeExtended();
    }
    const part = payload.subarray(offset, offset + chunkSize);
    out.set(part, p);
    p += part.length;
    if (payload.length === 0) break;
  }
  return out;
}
