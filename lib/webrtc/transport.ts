/**
 * The per-viewer send path behind one small interface: one werift peer connection
 * per viewer for SDP, ICE, DTLS and RTCP, RTCP feedback surfaced as events. Media
 * goes out through the native fast path (fast/: RTP header, SRTP and sendto in C,
 * video from the send threads) once the viewer is connected, or through werift's
 * own sender when the native library is missing or the path can't be taken over
 * (a TURN relay, an unknown SRTP profile).
 *
 * @module
 */
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpSender,
  RtpHeader,
  RtpPacket,
  useFIR,
  useNACK,
  usePLI,
} from "werift";
import { Buffer } from "node:buffer";
import type { IceServer } from "../config.ts";
import { applyWeriftFixes, fixSenderReportClock } from "./werift_fixes.ts";
import { FastPathUnavailable, FastSender, type FastTotals } from "./fast/sender.ts";
import type { NativeUdp } from "./fast/udp.ts";

applyWeriftFixes();

/** An RTP packet as the room produces it, shared by every viewer. */
export interface SharedRtp {
  readonly sequenceNumber: number;
  readonly timestamp: number;
  readonly marker: boolean;
  readonly payload: Uint8Array;
}

/** ICE settings of every peer. */
export interface IceOptions {
  /** Address the server binds (`--host`); 0.0.0.0 or :: means every interface. */
  readonly host: string;
  readonly publicIps: readonly string[];
  readonly iceServers: readonly IceServer[];
  readonly udpPortMin: number;
  readonly udpPortMax: number;
}

/** Events a transport raises toward its viewer. */
export interface TransportEvents {
  onKeyframeRequest(kind: "pli" | "fir"): void;
  onState(state: "connected" | "failed" | "closed"): void;
  onCandidate(candidate: RTCIceCandidateLike | null): void;
  /** Which path the media takes once connected (and why not the fast one). */
  onSendPath?(path: "native" | "werift", reason?: string): void;
}

/** A browser-style ICE candidate. */
export interface RTCIceCandidateLike {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

/** The remote side's part of an ICE restart. */
export interface IceRestartOffer {
  readonly ufrag: string;
  readonly pwd: string;
  readonly candidates: readonly RTCIceCandidateLike[];
}

/** This side's part of an ICE restart: new credentials and every candidate. */
export interface IceRestartAnswer {
  readonly ufrag: string;
  readonly pwd: string;
  /** `candidate:…` values, already filtered by the candidate policy. */
  readonly candidates: readonly string[];
}

/** The send path of one viewer. */
export interface ViewerTransport {
  /**
   * Applies the browser's offer and returns the SDP answer; with `gather` the
   * answer waits (bounded) for candidate gathering so it carries every candidate
   * (WHEP clients may not receive trickled ones).
   */
  answer(offerSdp: string, gather?: boolean): Promise<string>;
  /** Adds a remote trickle candidate. */
  addCandidate(candidate: RTCIceCandidateLike | null): Promise<void>;
  /**
   * ICE restart (RFC 8445 §2.4): takes the remote side's new credentials (and any
   * candidates that came with them), starts a new ICE generation on the same DTLS
   * session and returns this side's new credentials and candidates. Media pauses
   * from the restart until the new pair is nominated (werift drops the old pair);
   * on a working path that is one round of checks, and the browser asks for the
   * lost packets or a keyframe.
   */
  restartIce(remote: IceRestartOffer): Promise<IceRestartAnswer>;
  /** The remote ICE username fragment of the current generation. */
  readonly remoteUfrag: string | undefined;
  /** Whether media can flow now. */
  readonly connected: boolean;
  /**
   * Sends a room frame's packets under this viewer's sequence numbers (`firstSeq`,
   * `firstSeq + 1`, …) and `timestamp`.
   */
  sendVideoFrame(packets: readonly SharedRtp[], firstSeq: number, timestamp: number): void;
  /** Sends one audio RTP packet. */
  sendAudio(packet: SharedRtp): void;
  /** Packets handed to the stack whose send has not completed. */
  readonly inFlight: number;
  close(): Promise<void>;
}

/** Longest wait for candidate gathering before a non-trickle answer goes out. */
const GATHER_TIMEOUT_MS = 3000;

const LINK_LOCAL = /^(169\.254\.|fe80:)/i;

/** H.264 entries, packetization-mode 1, in the profile-level-ids Chromium offers. */
function h264Codecs(): RTCRtpCodecParameters[] {
  return ["42e01f", "42001f", "4d001f", "640c1f", "f4001f"].map((plid) =>
    new RTCRtpCodecParameters({
      mimeType: "video/H264",
      clockRate: 90000,
      rtcpFeedback: [useNACK(), usePLI(), useFIR()],
      parameters: `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${plid}`,
    })
  );
}

function opusCodec(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "audio/opus",
    clockRate: 48000,
    channels: 2,
    parameters: "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1",
  });
}

/** Rewrites host candidates of the bound address to each public IP (1:1 NAT). */
function withPublicIps(candidate: string, publicIps: readonly string[]): string[] {
  const parts = candidate.split(" ");
  // candidate:<foundation> <component> <transport> <priority> <ip> <port> typ <type> …
  if (parts.length < 8 || parts[7] !== "host") return [candidate];
  return [
    candidate,
    ...publicIps.filter((ip) => ip !== parts[4]).map((ip) => {
      const copy = [...parts];
      copy[4] = ip;
      copy[0] = `${copy[0]}p`;
      return copy.join(" ");
    }),
  ];
}

/** Whether a local candidate may be advertised. */
function advertisable(candidate: string, host: string): boolean {
  const parts = candidate.split(" ");
  const ip = parts[4] ?? "";
  if (LINK_LOCAL.test(ip)) return false;
  if (host !== "0.0.0.0" && host !== "::" && parts[7] === "host" && ip !== host) return false;
  return true;
}

/**
 * Creates the transport of one viewer: werift for signaling and control, media on
 * the native fast path when `fast` (the installed native sockets) is given.
 */
export function createWeriftTransport(
  ice: IceOptions,
  events: TransportEvents,
  fast?: { udp: NativeUdp; totals: FastTotals },
): ViewerTransport {
  const anyHost = ice.host === "0.0.0.0" || ice.host === "::";
  const pc = new RTCPeerConnection({
    codecs: { video: h264Codecs(), audio: [opusCodec()] },
    iceServers: ice.iceServers.map((s) => ({ ...s })),
    // For a bound host, werift's own interface list is off: it lists only non-loopback
    // interfaces, binds every socket to the host anyway and labels them with the
    // other interfaces' IPs, so a second socket under a wrong label took part in ICE
    // (and won an ICE restart's nomination). One socket, named for the host itself.
    iceUseIpv4: anyHost,
    iceUseIpv6: ice.host === "::",
    iceUseLinkLocalAddress: false,
    ...(anyHost ? {} : {
      iceInterfaceAddresses: ice.host.includes(":") ? { udp6: ice.host } : { udp4: ice.host },
      iceAdditionalHostAddresses: [ice.host],
    }),
    ...(ice.udpPortMin
      ? { icePortRange: [ice.udpPortMin, ice.udpPortMax] as [number, number] }
      : {}),
  });
  let videoSender: RTCRtpSender | undefined;
  let audioSender: RTCRtpSender | undefined;
  let connected = false;
  let inFlight = 0;
  let closed = false;
  let remoteOffer: string | undefined;
  let fastSender: FastSender | undefined;

  const takeOverMedia = () => {
    if (fastSender || !videoSender) return;
    if (!fast) return events.onSendPath?.("werift", "the native send path is off");
    try {
      fastSender = new FastSender(fast.udp, videoSender, audioSender, fast.totals);
      events.onSendPath?.("native");
    } catch (err) {
      // Whatever went wrong, the viewer still plays: werift sends its media (and the
      // reason is logged as a warning).
      const why = err instanceof FastPathUnavailable
        ? err.message
        : `the native send path failed: ${(err as Error).message}`;
      events.onSendPath?.("werift", why);
    }
  };

  const waitForGathering = async () => {
    if (pc.iceGatheringState === "complete") return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let unsubscribe = () => {};
    await Promise.race([
      new Promise<void>((resolve) => {
        unsubscribe = pc.iceGatheringStateChange.subscribe((state) => {
          if (state === "complete") resolve();
        }).unSubscribe;
      }),
      new Promise<void>((resolve) => timer = setTimeout(resolve, GATHER_TIMEOUT_MS)),
    ]);
    unsubscribe();
    clearTimeout(timer);
  };

  pc.onIceCandidate.subscribe((candidate) => {
    if (!candidate) return events.onCandidate(null);
    const json = candidate.toJSON();
    if (!json.candidate || !advertisable(json.candidate, ice.host)) return;
    for (const c of withPublicIps(json.candidate, ice.publicIps)) {
      events.onCandidate({ candidate: c, sdpMid: json.sdpMid, sdpMLineIndex: json.sdpMLineIndex });
    }
  });
  pc.connectionStateChange.subscribe((state) => {
    if (state === "connected") {
      if (connected) return; // an ICE restart reconnects the same session
      takeOverMedia();
      connected = true;
      events.onState("connected");
    } else if (state === "failed") {
      connected = false;
      events.onState("failed");
    } else if (state === "closed") {
      connected = false;
      events.onState("closed");
    }
  });

  /** werift's own send path: no native library, or a viewer it could not take over. */
  const sendThroughWerift = (sender: RTCRtpSender | undefined, packet: SharedRtp) => {
    if (!sender) return;
    const rtp = new RtpPacket(
      new RtpHeader({
        sequenceNumber: packet.sequenceNumber,
        timestamp: packet.timestamp,
        marker: packet.marker,
      }),
      Buffer.from(packet.payload.buffer, packet.payload.byteOffset, packet.payload.byteLength),
    );
    inFlight++;
    sender.sendRtp(rtp).catch(() => {}).finally(() => inFlight--);
  };

  return {
    async answer(offerSdp: string, gather = false) {
      await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
      remoteOffer = offerSdp;
      for (const t of pc.getTransceivers()) {
        t.setDirection("sendonly");
        if (t.kind === "video" && !videoSender) {
          videoSender = t.sender;
          fixSenderReportClock(t.sender);
          const track = new MediaStreamTrack({ kind: "video" });
          await t.sender.replaceTrack(track);
        } else if (t.kind === "audio" && !audioSender) {
          audioSender = t.sender;
          fixSenderReportClock(t.sender);
          await t.sender.replaceTrack(new MediaStreamTrack({ kind: "audio" }));
        }
      }
      if (!videoSender) {
        throw new Error("the offer has no video m-line the server can send H.264 on");
      }
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      watchFeedback(videoSender, events, (ssrc, lost) => fastSender?.nack(ssrc, lost));
      if (gather) await waitForGathering();
      const sdp = pc.localDescription?.sdp ?? answer.sdp;
      return filterSdpCandidates(sdp, ice.host, ice.publicIps);
    },
    async addCandidate(candidate) {
      if (!candidate || !candidate.candidate) return;
      await pc.addIceCandidate({
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid ?? undefined,
        sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
      });
    },
    async restartIce(remote) {
      if (!remoteOffer) throw new Error("no offer has been answered yet");
      if (
        !/^[A-Za-z0-9+/]{4,256}$/.test(remote.ufrag) || !/^[A-Za-z0-9+/]{22,256}$/.test(remote.pwd)
      ) {
        throw new Error("ice-ufrag must be 4-256 and ice-pwd 22-256 ice-chars (RFC 8839)");
      }
      // The same offer with the new credentials and none of the old candidates:
      // werift sees changed credentials and starts a new ICE generation.
      const offer = remoteOffer.split(/\r?\n/).filter((l) =>
        !l.startsWith("a=candidate:") && l !== "a=end-of-candidates"
      ).map((l) =>
        l.startsWith("a=ice-ufrag:")
          ? `a=ice-ufrag:${remote.ufrag}`
          : l.startsWith("a=ice-pwd:")
          ? `a=ice-pwd:${remote.pwd}`
          : l
      ).join("\r\n");
      await pc.setRemoteDescription({ type: "offer", sdp: offer });
      remoteOffer = offer;
      await pc.setLocalDescription(await pc.createAnswer());
      // In the background, as trickled ones: an mDNS candidate may take werift 10 s.
      for (const c of remote.candidates) this.addCandidate(c).catch(() => {});
      // werift's answerer connects only transports whose DTLS is down; after a
      // restart DTLS is still up, so the new ICE generation is started here.
      for (const t of pc.iceTransports) {
        if (t.state !== "connected" && t.state !== "closed") {
          t.start().catch(() => events.onState("failed"));
        }
      }
      await waitForGathering();
      const sdp = filterSdpCandidates(pc.localDescription?.sdp ?? "", ice.host, ice.publicIps);
      const ufrag = /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
      const pwd = /a=ice-pwd:(\S+)/.exec(sdp)?.[1];
      if (!ufrag || !pwd) throw new Error("the new answer has no ICE credentials");
      const firstSection = sdp.split(/\r\nm=/)[1] ?? "";
      const candidates = [...firstSection.matchAll(/^a=(candidate:.+)$/gm)].map((m) => m[1]);
      return { ufrag, pwd, candidates };
    },
    get remoteUfrag() {
      return remoteOffer ? /a=ice-ufrag:(\S+)/.exec(remoteOffer)?.[1] : undefined;
    },
    get connected() {
      return connected;
    },
    get inFlight() {
      // The fast path keeps no queue of its own here: a socket buffer found full in the
      // last 200 ms counts as "all in flight".
      return fastSender?.congested ? Infinity : inFlight;
    },
    sendVideoFrame(packets, firstSeq, timestamp) {
      if (!connected || closed) return;
      if (fastSender) return fastSender.sendVideoFrame(packets, firstSeq, timestamp);
      packets.forEach((p, i) =>
        sendThroughWerift(videoSender, {
          ...p,
          sequenceNumber: (firstSeq + i) & 0xffff,
          timestamp,
        })
      );
    },
    sendAudio(packet) {
      if (!connected || closed) return;
      if (fastSender) return fastSender.sendAudio(packet);
      sendThroughWerift(audioSender, packet);
    },
    async close() {
      if (closed) return;
      closed = true;
      connected = false;
      fastSender?.close();
      await pc.close().catch(() => {});
    },
  };
}

/**
 * Raises PLI (RFC 4585) and FIR (RFC 5104) aimed at the video sender, and hands
 * generic NACKs (RFC 4585 §6.2.1) to `onNack`. Read off the DTLS transport, not
 * the sender's own events: werift's RTCP router hands payload-specific feedback to
 * whatever owns the *sender* SSRC first, so a PLI from a client that announced its
 * SSRC in the offer (werift does) went to a receiver and was lost, and a FIR
 * (media source SSRC 0 by RFC 5104; the target is in its entries) reached no one.
 */
function watchFeedback(
  sender: RTCRtpSender,
  events: TransportEvents,
  onNack: (mediaSsrc: number, lost: number[]) => void,
): void {
  sender.dtlsTransport.onRtcp.subscribe((p) => {
    if (p.type === 205) { // transport-layer feedback
      const nack = (p as unknown as {
        feedback?: { count?: number; mediaSourceSsrc?: number; lost?: number[] };
      }).feedback;
      if (nack?.count === 1 && nack.mediaSourceSsrc !== undefined && nack.lost) {
        onNack(nack.mediaSourceSsrc, nack.lost);
      }
      return;
    }
    if (p.type !== 206) return; // payload-specific feedback
    const fb = (p as unknown as {
      feedback?: { count?: number; mediaSsrc?: number; fir?: { ssrc: number }[] };
    }).feedback;
    if (fb?.count === 1 && fb.mediaSsrc === sender.ssrc) events.onKeyframeRequest("pli");
    else if (fb?.count === 4 && fb.fir?.some((e) => e.ssrc === sender.ssrc)) {
      events.onKeyframeRequest("fir");
    }
  });
}

/** Applies the candidate policy to `a=candidate` lines already in an SDP. */
export function filterSdpCandidates(
  sdp: string,
  host: string,
  publicIps: readonly string[],
): string {
  const out: string[] = [];
  for (const line of sdp.split("\r\n")) {
    if (line.startsWith("a=candidate:")) {
      const c = line.slice(2);
      if (!advertisable(c, host)) continue;
      for (const variant of withPublicIps(c, publicIps)) out.push(`a=${variant}`);
    } else out.push(line);
  }
  return out.join("\r\n");
}
