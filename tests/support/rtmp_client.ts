/**
 * A minimal RTMP client for tests that need to say exactly what they want on the
 * wire (valid or not): raw bytes, the plain handshake, single messages, and a
 * reader that collects what the server answers and notices when it hangs up.
 *
 * @module
 */
import { type AmfValue, encodeAmf0 } from "../../lib/rtmp/amf0.ts";
import { ChunkStreamReader, encodeChunks, type RtmpMessage } from "../../lib/rtmp/chunk.ts";
import { HANDSHAKE_SIZE } from "../../lib/rtmp/handshake.ts";

/** Chunk size this client writes with (the RTMP default: it never sends Set Chunk Size). */
const OUT_CHUNK_SIZE = 128;

/** A raw TCP connection to an RTMP server with a background reader. */
export class RtmpTestClient {
  readonly conn: Deno.TcpConn;
  /** The client's local port: the server logs the connection as `127.0.0.1:<port>`. */
  readonly localPort: number;
  /** Every message the server sent after the handshake, in order. */
  readonly received: RtmpMessage[] = [];
  /** Resolves once the server closed the connection (EOF or reset). */
  readonly closed: Promise<void>;
  #isClosed = false;
  #handshakeBytes: Uint8Array = new Uint8Array(0);
  #handshakeDone = false;
  #reader = new ChunkStreamReader({
    maxMessageSize: 64 * 1024 * 1024,
    maxChunkSize: 0x7fffffff,
  });
  #waiters = new Set<() => void>();
  #readError: unknown;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.localPort = (conn.localAddr as Deno.NetAddr).port;
    this.closed = this.#readLoop();
  }

  /** Opens a TCP connection to `127.0.0.1:port`. */
  static async open(port: number): Promise<RtmpTestClient> {
    return new RtmpTestClient(
      await Deno.connect({ hostname: "127.0.0.1", port }),
    );
  }

  /** Opens a connection and completes the plain (unsigned) handshake. */
  static async connect(port: number): Promise<RtmpTestClient> {
    const client = await RtmpTestClient.open(port);
    try {
      await client.handshake();
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Whether the server has closed the connection. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#take(buf.slice(0, n));
      }
    } catch (err) {
      // A reset counts as closed by the server, and so does our own close(); anything
      // else (a chunk stream we cannot parse) is kept and rethrown to the test.
      if (
        !(err instanceof Deno.errors.ConnectionReset ||
          err instanceof Deno.errors.BadResource ||
          err instanceof Deno.errors.Interrupted)
      ) this.#readError = err;
    }
    this.#isClosed = true;
    this.#wake();
  }

  #take(bytes: Uint8Array): void {
    if (!this.#handshakeDone) {
      const grown = new Uint8Array(this.#handshakeBytes.length + bytes.length);
      grown.set(this.#handshakeBytes);
      grown.set(bytes, this.#handshakeBytes.length);
      this.#handshakeBytes = grown;
      this.#wake();
      return;
    }
    this.#reader.push(bytes);
    let message: RtmpMessage | undefined;
    while ((message = this.#reader.next()) !== undefined) {
      if (message.type === 1 && message.payload.length >= 4) {
        const size = new DataView(
          message.payload.buffer,
          message.payload.byteOffset,
        ).getUint32(0);
        this.#reader.setChunkSize(size & 0x7fffffff);
      }
      this.received.push(message);
    }
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /** Waits until `check` returns a value, the connection closes (undefined) or `timeoutMs`. */
  #until<T>(
    check: () => T | undefined,
    timeoutMs: number,
  ): Promise<T | undefined> {
    return new Promise((resolve) => {
      const done = (v: T | undefined) => {
        this.#waiters.delete(poll);
        clearTimeout(timer);
        resolve(v);
      };
      const poll = () => {
        const v = check();
        if (v !== undefined) done(v);
        else if (this.#isClosed) done(undefined);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.#waiters.add(poll);
      poll();
    });
  }

  /** Writes raw bytes; false when the server already closed the connection. */
  async write(bytes: Uint8Array): Promise<boolean> {
    try {
      let offset = 0;
      while (offset < bytes.length) {
        offset += await this.conn.write(bytes.subarray(offset));
      }
      return true;
    } catch {
      return false;
    }
  }

  /** C0+C1 (plain), reads S0+S1+S2, sends C2 (an echo of S1). */
  async handshake(timeoutMs = 5000): Promise<void> {
    const c0c1 = new Uint8Array(1 + HANDSHAKE_SIZE);
    c0c1[0] = 3;
    crypto.getRandomValues(c0c1.subarray(9));
    await this.write(c0c1);
    const s = await this.#until(
      () =>
        this.#handshakeBytes.length >= 1 + 2 * HANDSHAKE_SIZE ? this.#handshakeBytes : undefined,
      timeoutMs,
    );
    if (!s) throw new Error("handshake: no S0+S1+S2 from the server");
    if (s[0] !== 3) throw new Error(`handshake: S0 is ${s[0]}, expected 3`);
    const s1 = s.slice(1, 1 + HANDSHAKE_SIZE);
    const rest = s.slice(1 + 2 * HANDSHAKE_SIZE);
    this.#handshakeDone = true;
    this.#handshakeBytes = new Uint8Array(0);
    if (rest.length) this.#take(rest);
    if (!await this.write(s1)) {
      throw new Error("handshake: server closed before C2");
    }
  }

  /** Sends one message, split into chunks of the default size. */
  send(
    message: Omit<RtmpMessage, "csid"> & { csid?: number },
  ): Promise<boolean> {
    return this.write(encodeChunks({ csid: 3, ...message }, OUT_CHUNK_SIZE));
  }

  /** Sends an AMF0 command (type 20) on `streamId`. */
  command(
    streamId: number,
    name: string,
    transactionId: number,
    ...args: AmfValue[]
  ): Promise<boolean> {
    return this.send({
      type: 20,
      streamId,
      timestamp: 0,
      payload: encodeAmf0(name, transactionId, ...args),
    });
  }

  /**
   * Waits for a server message matching `match`; undefined on close or timeout. Throws
   * when what the server sent could not be parsed.
   */
  async expect(
    match: (m: RtmpMessage) => boolean,
    timeoutMs = 5000,
  ): Promise<RtmpMessage | undefined> {
    const found = await this.#until(() => this.received.find(match), timeoutMs);
    if (!found && this.#readError) throw this.#readError;
    return found;
  }

  /** Whether the server closes the connection within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    await this.#until(() => undefined, timeoutMs);
    if (this.#readError) throw this.#readError;
    return this.#isClosed;
  }

  /** Closes our side (harmless when the server already did). */
  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}
