/**
 * The media fast path of one viewer. Once werift has connected ICE and DTLS, this
 * takes the viewer's SRTP keys (RFC 5764 exporter, the same keys werift derived),
 * the ICE pair werift nominated and its senders' SSRCs and payload types, and then
 * sends every RTP packet with one native call (header + SRTP + sendto). werift
 * goes on doing ICE consent, DTLS and RTCP; this keeps werift's sender-report
 * counters true and answers NACKs itself from a history of what it sent.
 *
 * @module
 */
import type { RTCRtpSender } from "werift";
import type { SharedRtp } from "../transport.ts";
import { SrtpContext, SrtpProfile } from "./ffi.ts";
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
  codec?: { payloadType: number };
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  runRtcp(): Promise<void>;
}

/** One stream (video or audio) of a fast viewer. */
class FastStream {
  readonly sender: WeriftSenderFields;
  readonly ssrc: number;
  readonly payloadType: number;
  readonly history: (SharedRtp | undefined)[] = new Array(HISTORY);
  lastSentAt = 0;

  constructor(sender: RTCRtpSender) {
    this.sender = sender as unknown as WeriftSenderFields;
    this.ssrc = this.sender.ssrc;
    const pt = this.sender.codec?.payloadType;
    if (pt === undefined) throw new Error("the sender has no negotiated codec");
    this.payloadType = pt;
  }
}

/** NTP time (RFC 5905: seconds since 1900 << 32 | fraction) of a performance.now() instant. */
function ntpAt(perfMs: number): bigint {
  const ms = performance.timeOrigin + perfMs - Date.UTC(1900, 0, 1);
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - seconds * 1000) / 1000) * 2 ** 32);
  return (BigInt(seconds) << 32n) | BigInt(fraction);
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
  readonly #video: FastStream;
  readonly #audio: FastStream | undefined;
  #pair: WeriftPair | undefined;
  #slot = -1;
  #sockaddr: Uint8Array = new Uint8Array(0);
  #congestedUntil = 0;
  #closed = false;
  readonly #totals: FastTotals;

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
    this.#srtp = new SrtpContext(udp.loop.lib, profile, keys.localKey, keys.localSalt);
    this.#video = new FastStream(video);
    this.#audio = audio && audio.dtlsTransport === video.dtlsTransport
      ? new FastStream(audio)
      : undefined;
    if (audio && !this.#audio) {
      this.#srtp.destroy();
      throw new FastPathUnavailable("audio and video are not bundled on one transport");
    }
    if (!this.#route()) {
      this.#srtp.destroy();
      throw new FastPathUnavailable("the nominated ICE pair is not on a native socket");
    }
    for (const s of [this.#video, this.#audio]) {
      if (!s) continue;
      // Sender reports describe what this path sent: werift reads these fields.
      Object.defineProperty(s.sender, "ntpTimestamp", {
        configurable: true,
        get: () => ntpAt(s.lastSentAt || performance.now()),
        set: () => {},
      });
      void s.sender.runRtcp();
    }
  }

  /** Follows werift's nominated pair (it changes on an ICE restart). */
  #route(): boolean {
    const pair = this.#dtls.iceTransport.connection.nominated;
    if (pair === this.#pair) return this.#slot >= 0;
    this.#pair = pair;
    const transport = pair?.protocol.transport;
    if (!pair || !(transport instanceof NativeUdpTransport) || transport.closed) {
      this.#slot = -1;
      return false;
    }
    this.#slot = transport.slot;
    this.#sockaddr = transport.sockaddr(pair.remoteAddr[0], pair.remoteAddr[1]);
    return true;
  }

  /** Whether the viewer is behind (its socket buffer was full a moment ago). */
  get congested(): boolean {
    return this.#congestedUntil > performance.now();
  }

  sendVideo(packet: SharedRtp): void {
    this.#send(this.#video, packet, true);
  }

  sendAudio(packet: SharedRtp): void {
    if (this.#audio) this.#send(this.#audio, packet, true);
  }

  #send(stream: FastStream, p: SharedRtp, record: boolean): void {
    if (this.#closed || !this.#route()) return;
    const n = this.#udp.loop.sendRtp(
      this.#slot,
      this.#sockaddr,
      this.#srtp.handle,
      stream.payloadType,
      p.marker,
      p.sequenceNumber,
      p.timestamp,
      stream.ssrc,
      p.payload,
    );
    if (n < 0) {
      this.#totals.dropped++;
      if (n === EAGAIN) this.#congestedUntil = performance.now() + CONGESTED_MS;
      return;
    }
    if (!record) return;
    stream.history[p.sequenceNumber % HISTORY] = p;
    const sender = stream.sender;
    sender.rtpTimestamp = p.timestamp;
    sender.packetCount = (sender.packetCount + 1) >>> 0;
    sender.octetCount += p.payload.length;
    stream.lastSentAt = performance.now();
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
      const p = stream.history[seq % HISTORY];
      if (p && p.sequenceNumber === seq) {
        this.#totals.retransmitted++;
        this.#send(stream, p, false);
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#srtp.destroy();
    this.#video.history.fill(undefined);
    this.#audio?.history.fill(undefined);
  }
}
