/**
 * The FFI face of native/fanout.c (UDP sockets + SRTP over OpenSSL libcrypto):
 * its symbol table, where the built library is looked for, and small typed
 * wrappers. Everything here is synchronous except {@linkcode NativeLoop.wait}.
 *
 * @module
 */
import { nativeLibraryCandidates } from "../../native_lib.ts";

/** The library's ABI version this file speaks (SF_ABI_VERSION in the C source). */
export const FANOUT_ABI_VERSION = 3;

/** File name of the built library. */
export const FANOUT_FILE_NAME = "libsluice_fanout.so";

/** Environment variable naming the library's path explicitly. */
export const FANOUT_PATH_ENV = "SLUICE_FANOUT_LIB";

/** DTLS-SRTP protection profiles (RFC 5764 §4.1.2, RFC 7714 §14.2). */
export const SrtpProfile = {
  AES128_CM_HMAC_SHA1_80: 1,
  AEAD_AES_128_GCM: 7,
} as const;

/** Symbols of the library, as `Deno.dlopen` wants them. */
export const FANOUT_SYMBOLS = {
  sf_abi_version: { parameters: [], result: "i32" },
  sf_srtp_create: { parameters: ["i32", "buffer", "buffer"], result: "pointer" },
  sf_srtcp_create: { parameters: ["i32", "buffer", "buffer"], result: "pointer" },
  sf_srtcp_protect: { parameters: ["pointer", "buffer", "i32", "buffer"], result: "i32" },
  sf_send_rtcp: {
    parameters: ["pointer", "i32", "buffer", "i32", "pointer", "buffer", "i32"],
    result: "i32",
  },
  sf_srtp_destroy: { parameters: ["pointer"], result: "void" },
  sf_srtp_protect: { parameters: ["pointer", "buffer", "i32", "buffer"], result: "i32" },
  sf_srtp_unprotect: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sf_srtp_stats: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sf_loop_create: { parameters: [], result: "pointer" },
  sf_loop_destroy: { parameters: ["pointer"], result: "void" },
  sf_sockaddr: { parameters: ["i32", "buffer", "i32", "buffer"], result: "i32" },
  sf_udp_open: {
    parameters: ["pointer", "i32", "buffer", "i32", "i32", "buffer"],
    result: "i32",
  },
  sf_udp_close: { parameters: ["pointer", "i32"], result: "void" },
  sf_udp_send: {
    parameters: ["pointer", "i32", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  sf_send_rtp: {
    parameters: [
      "pointer",
      "i32",
      "buffer",
      "i32",
      "pointer",
      "i32",
      "i32",
      "u32",
      "u32",
      "buffer",
      "i32",
    ],
    result: "i32",
  },
  sf_send_rtp_frame: {
    parameters: [
      "pointer",
      "i32",
      "buffer",
      "i32",
      "pointer",
      "i32",
      "i32",
      "u32",
      "u32",
      "buffer",
      "i32",
      "buffer",
      "i32",
    ],
    result: "i32",
  },
  sf_udp_set_sink: { parameters: ["pointer", "i32", "pointer"], result: "void" },
  sf_udp_congested: { parameters: ["pointer", "i32"], result: "i32" },
  sf_pool_create: { parameters: ["i32"], result: "pointer" },
  sf_pool_lanes: { parameters: ["pointer"], result: "i32" },
  sf_pool_send_frame: {
    parameters: ["pointer", "pointer", "buffer", "i32", "buffer", "i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  sf_pool_stats: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sf_pool_latencies: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sf_pool_destroy: { parameters: ["pointer"], result: "void" },
  sf_wait: { parameters: ["pointer", "i32"], result: "i32", nonblocking: true },
  sf_drain: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library. */
export type FanoutLibrary = Deno.DynamicLibrary<typeof FANOUT_SYMBOLS>;

/**
 * Paths where the library may be, best first: `$SLUICE_FANOUT_LIB` alone when
 * set; else `native/build/` of this source tree, then beside the executable.
 */
export function fanoutCandidates(): string[] {
  return nativeLibraryCandidates(FANOUT_FILE_NAME, FANOUT_PATH_ENV);
}

let loaded: FanoutLibrary | Error | undefined;

/**
 * The library, loaded once per process; an Error saying why not (missing file,
 * no `--allow-ffi`, wrong ABI) when it can't be used.
 */
export function loadFanout(): FanoutLibrary | Error {
  if (loaded) return loaded;
  const problems: string[] = [];
  for (const path of fanoutCandidates()) {
    try {
      const lib = Deno.dlopen(path, FANOUT_SYMBOLS);
      const abi = lib.symbols.sf_abi_version();
      if (abi !== FANOUT_ABI_VERSION) {
        lib.close();
        problems.push(
          `${path}: ABI ${abi}, expected ${FANOUT_ABI_VERSION} (native/build.sh --force)`,
        );
        continue;
      }
      return loaded = lib;
    } catch (err) {
      problems.push(`${path}: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  return loaded = new Error(
    `${FANOUT_FILE_NAME} not usable (${problems.join("; ") || "no candidate path"}); ` +
      "build it with native/build.sh (apt: gcc libc6-dev libssl-dev)",
  );
}

const cstring = (s: string) => new TextEncoder().encode(s + "\0");

/**
 * One direction of SRTP, or of SRTCP (`kind` "rtcp"), with keys from DTLS-SRTP
 * (RFC 5764).
 */
export class SrtpContext {
  readonly #lib: FanoutLibrary;
  #handle: Deno.PointerValue;
  readonly profile: number;
  readonly kind: "rtp" | "rtcp";

  constructor(
    lib: FanoutLibrary,
    profile: number,
    masterKey: Uint8Array,
    masterSalt: Uint8Array,
    kind: "rtp" | "rtcp" = "rtp",
  ) {
    const saltLength = profile === SrtpProfile.AEAD_AES_128_GCM ? 12 : 14;
    if (masterKey.length !== 16 || masterSalt.length !== saltLength) {
      throw new Error(
        `SRTP profile ${profile} wants a 16-byte key and ${saltLength}-byte salt, ` +
          `got ${masterKey.length} and ${masterSalt.length}`,
      );
    }
    this.#lib = lib;
    this.profile = profile;
    this.kind = kind;
    this.#handle = kind === "rtcp"
      ? lib.symbols.sf_srtcp_create(profile, masterKey, masterSalt)
      : lib.symbols.sf_srtp_create(profile, masterKey, masterSalt);
    if (!this.#handle) throw new Error(`SRTP profile ${profile} is not supported`);
  }

  /** The native handle (for {@linkcode NativeLoop.sendRtp}). */
  get handle(): Deno.PointerValue {
    if (!this.#handle) throw new Error("SRTP context destroyed");
    return this.#handle;
  }

  /** Protects one RTP packet; returns the SRTP packet. */
  protect(rtp: Uint8Array): Uint8Array {
    const out = new Uint8Array(rtp.length + 16);
    const n = this.#lib.symbols.sf_srtp_protect(this.handle, rtp, rtp.length, out);
    if (n < 0) throw new Error("not an RTP packet SRTP can protect");
    return out.subarray(0, n);
  }

  /** Protects one RTCP compound packet (an SRTCP context); returns the SRTCP packet. */
  protectRtcp(rtcp: Uint8Array): Uint8Array {
    const out = new Uint8Array(rtcp.length + 20);
    const n = this.#lib.symbols.sf_srtcp_protect(this.handle, rtcp, rtcp.length, out);
    if (n < 0) throw new Error("not an RTCP packet SRTCP can protect");
    return out.subarray(0, n);
  }

  /** Unprotects one SRTP packet (a copy); undefined when authentication fails. */
  unprotect(srtp: Uint8Array): Uint8Array | undefined {
    const copy = srtp.slice();
    const n = this.#lib.symbols.sf_srtp_unprotect(this.handle, copy, copy.length);
    return n < 0 ? undefined : copy.subarray(0, n);
  }

  /** Receive counters per SSRC. */
  stats(): SrtpStreamStats[] {
    const out = new BigUint64Array(8 * 8);
    const n = this.#lib.symbols.sf_srtp_stats(this.handle, out, 8);
    const streams: SrtpStreamStats[] = [];
    for (let i = 0; i < n; i++) {
      const o = out.subarray(i * 8, i * 8 + 8);
      streams.push({
        ssrc: Number(o[0]),
        received: Number(o[1]),
        bytes: Number(o[2]),
        expected: Number(o[3]),
        reordered: Number(o[4]),
        duplicates: Number(o[5]),
        authFailures: Number(o[6]),
      });
    }
    return streams;
  }

  destroy(): void {
    if (!this.#handle) return;
    this.#lib.symbols.sf_srtp_destroy(this.#handle);
    this.#handle = null;
  }
}

/** What a receiving SRTP context counted for one SSRC. */
export interface SrtpStreamStats {
  ssrc: number;
  received: number;
  bytes: number;
  /** Highest minus first extended sequence number, plus one. */
  expected: number;
  /** Packets that arrived after a higher sequence number. */
  reordered: number;
  duplicates: number;
  authFailures: number;
}

/** A datagram read from a native socket. */
export interface Datagram {
  slot: number;
  address: string;
  port: number;
  data: Uint8Array;
}

/** Native UDP sockets read through one epoll set. */
export class NativeLoop {
  readonly lib: FanoutLibrary;
  readonly handle: Deno.PointerValue;
  readonly #out = new Uint8Array(1 << 20);
  readonly #port = new Int32Array(1);

  constructor(lib: FanoutLibrary) {
    this.lib = lib;
    this.handle = lib.symbols.sf_loop_create();
    if (!this.handle) throw new Error("epoll_create1 failed");
  }

  /**
   * Opens a UDP socket on `ip` ("" for any) and a port in [min, max] (0, 0 for
   * any). Returns the socket's slot and port.
   */
  open(family: 4 | 6, ip: string, min = 0, max = 0): { slot: number; port: number } {
    const slot = this.lib.symbols.sf_udp_open(
      this.handle,
      family,
      cstring(ip),
      min,
      max,
      new Uint8Array(this.#port.buffer),
    );
    if (slot < 0) throw new Error(`cannot open a UDP socket on ${ip || "*"}: errno ${-slot}`);
    return { slot, port: this.#port[0] };
  }

  close(slot: number): void {
    this.lib.symbols.sf_udp_close(this.handle, slot);
  }

  /** A sockaddr for `address`:`port` to pass to the send calls. */
  sockaddr(address: string, port: number): Uint8Array {
    const out = new Uint8Array(28);
    const family = address.includes(":") ? 6 : 4;
    const n = this.lib.symbols.sf_sockaddr(family, cstring(address), port, out);
    if (n < 0) throw new Error(`not an IP address: ${address}`);
    return out.subarray(0, n);
  }

  /** Sends one datagram; returns bytes sent or a negative errno. */
  send(slot: number, sockaddr: Uint8Array, data: Uint8Array): number {
    return this.lib.symbols.sf_udp_send(
      this.handle,
      slot,
      sockaddr,
      sockaddr.length,
      data,
      data.length,
    );
  }

  /** RTP header + payload, SRTP-protected, sent: the hot path. Bytes sent or < 0. */
  sendRtp(
    slot: number,
    sockaddr: Uint8Array,
    srtp: Deno.PointerValue,
    payloadType: number,
    marker: boolean,
    sequenceNumber: number,
    timestamp: number,
    ssrc: number,
    payload: Uint8Array,
  ): number {
    return this.lib.symbols.sf_send_rtp(
      this.handle,
      slot,
      sockaddr,
      sockaddr.length,
      srtp,
      (marker ? 0x80 : 0) | payloadType,
      sequenceNumber,
      timestamp >>> 0,
      ssrc >>> 0,
      payload,
      payload.length,
    );
  }

  /**
   * One video frame's packets to one viewer: `payloads` back to back, `lens` their
   * lengths (bit 15 = marker), sequence numbers from `firstSeq`, one timestamp.
   * Runs of equal-size packets leave in one UDP GSO send. Packets sent, or < 0.
   */
  sendRtpFrame(
    slot: number,
    sockaddr: Uint8Array,
    srtp: Deno.PointerValue,
    payloadType: number,
    firstSeq: number,
    timestamp: number,
    ssrc: number,
    payloads: Uint8Array,
    lens: Uint16Array,
  ): number {
    return this.lib.symbols.sf_send_rtp_frame(
      this.handle,
      slot,
      sockaddr,
      sockaddr.length,
      srtp,
      payloadType,
      firstSeq,
      timestamp >>> 0,
      ssrc >>> 0,
      payloads,
      payloads.length,
      lens,
      lens.length,
    );
  }

  /** An RTCP compound packet, SRTCP-protected with `srtcp`, sent. Bytes sent or < 0. */
  sendRtcp(slot: number, sockaddr: Uint8Array, srtcp: Deno.PointerValue, rtcp: Uint8Array): number {
    return this.lib.symbols.sf_send_rtcp(
      this.handle,
      slot,
      sockaddr,
      sockaddr.length,
      srtcp,
      rtcp,
      rtcp.length,
    );
  }

  /** Whether a pool send to `slot` met a full socket buffer in the last 200 ms. */
  congested(slot: number): boolean {
    return this.lib.symbols.sf_udp_congested(this.handle, slot) !== 0;
  }

  /** Media arriving on `slot` is unprotected and counted by `srtp`, never surfaced. */
  setSink(slot: number, srtp: SrtpContext | null): void {
    this.lib.symbols.sf_udp_set_sink(this.handle, slot, srtp ? srtp.handle : null);
  }

  /** Waits (off the main thread) up to `timeoutMs` for readable sockets. */
  wait(timeoutMs: number): Promise<number> {
    return this.lib.symbols.sf_wait(this.handle, timeoutMs);
  }

  /** Reads what the last wait found, calling `each` per datagram (data is a fresh copy). */
  drain(each: (d: Datagram) => void): number {
    let count = 0;
    for (;;) {
      const used = this.lib.symbols.sf_drain(this.handle, this.#out, this.#out.length);
      const o = this.#out;
      for (let i = 0; i < used;) {
        const slot = (o[i] << 8) | o[i + 1];
        const port = (o[i + 2] << 8) | o[i + 3];
        const family = o[i + 4];
        const len = (o[i + 21] << 8) | o[i + 22];
        const address = family === 6
          ? ipv6(o.subarray(i + 5, i + 21))
          : o.subarray(i + 5, i + 9).join(".");
        each({ slot, address, port, data: o.slice(i + 23, i + 23 + len) });
        i += 23 + len;
        count++;
      }
      if (used < this.#out.length - 23 - 1500) return count;
    }
  }

  destroy(): void {
    this.lib.symbols.sf_loop_destroy(this.handle);
  }
}

function ipv6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:{3,}/, "::");
}

/** Bytes of one viewer's record in {@linkcode SendPool.sendFrame}'s targets (SF_TARGET_BYTES). */
export const POOL_TARGET_BYTES = 64;

/** One viewer as the send pool addresses it (see {@linkcode poolTarget}). */
export interface PoolTarget {
  /** The lane (thread) that sends to this viewer; fixed for its life, which keeps order. */
  lane: number;
  payloadType: number;
  /** Its socket's slot in the loop. */
  slot: number;
  ssrc: number;
  /** Its SRTP context's handle. */
  srtp: Deno.PointerValue;
  /** Its remote address (see {@linkcode NativeLoop.sockaddr}). */
  sockaddr: Uint8Array;
}

/**
 * A viewer's record for {@linkcode SendPool.sendFrame} (SF_TARGET_BYTES, the layout
 * sf_pool_send_frame reads); each frame copies it and sets the sequence number (at 8)
 * and timestamp (at 12) with {@linkcode setPoolFrame}.
 */
export function poolTarget(t: PoolTarget): Uint8Array {
  if (t.sockaddr.length > 28) throw new RangeError("a sockaddr is at most 28 bytes");
  const out = new Uint8Array(POOL_TARGET_BYTES);
  const v = new DataView(out.buffer);
  out[0] = t.lane;
  out[1] = t.payloadType;
  out[2] = t.sockaddr.length;
  v.setInt32(4, t.slot, true);
  v.setUint32(16, t.ssrc >>> 0, true);
  v.setBigUint64(24, BigInt(Deno.UnsafePointer.value(t.srtp)), true);
  out.set(t.sockaddr, 32);
  return out;
}

/** Sets one frame's first sequence number and timestamp in a record at `at` of `targets`. */
export function setPoolFrame(
  targets: DataView,
  at: number,
  firstSeq: number,
  timestamp: number,
): void {
  targets.setUint32(at + 8, firstSeq & 0xffff, true);
  targets.setUint32(at + 12, timestamp >>> 0, true);
}

/** Counters of a {@linkcode SendPool}. */
export interface SendPoolStats {
  packetsSent: number;
  /** Packets not sent: the kernel refused them (full socket buffer) or a lane was full. */
  packetsDropped: number;
  /** Frames a lane dropped for its share of viewers because it had SF_POOL_QUEUE waiting. */
  framesDropped: number;
  /** Frames queued and not yet sent, over all lanes. */
  framesWaiting: number;
  /** CPU seconds each lane's thread has spent sending. */
  laneCpuSeconds: number[];
}

/**
 * The native send pool: `lanes` threads that each send a room's video frame to
 * their share of the viewers, in parallel (see native/fanout.c). A viewer's records
 * always name the same lane, which keeps its packets in order.
 */
export class SendPool {
  readonly lib: FanoutLibrary;
  readonly handle: Deno.PointerValue;
  readonly lanes: number;
  readonly #stats = new BigUint64Array(5 + 16);
  readonly #latencies = new Uint32Array(4096);

  constructor(lib: FanoutLibrary, lanes: number) {
    this.lib = lib;
    this.handle = lib.symbols.sf_pool_create(lanes);
    if (!this.handle) throw new Error(`cannot start ${lanes} send threads`);
    this.lanes = lib.symbols.sf_pool_lanes(this.handle);
  }

  /**
   * Queues one frame (payloads back to back, `lens` with bit 15 = marker) for the
   * `count` viewers whose records fill the start of `targets`; `preUs` is how long
   * ago the frame began (it counts in the latency). Returns the viewers queued.
   */
  sendFrame(
    loop: NativeLoop,
    payloads: Uint8Array,
    lens: Uint16Array,
    targets: Uint8Array,
    count: number,
    preUs: number,
  ): number {
    return this.lib.symbols.sf_pool_send_frame(
      this.handle,
      loop.handle,
      payloads,
      payloads.length,
      lens,
      lens.length,
      targets,
      count,
      Math.max(0, Math.round(preUs)),
    );
  }

  stats(): SendPoolStats {
    const n = this.lib.symbols.sf_pool_stats(this.handle, this.#stats, this.#stats.length);
    const v = [...this.#stats.subarray(0, n)].map(Number);
    return {
      packetsSent: v[0],
      packetsDropped: v[1],
      framesDropped: v[2],
      framesWaiting: v[4],
      laneCpuSeconds: v.slice(5).map((ns) => ns / 1e9),
    };
  }

  /** Takes the latencies of the frames completed since the last call, in seconds. */
  takeLatencies(): number[] {
    const out: number[] = [];
    for (;;) {
      const n = this.lib.symbols.sf_pool_latencies(
        this.handle,
        this.#latencies,
        this.#latencies.length,
      );
      for (let i = 0; i < n; i++) out.push(this.#latencies[i] / 1e6);
      if (n < this.#latencies.length) return out;
    }
  }

  /** Sends what the lanes hold, then stops them. */
  destroy(): void {
    this.lib.symbols.sf_pool_destroy(this.handle);
  }
}
