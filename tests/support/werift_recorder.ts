/**
 * A recording viewer: a werift peer connection in the test process that speaks
 * `/ws/<room>` signaling like a browser (recvonly H.264 video + Opus audio) and
 * keeps every RTP packet and RTCP sender report the server sends, with the
 * local arrival time of each, for tests that check what goes on the wire.
 *
 * @module
 */
import { RTCPeerConnection, type RtcpPacket, type RTCRtpTransceiver, type RtpPacket } from "werift";
import { viewerH264, viewerOpus } from "./werift_codecs.ts";
import { type Json, openSignaling, type SignalingClient } from "./signaling_client.ts";

/** One received RTP packet. */
export interface RecordedRtp {
  readonly ssrc: number;
  readonly sequenceNumber: number;
  readonly timestamp: number;
  readonly marker: boolean;
  readonly payload: Uint8Array;
  /** performance.now() when it arrived. */
  readonly arrival: number;
}

/** One received RTCP sender report (RFC 3550 §6.4.1). */
export interface SenderReport {
  readonly ssrc: number;
  /** The 64-bit NTP timestamp as sent. */
  readonly ntp: bigint;
  /** The NTP timestamp in seconds (integer part + fraction / 2^32). */
  readonly ntpSeconds: number;
  /** The RTP timestamp that corresponds to `ntp`. */
  readonly rtpTimestamp: number;
  readonly packetCount: number;
  /** performance.now() when it arrived. */
  readonly arrival: number;
}

/** What a recording viewer saw. */
export interface WeriftRecorder {
  readonly signaling: SignalingClient;
  /** Video RTP in arrival order (while recording). */
  readonly video: RecordedRtp[];
  /** Audio RTP in arrival order (while recording). */
  readonly audio: RecordedRtp[];
  /** Sender reports of every SSRC in arrival order (always recorded). */
  readonly senderReports: SenderReport[];
  /** Local UDP ports of the peer connection (for {@linkcode udpDrops}). */
  readonly ports: readonly number[];
  /** Packets of each kind received since connecting, recorded or not. */
  readonly received: { video: number; audio: number };
  /** Drops what was recorded so far and records from now on. */
  start(): void;
  /** Stops recording packets (sender reports keep coming in). */
  stop(): void;
  close(): Promise<void>;
}

/** The 64-bit NTP timestamp of an SR as seconds. */
export function ntpToSeconds(ntp: bigint): number {
  return Number(ntp >> 32n) + Number(ntp & 0xffffffffn) / 2 ** 32;
}

type IceInternals = {
  iceTransports?: {
    connection?: {
      protocols?: {
        transport?: { socket?: { address(): { port: number } } };
      }[];
    };
  }[];
};

/** UDP ports werift's ICE sockets are bound to (best effort: reaches into werift). */
function boundPorts(pc: RTCPeerConnection): number[] {
  const ports: number[] = [];
  for (const ice of (pc as unknown as IceInternals).iceTransports ?? []) {
    for (const protocol of ice.connection?.protocols ?? []) {
      try {
        const port = protocol.transport?.socket?.address().port;
        if (port) ports.push(port);
      } catch { /* not bound */ }
    }
  }
  return ports;
}

/**
 * Datagrams the kernel dropped on the given local UDP ports because their receive
 * buffer was full (the `drops` column of /proc/net/udp); undefined off Linux.
 * Deno's node:dgram reads slowly and ignores setRecvBufferSize, so a test process on
 * a loaded machine can lose packets the server did send.
 */
export async function udpDrops(
  ports: readonly number[],
): Promise<number | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile("/proc/net/udp");
  } catch {
    return undefined;
  }
  const wanted = new Set(ports);
  let drops = 0;
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 13) continue;
    const port = parseInt(cols[1].split(":")[1], 16);
    if (wanted.has(port)) drops += Number(cols[12]);
  }
  return drops;
}

/**
 * Connects to `wsUrl` (ws://…/ws/<room>) offering recvonly video and audio, and
 * waits until the peer connection is up. Recording starts at once; call
 * `start()` to drop what came before.
 */
export async function startWeriftRecorder(
  wsUrl: string,
  timeoutMs = 10_000,
): Promise<WeriftRecorder> {
  const pc = new RTCPeerConnection({
    codecs: {
      video: [
        viewerH264(),
      ],
      audio: [
        viewerOpus(),
      ],
    },
    iceUseIpv6: false,
    iceInterfaceAddresses: { udp4: "127.0.0.1" },
  });
  const video: RecordedRtp[] = [];
  const audio: RecordedRtp[] = [];
  const senderReports: SenderReport[] = [];
  const received = { video: 0, audio: 0 };
  let recording = true;

  const record = (kind: "video" | "audio", rtp: RtpPacket) => {
    received[kind]++;
    if (!recording) return;
    (kind === "video" ? video : audio).push({
      ssrc: rtp.header.ssrc,
      sequenceNumber: rtp.header.sequenceNumber,
      timestamp: rtp.header.timestamp,
      marker: rtp.header.marker,
      payload: new Uint8Array(rtp.payload),
      arrival: performance.now(),
    });
  };
  const videoTransceiver: RTCRtpTransceiver = pc.addTransceiver("video", {
    direction: "recvonly",
  });
  const audioTransceiver: RTCRtpTransceiver = pc.addTransceiver("audio", {
    direction: "recvonly",
  });
  videoTransceiver.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => record("video", rtp));
  });
  audioTransceiver.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp: RtpPacket) => record("audio", rtp));
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
    // Every RTCP packet of the bundle, before werift routes it by SSRC: a sender
    // report reaches us whichever receiver werift would hand it to.
    videoTransceiver.receiver.dtlsTransport.onRtcp.subscribe(
      (p: RtcpPacket) => {
        if (p.type !== 200) return;
        const sr = p as unknown as {
          ssrc: number;
          senderInfo: {
            ntpTimestamp: bigint;
            rtpTimestamp: number;
            packetCount: number;
          };
        };
        senderReports.push({
          ssrc: sr.ssrc >>> 0,
          ntp: sr.senderInfo.ntpTimestamp,
          ntpSeconds: ntpToSeconds(sr.senderInfo.ntpTimestamp),
          rtpTimestamp: sr.senderInfo.rtpTimestamp >>> 0,
          packetCount: sr.senderInfo.packetCount,
          arrival: performance.now(),
        });
      },
    );
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
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connected = new Promise<void>((resolve, reject) => {
      const check = (s: string) => {
        if (s === "connected") resolve();
        if (s === "failed" || s === "closed") {
          reject(new Error(`werift recorder: ${s}`));
        }
      };
      pc.connectionStateChange.subscribe(check);
      check(pc.connectionState);
      timer = setTimeout(() => {
        const dtls = videoTransceiver.receiver.dtlsTransport as unknown as {
          state?: string;
        };
        const candidates = signaling.messages.filter((m: Json) => m.type === "candidate");
        reject(
          new Error(
            `werift recorder did not connect in time: ICE ${pc.iceConnectionState}, ` +
              `DTLS ${dtls?.state}, peer ${pc.connectionState}; ` +
              `${candidates.length} candidate messages from the server`,
          ),
        );
      }, left());
    });
    await connected.finally(() => {
      clearInterval(trickle);
      clearTimeout(timer);
    });
  } catch (err) {
    signaling.close();
    await pc.close().catch(() => {});
    throw err;
  }
  return {
    signaling,
    video,
    audio,
    senderReports,
    received,
    ports: boundPorts(pc),
    start() {
      video.length = 0;
      audio.length = 0;
      recording = true;
    },
    stop() {
      recording = false;
    },
    async close() {
      recording = false;
      signaling.close();
      await pc.close().catch(() => {});
    },
  };
}
