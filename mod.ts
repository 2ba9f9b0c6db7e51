/**
 * Sluice: an RTMP → WebRTC edge server. Embed it with {@linkcode startServer}.
 *
 * @example
 * ```ts
 * import { defaultConfig, startServer } from "./mod.ts";
 * const server = await startServer(defaultConfig({ rtmpPort: 0, httpPort: 0 }));
 * console.log(server.rtmpPort, server.httpPort);
 * await server.close();
 * ```
 *
 * @module
 */
export { startServer } from "./lib/server.ts";
export type { SluiceServer } from "./lib/server.ts";
export { ConfigError, defaultConfig, helpText, loadConfig } from "./lib/config.ts";
export type { Config, IceServer } from "./lib/config.ts";
export { setupLogging } from "./lib/log.ts";
export type { LogFormat, LogLevel } from "./lib/log.ts";
export type { RoomEvent, RoomSnapshot, StopReason, StreamInfo } from "./lib/room/mod.ts";
export type { MediaUnit } from "./lib/media.ts";
