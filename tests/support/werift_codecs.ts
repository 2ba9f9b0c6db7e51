/**
 * The codecs a test-side werift viewer offers, as a browser would: H.264
 * packetization-mode 1 with NACK/PLI/FIR feedback, and stereo Opus.
 *
 * @module
 */
import { RTCRtpCodecParameters, useFIR, useNACK, usePLI } from "werift";

/** H.264 Constrained Baseline 3.1, packetization-mode 1, NACK/PLI/FIR. */
export function viewerH264(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "video/H264",
    clockRate: 90000,
    rtcpFeedback: [useNACK(), usePLI(), useFIR()],
    parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
  });
}

/** Stereo Opus at 48 kHz with in-band FEC. */
export function viewerOpus(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "audio/opus",
    clockRate: 48000,
    channels: 2,
    parameters: "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1",
  });
}
