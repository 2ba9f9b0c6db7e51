/**
 * werift's UDP sockets, swapped for native ones: every socket werift's ICE opens
 * (`UdpTransport.init`) becomes a {@linkcode NativeUdpTransport} on one shared
 * {@linkcode NativeLoop}. werift keeps doing ICE, DTLS and RTCP through it as
 * before; the media fast path ({@linkcode FastSender}) writes to the same socket
 * without going through werift at all.
 *
 * Reads: one `sf_wait` at a time runs on a Deno worker thread; when it returns,
 * the main thread drains every ready socket and hands each datagram to its
 * transport's `onData`, in arrival order.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { UdpTransport } from "werift";
import { type FanoutLibrary, NativeLoop, SendPool } from "./ffi.ts";

/** The socket shape werift's StunProtocol and TURN client use. */
interface WeriftUdpOptions {
  portRange?: [number, number];
  interfaceAddresses?: { udp4?: string; udp6?: string };
  port?: number;
}

/** Most remote addresses whose sockaddr one socket caches. */
const MAX_CACHED_ADDRESSES = 64;

/** The process's native sockets and their reader. */
export class NativeUdp {
  readonly loop: NativeLoop;
  readonly #transports = new Map<number, NativeUdpTransport>();
  #pumping = false;
  /** Datagrams read and handed to werift (STUN, DTLS, RTCP), since start. */
  datagramsIn = 0;
  /** Sends of werift's own datagrams that failed (unreachable, full buffer). */
  sendErrors = 0;
  /** The send threads video frames go through, once {@linkcode startPool} ran. */
  pool: SendPool | undefined;
  /** Run before a socket closes (the send path hands over records naming its slot). */
  beforeSocketClose: (() => void) | undefined;
  /** Called with each pooled frame's fan-out latency in seconds (begun → last packet out). */
  onFanoutLatency: ((seconds: number) => void) | undefined;

  constructor(lib: FanoutLibrary) {
    this.loop = new NativeLoop(lib);
  }

  /**
   * Starts `lanes` native send threads: from now on every fast viewer's video
   * goes through them (each viewer pinned to one), off the main thread.
   */
  startPool(lanes: number): SendPool {
    if (this.pool) return this.pool;
    this.pool = new SendPool(this.loop.lib, lanes);
    const timer = setInterval(() => {
      const report = this.onFanoutLatency;
      for (const seconds of this.pool!.takeLatencies()) report?.(seconds);
    }, 250);
    Deno.unrefTimer(timer);
    return this.pool;
  }

  /** @internal */
  register(t: NativeUdpTransport): void {
    this.#transports.set(t.slot, t);
    if (!this.#pumping) void this.#pump();
  }

  /** @internal */
  unregister(t: NativeUdpTransport): void {
    this.#transports.delete(t.slot);
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#transports.size > 0) {
        const ready = await this.loop.wait(200);
        if (ready <= 0) continue;
        this.loop.drain((d) => {
          this.datagramsIn++;
          const t = this.#transports.get(d.slot);
          if (!t || t.closed) return;
          t.rinfo = { address: d.address, port: d.port };
          try {
            t.onData(Buffer.from(d.data.buffer, d.data.byteOffset, d.data.byteLength), [
              d.address,
              d.port,
            ]);
          } catch { /* werift logs its own errors */ }
        });
      }
    } finally {
      this.#pumping = false;
    }
  }
}

/** A werift-compatible UDP transport on a native socket. */
export class NativeUdpTransport {
  readonly type = "udp";
  readonly socketType: "udp4" | "udp6";
  readonly slot: number;
  readonly host: string;
  readonly port: number;
  readonly udp: NativeUdp;
  closed = false;
  rinfo: { address: string; port: number } | undefined;
  onData: (data: Buffer, addr: [string, number]) => void = () => {};
  readonly #sockaddrs = new Map<string, Uint8Array>();

  constructor(udp: NativeUdp, socketType: "udp4" | "udp6", options: WeriftUdpOptions = {}) {
    this.udp = udp;
    this.socketType = socketType;
    const family = socketType === "udp6" ? 6 : 4;
    const bind = options.interfaceAddresses?.[socketType] ?? "";
    const [min, max] = options.port ? [options.port, options.port] : options.portRange ?? [0, 0];
    const { slot, port } = udp.loop.open(family, bind, min, max);
    this.slot = slot;
    this.port = port;
    this.host = bind || (family === 6 ? "::" : "0.0.0.0");
    udp.register(this);
  }

  get address(): { address: string; port: number; family: string } {
    return {
      address: this.host,
      port: this.port,
      family: this.socketType === "udp6" ? "IPv6" : "IPv4",
    };
  }

  get addressFamily(): 4 | 6 {
    return this.socketType === "udp6" ? 6 : 4;
  }

  /** The cached sockaddr of a remote address. */
  sockaddr(address: string, port: number): Uint8Array {
    const key = `${address}|${port}`;
    let sa = this.#sockaddrs.get(key);
    if (!sa) {
      if (this.#sockaddrs.size >= MAX_CACHED_ADDRESSES) this.#sockaddrs.clear();
      sa = this.udp.loop.sockaddr(address, port);
      this.#sockaddrs.set(key, sa);
    }
    return sa;
  }

  send = async (data: Uint8Array, addr?: [string, number]): Promise<void> => {
    if (this.closed) return;
    let [address, port] = addr ?? [this.rinfo?.address ?? "", this.rinfo?.port ?? 0];
    if (!/^[0-9a-f:.]+$/i.test(address)) {
      // A STUN/TURN server given by name.
      const found = await Deno.resolveDns(address, this.socketType === "udp6" ? "AAAA" : "A")
        .catch(() => []);
      if (!found.length) {
        this.udp.sendErrors++;
        return;
      }
      address = found[0];
    }
    // Like node:dgram, a failed send is not an exception for the caller (UDP may drop).
    if (this.udp.loop.send(this.slot, this.sockaddr(address, port), data) < 0) {
      this.udp.sendErrors++;
    }
  };

  close = (): Promise<void> => {
    if (!this.closed) {
      this.closed = true;
      this.udp.beforeSocketClose?.();
      this.udp.unregister(this);
      this.udp.loop.close(this.slot);
    }
    return Promise.resolve();
  };
}

let installed: NativeUdp | undefined;

/**
 * Makes every UDP socket werift opens from now on a native one. Idempotent;
 * returns the shared {@linkcode NativeUdp}.
 */
export function installNativeUdp(lib: FanoutLibrary): NativeUdp {
  if (installed) return installed;
  const udp = installed = new NativeUdp(lib);
  const patched = UdpTransport as unknown as {
    init: (type: "udp4" | "udp6", options?: WeriftUdpOptions) => Promise<unknown>;
  };
  patched.init = (type, options) => Promise.resolve(new NativeUdpTransport(udp, type, options));
  return udp;
}

/** The shared native sockets, when {@linkcode installNativeUdp} ran. */
export function nativeUdp(): NativeUdp | undefined {
  return installed;
}
