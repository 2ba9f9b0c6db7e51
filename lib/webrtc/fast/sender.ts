/**
 * The media fast path of one viewer. Once werift has connected ICE and DTLS, this
 * takes the viewer's SRTP keys (RFC 5764 exporter, the same keys werift derived),
 * the ICE pair werift nominated and its senders' SSRCs and payload types, and then
 * sends the media natively (RTP header + SRTP + sendto in C): each video frame
 * through the send threads (one record per viewer, see {@linkcode flushFanout}), or
 * with one call per frame where no pool runs; audio and retransmissions with one
 * call per packet from the main thread. werift
 * goes on doing ICE consent, DTLS and reading RTCP; this path sends its own RTCP
 * sender reports (SRTCP natively: werift's took ≈ 250 µs each) and answers NACKs
 * from a history of what it sent.
 *
 * @module
 */
import type { RTCRtpSender } from "werift";
import type { SharedRtp } from "../transport.ts";
import { POOL_TARGET_BYTES, poolTarget, setPoolFrame, SrtpContext, SrtpProfile } from "./ffi.ts";
import { ntpTime } from "../werift_fixes.ts";
import { type NativeUdp, NativeUdpTransport } from "./udp.ts";

/** Packets per stream kept for NACK retransmissions (RFC 4585 §6.2.1). */
const HISTORY = 1024;
/** After a full socket buffer (EAGAIN), the viewer counts as slow this long. */
const CONGESTED_MS = 200;
const EAGAIN = -11;

/** What werift objects the fast path reads (private fields of werift 0.25.2). */
interface WeriftDtlsTransport {
  dtls?: {
    srtp: { srtpProfile?: number };
    extractSessionKeys(keyLength: number, saltLength: number): {
      localKey: Uint8Array;
      localSalt: Uint8Array;
    };
  };
  iceTransport: { connection: { nominated?: WeriftPair } };
}

interface WeriftPair {
  protocol: { transport?: unknown };
  remoteAddr: [string, number];
}

interface WeriftSenderFields {
  ssrc: number;
  cname?: string;
  codec?: { payloadType: number };
}

/** A frame's payloads packed for {@linkcode NativeLoop.sendRtpFrame}, built once per room frame. */
interface FrameBatch {
  readonly payloads: Uint8Array;
  readonly lens: Uint16Array;
}

/**
 * The room frame being handed to the send pool: each fast viewer adds its record
 * (socket, address, SRTP context, sequence numbers, timestamp) and the frame goes
 * to the lanes in one call when the fan-out loop ends ({@linkcode flushFanout}).
 */
interface PendingFrame {
  udp: NativeUdp;
  packets: readonly SharedRtp[];
  batch: FrameBatch;
  count: number;
  startedAt: number;
}

let pending: PendingFrame | undefined;
let targets = new Uint8Array(POOL_TARGET_BYTES * 256);
let targetsView = new DataView(targets.buffer);

/**
 * Hands the frame the viewers just queued to the send pool. `startedAt`
 * (performance.now() when the frame began) makes the pool's latency cover the
 * whole fan-out. Returns whether a frame went to the pool (its latency is then
 * reported when its last packet has left, see `NativeUdp.onFanoutLatency`).
 */
export function flushFanout(startedAt?: number): boolean {
  const frame = pending;
  if (!frame) return false;
  pending = undefined;
  const pool = frame.udp.pool!;
  const preUs = (performance.now() - (startedAt ?? frame.startedAt)) * 1000;
  pool.sendFrame(
    frame.udp.loop,
    frame.batch.payloads,
    frame.batch.lens,
    targets,
    frame.count,
    preUs,
  );
  return true;
}

/** Adds a viewer's record to the frame gathering for the pool; returns the frame's batch. */
function queueForPool(
  udp: NativeUdp,
  packets: readonly SharedRtp[],
  record: Uint8Array,
  firstSeq: number,
  timestamp: number,
): FrameBatch {
  // Another frame (a GOP replay to one viewer): the earlier one leaves first, in order.
  if (pending && (pending.packets !== packets || pending.udp !== udp)) flushFanout();
  if (!pending) {
    pending = { udp, packets, batch: frameBatch(packets), count: 0, startedAt: performance.now() };
    queueMicrotask(() => flushFanout()); // a caller that does not flush still sends
  }
  const at = pending.count * POOL_TARGET_BYTES;
  if (at + POOL_TARGET_BYTES > targets.length) {
    const grown = new Uint8Array(targets.length * 2);
    grown.set(targets);
    targets = grown;
    targetsView = new DataView(targets.buffer);
  }
  targets.set(record, at);
  setPoolFrame(targetsView, at, firstSeq, timestamp);
  pending.count++;
  return pending.batch;
}

/** Lane of the next fast viewer: viewers are dealt to the pool's lanes in turn. */
let nextLane = 0;

const batches = new WeakMap<readonly SharedRtp[], FrameBatch>();

/** The packed form of a room frame's packets (shared by every viewer of the room). */
function frameBatch(packets: readonly SharedRtp[]): FrameBatch {
  let batch = batches.get(packets);
  if (batch) return batch;
  let total = 0;
  for (const p of packets) total += p.payload.length;
  const payloads = new Uint8Array(total);
  const lens = new Uint16Array(packets.length);
  let at = 0;
  packets.forEach((p, i) => {
    payloads.set(p.payload, at);
    at += p.payload.length;
    lens[i] = p.payload.length | (p.marker ? 0x8000 : 0);
  });
  batches.set(packets, batch = { payloads, lens });
  return batch;
}

/** One stream (video or audio) of a fast viewer. */
class FastStream {
  readonly sender: WeriftSenderFields;
  readonly ssrc: number;
  readonly payloadType: number;
  /** What went out under each sequence number (mod HISTORY), for NACKs. */
  readonly history: (SharedRtp | undefined)[] = new Array(HISTORY);
  readonly historySeq = new Int32Array(HISTORY).fill(-1);
  readonly historyTs = new Uint32Array(HISTORY);
  /** performance.now() of the last packet sent, its RTP timestamp, the totals (RFC 3550 §6.4.1). */
  lastSentAt = 0;
  lastTimestamp = 0;
  packets = 0;
  octets = 0;
  readonly cname: Uint8Array | undefined;

  constructor(sender: RTCRtpSender) {
    this.sender = sender as unknown as WeriftSenderFields;
    this.ssrc = this.sender.ssrc;
    const pt = this.sender.codec?.payloadType;
    if (pt === undefined) throw new Error("the sender has no negotiated codec");
    this.payloadType = pt;
    const cname = this.sender.cname ? new TextEncoder().encode(this.sender.cname) : undefined;
    this.cname = cname && cname.length <= 255 ? cname : undefined;
  }

  /** An RTCP compound packet: SR (RFC 3550 §6.4.1) and, when known, SDES CNAME. */
  senderReport(): Uint8Array {
    const sdes = this.cname ? (8 + 2 + this.cname.length + 1 + 3) & ~3 : 0;
    const out = new Uint8Array(28 + sdes);
    const v = new DataView(out.buffer);
    v.setUint8(0, 0x80);
    v.setUint8(1, 200);
    v.setUint16(2, 6);
    v.setUint32(4, this.ssrc);
    const ntp = ntpTime(this.lastSentAt);
    v.setBigUint64(8, ntp);
    v.setUint32(16, this.lastTimestamp);
    v.setUint32(20, this.packets >>> 0);
    v.setUint32(24, this.octets >>> 0);
    if (this.cname) {
      v.setUint8(28, 0x81);
      v.setUint8(29, 202);
      v.setUint16(30, sdes / 4 - 1);
      v.setUint32(32, this.ssrc);
      v.setUint8(36, 1); // CNAME
      v.setUint8(37, this.cname.length);
      out.set(this.cname, 38);
      // The END item and padding are the zeros already there.
    }
    return out;
  }
}

/** Fast senders whose reports are due, served by one timer per process. */
const reporting = new Set<FastSender>();
let reportTimer: ReturnType<typeof setInterval> | undefined;

function watchReports(sender: FastSender): void {
  reporting.add(sender);
  reportTimer ??= setInterval(() => {
    const now = performance.now();
    for (const s of reporting) s.reportIfDue(now);
  }, 100);
}

function unwatchReports(sender: FastSender): void {
  reporting.delete(sender);
  if (reporting.size === 0 && reportTimer !== undefined) {
    clearInterval(reportTimer);
    reportTimer = undefined;
  }
}

/** Counters of every fast sender of a server (metrics). */
export interface FastTotals {
  /** Packets the kernel refused (a full socket buffer). */
  dropped: number;
  /** Packets resent for NACKs. */
  retransmitted: number;
}

/** Why a viewer can't use the fast path (it stays on werift's). */
export class FastPathUnavailable extends Error {
  override name = "FastPathUnavailable";
}

/** The fast send path of one connected viewer. */
export class FastSender {
  readonly #udp: NativeUdp;
  readonly #dtls: WeriftDtlsTransport;
  readonly #srtp: SrtpContext;
  readonly #srtcp: SrtpContext;
  readonly #video: FastStream;
  #nextReportAt = 0;
  readonly #audio: FastStream | undefined;
  #pair: WeriftPair | undefined;
  #transport: NativeUdpTransport | undefined;
  #slot = -1;
  #sockaddr: Uint8Array = new Uint8Array(0);
  #congestedUntil = 0;
  #closed = false;
  readonly #totals: FastTotals;
  /** This viewer's lane in the send pool: fixed for life, which keeps its packets in order. */
  readonly #lane: number;
  /** Its record for the send pool (rewritten when the ICE pair changes). */
  #record: Uint8Array = new Uint8Array(0);

  /** Throws {@linkcode FastPathUnavailable} when this viewer's path can't be taken over. */
  constructor(
    udp: NativeUdp,
    video: RTCRtpSender,
    audio: RTCRtpSender | undefined,
    totals: FastTotals = { dropped: 0, retransmitted: 0 },
  ) {
    this.#udp = udp;
    this.#totals = totals;
    this.#dtls = video.dtlsTransport as unknown as WeriftDtlsTransport;
    const dtls = this.#dtls.dtls;
    const profile = dtls?.srtp.srtpProfile;
    if (!dtls || profile === undefined) throw new FastPathUnavailable("DTLS-SRTP not established");
    if (
      profile !== SrtpProfile.AES128_CM_HMAC_SHA1_80 && profile !== SrtpProfile.AEAD_AES_128_GCM
    ) {
      throw new FastPathUnavailable(`SRTP profile ${profile} is not supported`);
    }
    const keys = dtls.extractSessionKeys(16, profile === SrtpProfile.AEAD_AES_128_GCM ? 12 : 14);
    this.#video = new FastStream(video);
    this.#audio = audio && audio.dtlsTransport === video.dtlsTransport
      ? new FastStream(audio)
      : undefined;
    if (audio && !this.#audio) {
      throw new FastPathUnavailable("audio and video are not bundled on one transport");
    }
    if (!this.#route()) {
      throw new FastPathUnavailable("the nominated ICE pair is not on a native socket");
    }
    const lib = udp.loop.lib;
    this.#srtp = new SrtpContext(lib, profile, keys.localKey, keys.localSalt);
    this.#srtcp = new SrtpContext(lib, profile, keys.localKey, keys.localSalt, "rtcp");
    this.#lane = udp.pool ? nextLane++ % udp.pool.lanes : 0;
    // A socket closing while a frame gathers records would free its slot for another
    // socket: the records go to the lanes first (they hold the socket itself).
    udp.beforeSocketClose ??= () => void flushFanout();
    this.#writeRoute();
    // werift's sender never sends RTP here, so it never starts its own reports.
    this.#nextReportAt = performance.now() + 200;
    watchReports(this);
  }

  /**
   * Sends each stream's sender report when due: every 0.5-1.5 s (RFC 3550 §6.2
   * randomisation), the NTP time of its last packet with that packet's RTP
   * timestamp — what lets the browser line audio up with video.
   */
  reportIfDue(now: number): void {
    if (now < this.#nextReportAt || this.#closed) return;
    this.#nextReportAt = now + 500 + Math.random() * 1000;
    if (!this.#route()) return;
    for (const s of [this.#video, this.#audio]) {
      if (!s || s.lastSentAt === 0) continue;
      this.#udp.loop.sendRtcp(this.#slot, this.#sockaddr, this.#srtcp.handle, s.senderReport());
    }
  }

  /** Follows werift's nominated pair (it changes on an ICE restart). */
  #route(): boolean {
    const pair = this.#dtls.iceTransport.connection.nominated;
    // A closed socket's slot may already belong to another viewer's new socket.
    if (pair === this.#pair) return this.#slot >= 0 && !this.#transport!.closed;
    this.#pair = pair;
    const transport = pair?.protocol.transport;
    if (!pair || !(transport instanceof NativeUdpTransport) || transport.closed) {
      this.#slot = -1;
      this.#transport = undefined;
      return false;
    }
    this.#transport = transport;
    this.#slot = transport.slot;
    this.#sockaddr = transport.sockaddr(pair.remoteAddr[0], pair.remoteAddr[1]);
    this.#writeRoute();
    return true;
  }

  /** The pool record, for the current socket and address (after each new pair). */
  #writeRoute(): void {
    // Before the constructor has its SRTP context (its first #route()), there is nothing to write.
    if (!this.#udp.pool || !this.#srtp) return;
    this.#record = poolTarget({
      lane: this.#lane,
      payloadType: this.#video.payloadType,
      slot: this.#slot,
      ssrc: this.#video.ssrc,
      srtp: this.#srtp.handle,
      sockaddr: this.#sockaddr,
    });
  }

  /** Whether the viewer is behind (its socket buffer was full a moment ago). */
  get congested(): boolean {
    if (this.#congestedUntil > performance.now()) return true;
    return this.#udp.pool !== undefined && this.#slot >= 0 && this.#udp.loop.congested(this.#slot);
  }

  sendAudio(packet: SharedRtp): void {
    if (this.#audio) {
      this.#send(this.#audio, packet, packet.sequenceNumber, packet.timestamp, true);
    }
  }

  /**
   * A room frame's packets under this viewer's sequence numbers (from `firstSeq`)
   * and `timestamp`: one native call, as few system calls as UDP GSO allows.
   */
  sendVideoFrame(packets: readonly SharedRtp[], firstSeq: number, timestamp: number): void {
    if (this.#closed || !this.#route() || packets.length === 0) return;
    const stream = this.#video;
    if (this.#udp.pool) {
      // Sent by a pool lane when the room's fan-out loop ends; its refusals are counted there.
      const batch = queueForPool(this.#udp, packets, this.#record, firstSeq, timestamp);
      this.#remember(stream, packets, firstSeq, timestamp);
      this.#sent(stream, timestamp, packets.length, batch.payloads.length);
      return;
    }
    const batch = frameBatch(packets);
    const n = this.#udp.loop.sendRtpFrame(
      this.#slot,
      this.#sockaddr,
      this.#srtp.handle,
      stream.payloadType,
      firstSeq,
      timestamp,
      stream.ssrc,
      batch.payloads,
      batch.lens,
    );
    const sent = n < 0 ? 0 : n;
    if (sent < packets.length) this.#refused(packets.length - sent, n);
    // Record even what the kernel refused: a NACK for it can still be answered.
    this.#remember(stream, packets, firstSeq, timestamp);
    let bytes = 0;
    for (let i = 0; i < sent; i++) bytes += packets[i].payload.length;
    if (sent) this.#sent(stream, timestamp, sent, bytes);
  }

  #remember(
    stream: FastStream,
    packets: readonly SharedRtp[],
    firstSeq: number,
    timestamp: number,
  ): void {
    for (let i = 0; i < packets.length; i++) {
      const seq = (firstSeq + i) & 0xffff;
      const slot = seq % HISTORY;
      stream.history[slot] = packets[i];
      stream.historySeq[slot] = seq;
      stream.historyTs[slot] = timestamp;
    }
  }

  #refused(count: number, result: number): void {
    this.#totals.dropped += count;
    if (result === EAGAIN || result >= 0) this.#congestedUntil = performance.now() + CONGESTED_MS;
  }

  #sent(stream: FastStream, timestamp: number, packets: number, bytes: number): void {
    stream.lastTimestamp = timestamp;
    stream.packets += packets;
    stream.octets += bytes;
    stream.lastSentAt = performance.now();
  }

  #send(stream: FastStream, p: SharedRtp, seq: number, timestamp: number, record: boolean): void {
    if (this.#closed || !this.#route()) return;
    const n = this.#udp.loop.sendRtp(
      this.#slot,
      this.#sockaddr,
      this.#srtp.handle,
      stream.payloadType,
      p.marker,
      seq,
      timestamp,
      stream.ssrc,
      p.payload,
    );
    if (record) {
      const slot = seq % HISTORY;
      stream.history[slot] = p;
      stream.historySeq[slot] = seq;
      stream.historyTs[slot] = timestamp;
    }
    if (n < 0) return this.#refused(1, n);
    if (record) this.#sent(stream, timestamp, 1, p.payload.length);
  }

  /** Resends what a generic NACK (RFC 4585 §6.2.1) lists, when still in the history. */
  nack(mediaSsrc: number, lost: readonly number[]): void {
    const stream = mediaSsrc === this.#video.ssrc
      ? this.#video
      : mediaSsrc === this.#audio?.ssrc
      ? this.#audio
      : undefined;
    if (!stream) return;
    for (const seq of lost) {
      const slot = seq % HISTORY;
      const p = stream.history[slot];
      if (p && stream.historySeq[slot] === seq) {
        this.#totals.retransmitted++;
        this.#send(stream, p, seq, stream.historyTs[slot], false);
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    unwatchReports(this);
    // A frame still gathering records may hold this viewer's SRTP context: hand it to the
    // lanes first (they take references), then let go of ours.
    flushFanout();
    this.#srtp.destroy();
    this.#srtcp.destroy();
    this.#video.history.fill(undefined);
    this.#audio?.history.fill(undefined);
  }
}
