/**
 * Rooms: one publisher, many viewers, the GOP cache, the stream's description and
 * its start/stop events.
 *
 * @module
 */
export { isValidRoomName, ROOM_NAME_RE, RoomRegistry } from "./registry.ts";
export type { PublishAttempt, PublishGrant, RoomRegistryOptions } from "./registry.ts";
export { h264ProfileName, Room } from "./room.ts";
export type {
  Publication,
  RoomEvent,
  RoomLimits,
  RoomSnapshot,
  RoomSubscriber,
  StopReason,
  StreamInfo,
} from "./room.ts";
export { PublishKeys } from "./keys.ts";
export type { KeyCheck } from "./keys.ts";
export { FrameRateMeter, RateMeter } from "./stats.ts";
