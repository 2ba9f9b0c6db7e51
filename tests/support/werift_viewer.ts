/**
 * A scriptable viewer: a werift peer connection in the test process that speaks
 * `/ws/<room>` signaling like a browser, records the H.264 RTP it receives and can
 * send RTCP PLI on demand (Chromium offers no API to ask for a keyframe).
 *
 * @module
 */
import { RTCPeerConnection, type RtcpPacket, type RTCRtpTransceiver, type RtpPacket } from "werift";
import { viewerH264 } from "./werift_codecs.ts";
import { Buffer } from "node:buffer";
import { type Json, openSignaling, type SignalingClient } from "./signaling_client.ts";

/** What a werift viewer saw. */
export interface WeriftViewer {
  readonly signaling: SignalingClient;
  /** Video RTP packets received. */
  readonly packets: number;
  /** performance.now() of each keyframe start (a STAP-A carrying an SPS, or an IDR start). */
  readonly keyframes: readonly number[];
  /** Sends an RTCP PLI (RFC 4585) or FIR (RFC 5104) for the video stream. */
  requestKeyframe(kind?: "pli" | "fir"): Promise<void>;
  /** Sends a generic NACK (RFC 4585 §6.2.1) for one video sequence number. */
  nack(sequenceNumber: number): Promise<void>;
  /** How often each of the last 4096 video sequence numbers arrived. */
  readonly arrivals: ReadonlyMap<number, number>;
  /** The last video sequence number received. */
  readonly lastSequenceNumber: number | undefined;
  close(): Promise<void>;
}

/** Whether an RTP payload (RFC 6184) starts a keyframe. */
export function startsKeyframe(payload: Uint8Array): boolean {
  const type = payload[0] & 0x1f;
  if (type === 5 || type === 7) return true;
  if (type === 24) {
    // STAP-A: [hdr] then (size16, nal)…
    for (let i = 1; i + 2 < payload.length;) {
      const size = (payload[i] << 8) | payload[i + 1];
      if ((payload[i + 2] & 0x1f) === 7) return true;
      i += 2 + size;
    }
    return false;
  }
  // FU-A start of an IDR slice.
  return type === 28 && (payload[1] & 0x80) !== 0 && (payload[1] & 0x1f) === 5;
}

/** Connects to `wsUrl` (ws://…/ws/<room>) and waits until the peer connection is up. */
export async function startWeriftViewer(
  wsUrl: string,
  timeoutMs = 10_000,
): Promise<WeriftViewer> {
  const pc = new RTCPeerConnection({
    codecs: {
      video: [
        viewerH264(),
      ],
    },
    iceUseIpv6: false,
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
  });
  let packets = 0;
  let firSequence = 0;
  let ssrc: number | undefined;
  let lastKeyframeTs: number | undefined;
  const keyframes: number[] = [];
  const arrivals = new Map<number, number>();
  let lastSeq: number | undefined;
  const transceiver: RTCRtpTransceiver = pc.addTransceiver("video", {
    direction: "recvonly",
  });
  transceiver.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      packets++;
      const seq = rtp.header.sequenceNumber;
      lastSeq = seq;
      arrivals.set(seq, (arrivals.get(seq) ?? 0) + 1);
      arrivals.delete((seq - 4096) & 0xffff);
      ssrc = rtp.header.ssrc;
      // A keyframe is a STAP-A then one or more IDR slices, all of one timestamp.
      if (
        startsKeyframe(rtp.payload) && rtp.header.timestamp !== lastKeyframeTs
      ) {
        lastKeyframeTs = rtp.header.timestamp;
        keyframes.push(performance.now());
      }
    });
  });

  const signaling = await openSignaling(wsUrl);
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  try {
    await signaling.next((m: Json) => m.type === "config", left());
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== "complete") {
      await new Promise<void>((resolve) => {
        const { unSubscribe } = pc.iceGatheringStateChange.subscribe((s) => {
          if (s === "complete") {
            unSubscribe();
            resolve();
          }
        });
        setTimeout(resolve, left());
      });
    }
    signaling.send({ type: "offer", sdp: pc.localDescription!.sdp });
    signaling.send({ type: "candidate", candidate: null });
    const answer = await signaling.next(
      (m: Json) => m.type === "answer",
      left(),
    );
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    // Trickled server candidates, those already here and any still to come.
    let added = 0;
    const addCandidates = async () => {
      for (; added < signaling.messages.length; added++) {
        const m = signaling.messages[added];
        if (m.type === "candidate" && m.candidate) {
          await pc.addIceCandidate(m.candidate);
        }
      }
    };
    await addCandidates();
    const trickle = setInterval(() => addCandidates().catch(() => {}), 50);
    const connected = new Promise<void>((resolve, reject) => {
      const check = (s: string) => {
        if (s === "connected") resolve();
        if (s === "failed" || s === "closed") {
          reject(new Error(`werift viewer: ${s}`));
        }
      };
      pc.connectionStateChange.subscribe(check);
      check(pc.connectionState);
      setTimeout(
        () => reject(new Error("werift viewer did not connect in time")),
        left(),
      );
    });
    await connected.finally(() => clearInterval(trickle));
  } catch (err) {
    signaling.close();
    await pc.close().catch(() => {});
    throw err;
  }
  return {
    signaling,
    get packets() {
      return packets;
    },
    keyframes,
    arrivals,
    get lastSequenceNumber() {
      return lastSeq;
    },
    async nack(sequenceNumber: number) {
      if (ssrc === undefined) throw new Error("no video received yet");
      const nack = new Uint8Array(16);
      const view = new DataView(nack.buffer);
      view.setUint8(0, 0x80 | 1); // V=2, FMT=1: generic NACK
      view.setUint8(1, 205); // transport-layer feedback
      view.setUint16(2, nack.length / 4 - 1);
      view.setUint32(4, transceiver.receiver.rtcpSsrc >>> 0);
      view.setUint32(8, ssrc);
      view.setUint16(12, sequenceNumber); // PID; BLP 0: no more
      const packet = { serialize: () => Buffer.from(nack) };
      await transceiver.receiver.dtlsTransport.sendRtcp([
        packet as unknown as RtcpPacket,
      ]);
    },
    async requestKeyframe(kind = "pli") {
      if (ssrc === undefined) throw new Error("no video received yet");
      if (kind === "pli") return await transceiver.receiver.sendRtcpPLI(ssrc);
      // werift exports no FIR type: write one. Media source SSRC 0, the target in the FCI.
      const fir = new Uint8Array(20);
      const view = new DataView(fir.buffer);
      view.setUint8(0, 0x80 | 4); // V=2, FMT=4
      view.setUint8(1, 206); // payload-specific feedback
      view.setUint16(2, fir.length / 4 - 1);
      view.setUint32(4, transceiver.receiver.rtcpSsrc >>> 0);
      view.setUint32(8, 0);
      view.setUint32(12, ssrc);
      view.setUint8(16, ++firSequence & 0xff);
      const packet = { serialize: () => Buffer.from(fir) };
      await transceiver.receiver.dtlsTransport.sendRtcp([
        packet as unknown as RtcpPacket,
      ]);
    },
    async close() {
      signaling.close();
      await pc.close().catch(() => {});
    },
  };
}
