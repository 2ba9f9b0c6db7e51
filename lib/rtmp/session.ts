/**
 * One RTMP connection: handshake, one reader loop, commands, and media handed to
 * the sink its publish was granted.
 *
 * @module
 */
import { amfNumber, amfProp, amfString, type AmfValue, decodeAmf0 } from "./amf0.ts";
import { ChunkStreamReader, DEFAULT_CHUNK_SIZE, encodeChunks, type RtmpMessage } from "./chunk.ts";
import { RtmpError } from "./errors.ts";
import { buildServerHandshake, HANDSHAKE_SIZE } from "./handshake.ts";
import {
  acknowledgementMessage,
  commandMessage,
  MessageType,
  onStatusMessage,
  setChunkSizeMessage,
  setPeerBandwidthMessage,
  UserControl,
  userControlMessage,
  windowAckSizeMessage,
} from "./messages.ts";
import { parseAudioTagBody, parseVideoTagBody } from "../flv/mod.ts";
import type { MediaUnit } from "../media.ts";
import type { Logger } from "../log.ts";

/** Why a publish ended. */
export type PublishEndReason = "unpublished" | "disconnected" | "timeout" | "shutdown" | "error";

/** Where a granted publish sends what it receives. */
export interface MediaSink {
  /** One media unit, in arrival order. */
  push(unit: MediaUnit): void;
  /** The `@setDataFrame`/`onMetaData` object the encoder sent. */
  metadata(meta: Record<string, AmfValue>): void;
  /** The publish is over; called exactly once. */
  end(reason: PublishEndReason): void;
}

/** What the session asks the server when a client publishes. */
export interface PublishRequest {
  /** Stream name without its query, e.g. `room1`. */
  readonly name: string;
  /** Query of the stream name (`?key=…`). */
  readonly query: URLSearchParams;
  readonly app: string;
  readonly remoteAddress: string;
  readonly connectionId: number;
  /** The encoder's `flashVer`/`encoder` string, when it sent one. */
  readonly encoder?: string;
}

/** The server's answer to a {@linkcode PublishRequest}. */
export type PublishDecision =
  | { readonly ok: true; readonly sink: MediaSink }
  | {
    readonly ok: false;
    /** onStatus code, e.g. `NetStream.Publish.BadName`. */
    readonly code: string;
    readonly description: string;
  };

/** Bounds and behaviour of sessions; every bound is a named config value. */
export interface RtmpSessionOptions {
  /** The RTMP application clients must connect to (`live`). */
  readonly app: string;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxMessageSize: number;
  readonly maxChunkSize: number;
  /** Chunk size the server uses for what it sends. */
  readonly outChunkSize: number;
  /** Window Acknowledgement Size announced to the client. */
  readonly windowAckSize: number;
  /** Most bytes queued for writing before the peer counts as not reading. */
  readonly maxWriteBacklog: number;
  publish(request: PublishRequest): PublishDecision;
}

const MAX_STREAMS_PER_CONNECTION = 8;
const READ_BUFFER_SIZE = 64 * 1024;

/** Close reason carried through the session to the sink and the log line. */
class SessionClosed extends Error {
  constructor(readonly reason: PublishEndReason) {
    super(reason);
  }
}

/** One accepted TCP connection speaking RTMP. */
export class RtmpSession {
  readonly id: number;
  readonly remoteAddress: string;
  readonly #conn: Deno.Conn;
  readonly #options: RtmpSessionOptions;
  readonly #log: Logger;
  readonly #reader: ChunkStreamReader;
  #closedReason: PublishEndReason | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #bytesIn = 0;
  #lastAck = 0;
  #peerWindow = 0;
  #writeChain: Promise<void> = Promise.resolve();
  #writeBacklog = 0;
  #app = "";
  #encoder: string | undefined;
  #nextStreamId = 1;
  #publishing: { streamId: number; name: string; sink: MediaSink } | undefined;
  #warnedAmf3 = false;
  /** Chunk size of what we write: the default until our Set Chunk Size has been sent. */
  #outChunkSize = DEFAULT_CHUNK_SIZE;

  constructor(conn: Deno.Conn, id: number, options: RtmpSessionOptions, log: Logger) {
    this.#conn = conn;
    this.id = id;
    this.#options = options;
    this.#log = log;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddress = addr.hostname?.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
    this.#reader = new ChunkStreamReader({
      maxMessageSize: options.maxMessageSize,
      maxChunkSize: options.maxChunkSize,
    });
  }

  /** Total bytes read from the peer. */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Closes the connection; the running {@linkcode run} ends with this reason. */
  close(reason: PublishEndReason): void {
    if (this.#closedReason) return;
    this.#closedReason = reason;
    clearTimeout(this.#timer);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /** Runs the connection to its end. Never throws. */
  async run(): Promise<void> {
    let failure: unknown;
    let handshaken = false;
    try {
      this.#arm(this.#options.handshakeTimeoutMs, "timeout");
      const rest = await this.#handshake();
      handshaken = true;
      this.#arm(this.#options.idleTimeoutMs, "timeout");
      if (rest.length) this.#ingest(rest);
      const buf = new Uint8Array(READ_BUFFER_SIZE);
      while (true) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#arm(this.#options.idleTimeoutMs, "timeout");
        this.#ingest(buf.subarray(0, n));
      }
    } catch (err) {
      failure = err;
    }
    const reason = this.#closedReason ??
      (failure instanceof SessionClosed ? failure.reason : failure ? "error" : "disconnected");
    if (failure && !this.#closedReason && !(failure instanceof SessionClosed)) {
      if (isConnectionReset(failure)) {
        this.#log.info("rtmp connection {id} from {remote} reset by peer", this.#ctx());
      } else {
        this.#log.warn("rtmp connection {id} from {remote} closed: {error}", {
          ...this.#ctx(),
          error: describe(failure),
        });
      }
    } else if (reason === "timeout") {
      this.#log.warn("rtmp connection {id} from {remote} closed: {why}", {
        ...this.#ctx(),
        why: handshaken
          ? `no data for ${this.#options.idleTimeoutMs} ms (idle timeout)`
          : `handshake not completed within ${this.#options.handshakeTimeoutMs} ms`,
      });
    }
    if (failure instanceof SessionClosed) {
      // A refusal was sent: give it a moment to reach the encoder before the close.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#writeChain, new Promise((r) => timer = setTimeout(r, 500))]);
      clearTimeout(timer);
    }
    this.close(reason);
    this.#endPublish(reason);
    await this.#writeChain;
  }

  #ctx(): Record<string, unknown> {
    return { id: this.id, remote: this.remoteAddress, room: this.#publishing?.name };
  }

  #arm(ms: number, reason: PublishEndReason): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.close(reason), ms);
  }

  async #readExactly(need: number, have: Uint8Array): Promise<Uint8Array> {
    let buf = have;
    const chunk = new Uint8Array(READ_BUFFER_SIZE);
    while (buf.length < need) {
      const n = await this.#conn.read(chunk);
      if (n === null) {
        throw new RtmpError(`handshake: connection closed after ${buf.length} of ${need} bytes`);
      }
      this.#bytesIn += n;
      const grown = new Uint8Array(buf.length + n);
      grown.set(buf);
      grown.set(chunk.subarray(0, n), buf.length);
      buf = grown;
    }
    return buf;
  }

  /** Returns bytes read past C2 (the client may pipeline its first chunks). */
  async #handshake(): Promise<Uint8Array> {
    // C0 is checked on its own first byte: garbage shorter than C1 is refused at once
    // rather than held until the handshake timeout.
    const c0 = await this.#readExactly(1, new Uint8Array(0));
    if (c0[0] !== 3) {
      throw new RtmpError(`handshake: expected RTMP version 3 in C0, got ${c0[0]}`);
    }
    const c0c1 = await this.#readExactly(1 + HANDSHAKE_SIZE, c0);
    const c1 = c0c1.slice(1, 1 + HANDSHAKE_SIZE);
    await this.#write(buildServerHandshake(c1));
    const rest = c0c1.subarray(1 + HANDSHAKE_SIZE);
    const withC2 = await this.#readExactly(HANDSHAKE_SIZE, rest);
    // C2 echoes S1; clients differ in what they put there, so it is not checked.
    return withC2.slice(HANDSHAKE_SIZE);
  }

  #ingest(bytes: Uint8Array): void {
    this.#bytesIn += bytes.length;
    this.#reader.push(bytes);
    let message: RtmpMessage | undefined;
    while ((message = this.#reader.next()) !== undefined) {
      this.#handle(message);
      if (this.#closedReason) return;
    }
    if (this.#peerWindow > 0 && this.#bytesIn - this.#lastAck >= this.#peerWindow) {
      this.#lastAck = this.#bytesIn;
      this.#send(acknowledgementMessage(this.#bytesIn));
    }
  }

  #handle(message: RtmpMessage): void {
    const { type, payload } = message;
    switch (type) {
      case MessageType.SET_CHUNK_SIZE:
        this.#reader.setChunkSize(readU32(payload, "Set Chunk Size") & 0x7fffffff);
        this.#log.debug("rtmp connection {id}: peer chunk size {size}", {
          ...this.#ctx(),
          size: this.#reader.chunkSize,
        });
        return;
      case MessageType.ABORT:
        this.#reader.abort(readU32(payload, "Abort"));
        return;
      case MessageType.ACKNOWLEDGEMENT:
      case MessageType.SET_PEER_BANDWIDTH:
        return;
      case MessageType.WINDOW_ACK_SIZE:
        this.#peerWindow = readU32(payload, "Window Acknowledgement Size");
        return;
      case MessageType.USER_CONTROL:
        return this.#userControl(payload);
      case MessageType.AUDIO:
      case MessageType.VIDEO:
        return this.#media(message);
      case MessageType.AGGREGATE:
        return this.#aggregate(message);
      case MessageType.DATA_AMF0:
        return this.#data(message, decodeAmf0(payload));
      case MessageType.DATA_AMF3: {
        // AMF3 data messages start with a format byte; most encoders then use AMF0.
        try {
          return this.#data(message, decodeAmf0(payload.subarray(1)));
        } catch {
          if (!this.#warnedAmf3) {
            this.#warnedAmf3 = true;
            this.#log.info("rtmp connection {id}: ignoring an AMF3 data message", this.#ctx());
          }
          return;
        }
      }
      case MessageType.COMMAND_AMF0:
        return this.#command(message, decodeAmf0(payload));
      case MessageType.COMMAND_AMF3:
        return this.#command(message, decodeAmf0(payload.subarray(1)));
      default:
        // Shared objects and unknown types carry nothing for a publish: ignore.
        return;
    }
  }

  #userControl(payload: Uint8Array): void {
    if (payload.length < 2) throw new RtmpError("User Control: payload shorter than 2 bytes");
    const event = (payload[0] << 8) | payload[1];
    if (event === UserControl.PING_REQUEST) {
      this.#send(
        userControlMessage(UserControl.PING_RESPONSE, readU32(payload.subarray(2), "Ping")),
      );
    }
  }

  #media(message: RtmpMessage): void {
    const pub = this.#publishing;
    if (!pub || message.streamId !== pub.streamId) return;
    const units = message.type === MessageType.VIDEO
      ? parseVideoTagBody(message.payload, message.timestamp)
      : parseAudioTagBody(message.payload, message.timestamp);
    for (const unit of units) pub.sink.push(unit);
  }

  /** Aggregate messages carry FLV tags back to back (RTMP 1.0 §7.1.6). */
  #aggregate(message: RtmpMessage): void {
    const data = message.payload;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let p = 0;
    let base: number | undefined;
    while (p < data.length) {
      if (data.length - p < 11) throw new RtmpError("Aggregate: truncated sub-message header");
      const type = data[p];
      const size = (data[p + 1] << 16) | (data[p + 2] << 8) | data[p + 3];
      const ts = ((data[p + 7] << 24) | (data[p + 4] << 16) | (data[p + 5] << 8) | data[p + 6]) >>>
        0;
      if (data.length - p - 11 < size + 4) {
        throw new RtmpError("Aggregate: sub-message overruns the message");
      }
      base ??= ts;
      const body = data.subarray(p + 11, p + 11 + size);
      const timestamp = (message.timestamp + ts - base) >>> 0;
      if (type === MessageType.AUDIO || type === MessageType.VIDEO) {
        this.#media({ ...message, type, timestamp, payload: body });
      }
      p += 11 + size;
      const back = view.getUint32(p);
      if (back !== size + 11) throw new RtmpError("Aggregate: back pointer does not match");
      p += 4;
    }
  }

  #data(message: RtmpMessage, values: AmfValue[]): void {
    let [name, ...rest] = values;
    if (name === "@setDataFrame") [name, ...rest] = rest;
    if (name !== "onMetaData") return;
    const pub = this.#publishing;
    if (!pub || message.streamId !== pub.streamId) return;
    const meta = rest[0];
    const entries = meta && typeof meta === "object" && "entries" in meta &&
        !Array.isArray(meta) && !(meta instanceof Date)
      ? (meta as { entries: Record<string, AmfValue> }).entries
      : meta && typeof meta === "object" && !Array.isArray(meta) && !(meta instanceof Date)
      ? meta as Record<string, AmfValue>
      : undefined;
    if (entries) pub.sink.metadata(entries);
  }

  #command(message: RtmpMessage, values: AmfValue[]): void {
    const name = amfString(values[0]);
    const txn = amfNumber(values[1]) ?? 0;
    if (name === undefined) throw new RtmpError("command message without a command name");
    switch (name) {
      case "connect":
        return this.#connect(txn, values[2]);
      case "releaseStream":
      case "FCPublish":
        if (name === "FCPublish") {
          this.#send(commandMessage(0, "onFCPublish", 0, null, {
            code: "NetStream.Publish.Start",
            description: amfString(values[3]) ?? "",
          }));
        }
        if (txn) this.#send(commandMessage(0, "_result", txn, null));
        return;
      case "createStream": {
        if (this.#nextStreamId > MAX_STREAMS_PER_CONNECTION) {
          throw new RtmpError(`more than ${MAX_STREAMS_PER_CONNECTION} createStream calls`);
        }
        this.#send(commandMessage(0, "_result", txn, null, this.#nextStreamId++));
        return;
      }
      case "publish":
        return this.#publish(message.streamId, txn, amfString(values[3]));
      case "play":
        this.#send(onStatusMessage(
          message.streamId,
          "error",
          "NetStream.Play.Failed",
          "Sluice serves viewers over WebRTC (WHEP or /ws); RTMP playback is not offered",
        ));
        return;
      case "FCUnpublish":
      case "deleteStream":
      case "closeStream":
        if (this.#publishing) {
          const streamId = name === "deleteStream" ? amfNumber(values[3]) : message.streamId;
          if (
            name === "FCUnpublish" || streamId === undefined || streamId === 0 ||
            streamId === this.#publishing.streamId
          ) {
            this.#send(onStatusMessage(
              this.#publishing.streamId,
              "status",
              "NetStream.Unpublish.Success",
              `${this.#publishing.name} is now unpublished`,
            ));
            this.#endPublish("unpublished");
          }
        }
        if (name === "FCUnpublish" && txn) this.#send(commandMessage(0, "_result", txn, null));
        return;
      case "_result":
      case "_error":
      case "onBWDone":
      case "_checkbw":
      case "getStreamLength":
        if (name === "_checkbw" || name === "getStreamLength") {
          if (txn) this.#send(commandMessage(0, "_result", txn, null));
        }
        return;
      default:
        if (txn) {
          this.#send(commandMessage(0, "_error", txn, null, {
            level: "error",
            code: "NetConnection.Call.Failed",
            description: `unknown command ${name.slice(0, 64)}`,
          }));
        }
        return;
    }
  }

  #connect(txn: number, cmd: AmfValue): void {
    const rawApp = amfString(amfProp(cmd, "app")) ?? "";
    const app = rawApp.split("?")[0].replace(/\/+$/, "");
    this.#encoder = amfString(amfProp(cmd, "flashVer")) ?? amfString(amfProp(cmd, "flashver"));
    if (app !== this.#options.app) {
      this.#send(commandMessage(0, "_error", txn, null, {
        level: "error",
        code: "NetConnection.Connect.Rejected",
        description: `unknown application "${
          app.slice(0, 64)
        }"; publish to rtmp://HOST/${this.#options.app}/<room>`,
      }));
      this.#log.warn("rtmp connection {id} from {remote} refused: unknown application {app}", {
        ...this.#ctx(),
        app: app.slice(0, 64),
      });
      throw new SessionClosed("error");
    }
    this.#app = app;
    this.#send(
      windowAckSizeMessage(this.#options.windowAckSize),
      setPeerBandwidthMessage(this.#options.windowAckSize, 2),
      setChunkSizeMessage(this.#options.outChunkSize),
      commandMessage(0, "_result", txn, { fmsVer: "FMS/3,5,7,7009", capabilities: 31, mode: 1 }, {
        level: "status",
        code: "NetConnection.Connect.Success",
        description: "Connection succeeded.",
        objectEncoding: amfNumber(amfProp(cmd, "objectEncoding")) ?? 0,
      }),
    );
  }

  #publish(streamId: number, _txn: number, rawName: string | undefined): void {
    if (!this.#app) throw new RtmpError("publish before connect");
    if (this.#publishing) {
      throw new RtmpError("publish while already publishing on this connection");
    }
    const [name, query = ""] = (rawName ?? "").split("?", 2);
    const decision = this.#options.publish({
      name,
      query: new URLSearchParams(query),
      app: this.#app,
      remoteAddress: this.#remoteHost(),
      connectionId: this.id,
      encoder: this.#encoder,
    });
    if (!decision.ok) {
      this.#send(onStatusMessage(streamId, "error", decision.code, decision.description));
      throw new SessionClosed("error");
    }
    this.#publishing = { streamId, name, sink: decision.sink };
    this.#send(
      userControlMessage(UserControl.STREAM_BEGIN, streamId),
      onStatusMessage(streamId, "status", "NetStream.Publish.Start", `${name} is now published`),
    );
  }

  #remoteHost(): string {
    return (this.#conn.remoteAddr as Deno.NetAddr).hostname;
  }

  #endPublish(reason: PublishEndReason): void {
    const pub = this.#publishing;
    if (!pub) return;
    this.#publishing = undefined;
    pub.sink.end(reason);
  }

  #send(...messages: RtmpMessage[]): void {
    const parts = messages.map((m) => {
      const bytes = encodeChunks(m, this.#outChunkSize);
      if (m.type === MessageType.SET_CHUNK_SIZE) {
        this.#outChunkSize = readU32(m.payload, "Set Chunk Size") & 0x7fffffff;
      }
      return bytes;
    });
    const size = parts.reduce((n, p) => n + p.length, 0);
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const part of parts) {
      bytes.set(part, offset);
      offset += part.length;
    }
    // Set Chunk Size takes effect for everything written after it.
    this.#write(bytes);
  }

  #write(bytes: Uint8Array): Promise<void> {
    if (this.#closedReason) return Promise.resolve();
    this.#writeBacklog += bytes.length;
    if (this.#writeBacklog > this.#options.maxWriteBacklog) {
      this.#log.warn("rtmp connection {id}: peer is not reading; closing", this.#ctx());
      this.close("error");
      return Promise.resolve();
    }
    this.#writeChain = this.#writeChain.then(async () => {
      let offset = 0;
      while (offset < bytes.length && !this.#closedReason) {
        offset += await this.#conn.write(bytes.subarray(offset));
      }
      this.#writeBacklog -= bytes.length;
    }).catch(() => {
      // A failed write means the connection is gone; the reader loop notices.
    });
    return this.#writeChain;
  }
}

function readU32(payload: Uint8Array, what: string): number {
  if (payload.length < 4) {
    throw new RtmpError(`${what}: expected a 4-byte payload, got ${payload.length} bytes`);
  }
  return ((payload[0] << 24) | (payload[1] << 16) | (payload[2] << 8) | payload[3]) >>> 0;
}

function isConnectionReset(err: unknown): boolean {
  return err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
