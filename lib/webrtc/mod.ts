/**
 * WebRTC delivery: per-room RTP production (H.264 RFC 6184 packetizer), per-viewer
 * werift peers, WebSocket signaling.
 *
 * @module
 */
export { ViewerSession, WebRtcService } from "./service.ts";
export type { OpenRefused, SessionEvents, ViewerRoomState, WebRtcOptions } from "./service.ts";
export { Admission, mainThreadCpuSeconds, RETRY_AFTER_S } from "./admission.ts";
export type { AdmissionOptions, Refusal } from "./admission.ts";
export { CloseCode, startSignaling } from "./signaling.ts";
export type { SignalingConnection, SignalingLimits, SignalingSocket } from "./signaling.ts";
export { depacketizeH264, fuA, packetizeH264, stapA } from "./h264_packetizer.ts";
export type { H264Payload } from "./h264_packetizer.ts";
export { filterSdpCandidates } from "./transport.ts";
export type {
  IceOptions,
  IceRestartAnswer,
  IceRestartOffer,
  RTCIceCandidateLike,
  SharedRtp,
  ViewerTransport,
} from "./transport.ts";
export { RoomStream } from "./room_stream.ts";
export { Viewer } from "./viewer.ts";
export { RoomTranscode, TranscodePolicy } from "./video_transcode.ts";
export type { TranscodeMode, TranscodeState } from "./video_transcode.ts";
export { loadFanout, SrtpContext, SrtpProfile } from "./fast/ffi.ts";
export { installNativeUdp, NativeUdp } from "./fast/udp.ts";
