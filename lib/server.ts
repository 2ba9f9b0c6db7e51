/**
 * Wires the stages together: RTMP ingest → rooms → (WebRTC) and the HTTP app.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { logger } from "./log.ts";
import { PublishKeys, RoomRegistry } from "./room/mod.ts";
import { startRtmpServer } from "./rtmp/mod.ts";
import { createApp } from "./http/mod.ts";
import { WebRtcService } from "./webrtc/mod.ts";
import { openWebhooks } from "./webhooks/mod.ts";

/** How long a graceful stop waits for queued webhooks (the `shutdown` stops) to go out. */
const WEBHOOK_FLUSH_MS = 5000;

/** A running Sluice. */
export interface SluiceServer {
  /** The bound RTMP port. */
  readonly rtmpPort: number;
  /** The bound HTTP port. */
  readonly httpPort: number;
  /** The rooms, for embedding and tests. */
  readonly rooms: RoomRegistry;
  /** Stops accepting, ends every publish with `shutdown`, and closes the listeners. */
  close(): Promise<void>;
}

/** Starts RTMP and HTTP on the configured ports and logs `listening rtmp=<port> http=<port>`. */
export async function startServer(config: Config): Promise<SluiceServer> {
  const log = logger();
  const keys = new PublishKeys({ publishKey: config.publishKey, keysFile: config.keysFile });
  const rooms = new RoomRegistry({
    maxRooms: config.maxRooms,
    maxViewers: config.maxViewersPerRoom,
    maxGopBytes: Math.min(64 * 1024 * 1024, 4 * config.maxMessageSize),
    keys,
    log: logger("room"),
  });

  // Before RTMP accepts anyone, so no start or stop goes unqueued.
  const webhooks = await openWebhooks(config, logger("webhooks"));
  rooms.onEvent((event) => webhooks.handleRoomEvent(event));

  const rtmp = startRtmpServer({
    hostname: config.host,
    port: config.rtmpPort,
    app: config.rtmpApp,
    maxConnections: config.maxConnections,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxMessageSize: config.maxMessageSize,
    maxChunkSize: config.maxChunkSize,
    outChunkSize: 4096,
    windowAckSize: 2_500_000,
    maxWriteBacklog: 1024 * 1024,
    log: logger("rtmp"),
    publish: (request) => {
      const grant = rooms.publish({
        room: request.name,
        key: request.query.get("key"),
        remoteAddress: request.remoteAddress,
        encoder: request.encoder,
      });
      return grant.ok ? { ok: true, sink: grant.publication } : grant;
    },
  });

  const maxGopBytes = Math.min(64 * 1024 * 1024, 4 * config.maxMessageSize);
  const webrtc = new WebRtcService(rooms, {
    ice: {
      host: config.host,
      publicIps: config.publicIps,
      iceServers: config.iceServers,
      udpPortMin: config.udpPortMin,
      udpPortMax: config.udpPortMax,
    },
    maxGopBytes,
    connectTimeoutMs: 30_000,
    maxInFlight: 2000,
    minReplayIntervalMs: 1000,
  }, logger("webrtc"));

  const app = createApp({
    rooms,
    webrtc,
    log: logger("http"),
    rtmp: { port: rtmp.port, app: config.rtmpApp },
    webhooks: { service: webhooks, adminToken: config.adminToken, log: logger("http") },
  });
  const abort = new AbortController();
  let http: Deno.HttpServer<Deno.NetAddr>;
  try {
    http = Deno.serve({
      hostname: config.host,
      port: config.httpPort,
      signal: abort.signal,
      onListen: () => {},
      // The serve info as Hono's env, so handlers see the client address (admin API).
    }, (req, info) => app.fetch(req, info));
  } catch (err) {
    await rtmp.close();
    await webhooks.close();
    throw err;
  }
  const httpPort = http.addr.port;
  log.info("listening rtmp={rtmp} http={http}", { rtmp: rtmp.port, http: httpPort });
  if (keys.enabled) log.info("stream keys are required to publish");

  let closing: Promise<void> | undefined;
  return {
    rtmpPort: rtmp.port,
    httpPort,
    rooms,
    close() {
      closing ??= (async () => {
        await rtmp.close("shutdown");
        webrtc.closeAll("server shutting down");
        abort.abort();
        // The rooms just stopped with reason `shutdown`; give their webhooks a bounded chance.
        await Promise.all([webhooks.drain(WEBHOOK_FLUSH_MS), http.finished]);
        await webhooks.close();
      })();
      return closing;
    },
  };
}
