/**
 * Wires the stages together: RTMP ingest → rooms → (WebRTC) and the HTTP app.
 *
 * @module
 */
import { type Config, ConfigError } from "./config.ts";
import { logger } from "./log.ts";
import { PublishKeys, RoomRegistry } from "./room/mod.ts";
import { startRtmpServer } from "./rtmp/mod.ts";
import { createApp } from "./http/mod.ts";
import {
  Admission,
  installNativeUdp,
  loadFanout,
  type NativeUdp,
  TranscodePolicy,
  WebRtcService,
} from "./webrtc/mod.ts";
import { openWebhooks } from "./webhooks/mod.ts";
import { Counter, Gauge, Histogram, MetricsRegistry, startEventLoopLag } from "./metrics.ts";

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
  // The GOP a new viewer starts from, cached once as media units and once as RTP.
  const maxGopBytes = Math.min(64 * 1024 * 1024, 4 * config.maxMessageSize);
  const rooms = new RoomRegistry({
    maxRooms: config.maxRooms,
    maxViewers: config.maxViewersPerRoom,
    maxGopBytes,
    keys,
    log: logger("room"),
  });

  const metrics = new MetricsRegistry();
  const deliveries = metrics.add(
    new Counter("sluice_webhook_deliveries_total", "Webhook delivery attempts by outcome"),
  );
  const audioTime = metrics.add(
    new Histogram(
      "sluice_audio_transcode_seconds",
      "AAC → Opus time per access unit, in the audio worker",
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025],
    ),
  );
  const fanoutTime = metrics.add(
    new Histogram(
      "sluice_fanout_seconds",
      "Video frame in (RTMP message to the room) → its last RTP packet handed to every viewer",
      [
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.002,
        0.003,
        0.005,
        0.0075,
        0.01,
        0.015,
        0.02,
        0.03,
        0.05,
        0.1,
      ],
    ),
  );
  const audioCorrupt = metrics.add(
    new Counter("sluice_audio_corrupt_frames_total", "AAC frames replaced by silence"),
  );
  const audioDropped = metrics.add(
    new Counter("sluice_audio_dropped_frames_total", "AAC frames dropped: the worker fell behind"),
  );
  const lag = metrics.add(
    new Gauge("sluice_event_loop_lag_seconds", "Worst timer lateness over the last second"),
  );
  const stopLag = startEventLoopLag(lag);

  // Before RTMP accepts anyone, so no start or stop goes unqueued.
  const webhooks = await openWebhooks(
    config,
    logger("webhooks"),
    (outcome) => deliveries.inc({ outcome }),
  );
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

  const transcodePolicy = new TranscodePolicy({
    mode: config.videoTranscode,
    maxConcurrent: config.maxTranscodes,
    maxHeight: config.transcodeMaxHeight,
    engine: config.transcodeEngine,
    wasmMaxHeight: config.transcodeWasmMaxHeight,
  }, logger("transcode"));
  let fast: NativeUdp | undefined;
  if (config.sendPath !== "werift") {
    const lib = loadFanout();
    if (!(lib instanceof Error)) {
      fast = installNativeUdp(lib);
      const lanes = config.sendThreads ||
        Math.min(16, Math.max(1, navigator.hardwareConcurrency || 1));
      try {
        fast.startPool(lanes);
        fast.onFanoutLatency = (seconds) => fanoutTime.observe(seconds);
      } catch (error) {
        // The native path still works, sending from the main thread.
        log.warn("no native send threads: {reason}", { reason: (error as Error).message });
      }
    } else if (config.sendPath === "native") {
      throw new ConfigError(`--send-path native: ${lib.message}`);
    } else {
      log.warn("media goes through werift's slower send path: {reason}", { reason: lib.message });
    }
  }
  const admission = new Admission(
    { maxViewers: config.maxViewersTotal, maxLoad: config.maxSendLoad / 100 },
    undefined,
    fast?.pool && (() => fast.pool!.stats().laneCpuSeconds),
  );
  admission.start();
  const refused = metrics.add(
    new Counter("sluice_viewers_refused_total", "Viewers refused, by reason"),
  );
  const webrtc = new WebRtcService(rooms, {
    fast,
    admission,
    refused: (reason) => refused.inc({ reason }),
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
    reconnectGraceMs: config.reconnectGraceMs,
    transcode: transcodePolicy,
    audioStats: {
      corrupt: () => audioCorrupt.inc(),
      dropped: (n) => audioDropped.inc({}, n),
      transcoded: (micros) => audioTime.observe(micros / 1e6),
      fannedOut: (seconds) => fanoutTime.observe(seconds),
    },
  }, logger("webrtc"));

  const perRoom = <T>(f: (room: NonNullable<ReturnType<typeof rooms.get>>) => T) =>
    function* (): Iterable<[Record<string, string>, number]> {
      for (const snap of rooms.list()) {
        const room = rooms.get(snap.name);
        if (room) yield [{ room: snap.name }, Number(f(room))];
      }
    };
  metrics.add(
    new Gauge("sluice_video_transcodes", "Rooms whose video is transcoded now", function* () {
      yield [{}, transcodePolicy.active];
    }),
  );
  metrics.add(
    new Gauge("sluice_rooms_live", "Rooms with a publisher", function* () {
      yield [{}, rooms.liveCount];
    }),
  );
  metrics.add(
    new Gauge("sluice_rtmp_connections", "Open RTMP connections", function* () {
      yield [{}, rtmp.connections];
    }),
  );
  metrics.add(new Gauge("sluice_viewers", "Viewers by room", perRoom((r) => r.viewers)));
  metrics.add(
    new Gauge(
      "sluice_send_thread_load",
      "Share of one core the busiest send thread (main or native) was busy lately",
      function* () {
        yield [{}, admission.load];
      },
    ),
  );
  metrics.add(
    new Gauge(
      "sluice_viewer_capacity",
      "Viewers the server can hold: --max-viewers-total, or measured from the send load",
      function* () {
        const capacity = admission.capacity(webrtc.sessions);
        if (capacity !== undefined) yield [{}, capacity];
      },
    ),
  );
  metrics.add(
    new Gauge("sluice_viewers_by_send_path", "Connected viewers by media send path", function* () {
      const paths = webrtc.viewersByPath();
      yield [{ path: "native" }, paths.native];
      yield [{ path: "werift" }, paths.werift];
    }),
  );
  metrics.add(
    new Gauge(
      "sluice_native_send_dropped_packets",
      "Packets the kernel refused on the native send path (full socket buffer)",
      function* () {
        yield [{}, webrtc.fastTotals.dropped + (fast?.pool?.stats().packetsDropped ?? 0)];
      },
    ),
  );
  metrics.add(
    new Gauge(
      "sluice_native_udp_send_errors",
      "werift's own datagrams (STUN, DTLS, RTCP) the native sockets failed to send",
      function* () {
        yield [{}, fast?.sendErrors ?? 0];
      },
    ),
  );
  metrics.add(
    new Gauge(
      "sluice_native_udp_datagrams_in",
      "Datagrams read from the native sockets (STUN, DTLS, RTCP) since start",
      function* () {
        yield [{}, fast?.datagramsIn ?? 0];
      },
    ),
  );
  metrics.add(
    new Gauge(
      "sluice_nack_retransmitted_packets",
      "Packets resent for NACKs on the native send path",
      function* () {
        yield [{}, webrtc.fastTotals.retransmitted];
      },
    ),
  );
  metrics.add(
    new Gauge("sluice_room_in_bytes", "Media bytes received by room", perRoom((r) => r.bytesIn)),
  );
  metrics.add(
    new Gauge(
      "sluice_room_in_frames",
      "Frames received by room in this publish",
      function* () {
        for (const snap of rooms.list()) {
          if (!snap.frames) continue;
          yield [{ room: snap.name, kind: "video" }, snap.frames.video];
          yield [{ room: snap.name, kind: "audio" }, snap.frames.audio];
        }
      },
    ),
  );
  const outTotals = (key: "packets" | "bytes" | "framesDropped") =>
    function* (): Iterable<[Record<string, string>, number]> {
      for (const [room, t] of webrtc.totals()) if (rooms.get(room)) yield [{ room }, t[key]];
    };
  metrics.add(
    new Gauge("sluice_room_out_packets", "RTP packets sent to viewers", outTotals("packets")),
  );
  metrics.add(
    new Gauge("sluice_room_out_bytes", "RTP payload bytes sent to viewers", outTotals("bytes")),
  );
  metrics.add(
    new Gauge(
      "sluice_room_frames_dropped",
      "Video frames dropped for slow viewers",
      outTotals("framesDropped"),
    ),
  );
  metrics.add(
    new Gauge("sluice_webhook_queue", "Webhook events queued or in flight", function* () {
      const s = webhooks.stats();
      yield [{ state: "queued" }, s.queued];
      yield [{ state: "in_flight" }, s.inFlight];
    }),
  );
  let ready = false;

  const app = createApp({
    rooms,
    webrtc,
    log: logger("http"),
    rtmp: { port: rtmp.port, app: config.rtmpApp },
    viewerTokenSecret: config.viewerTokenSecret,
    metrics,
    ready: () => ready,
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
  ready = true;
  log.info("listening rtmp={rtmp} http={http}", { rtmp: rtmp.port, http: httpPort });
  if (keys.enabled) log.info("stream keys are required to publish");

  let closing: Promise<void> | undefined;
  return {
    rtmpPort: rtmp.port,
    httpPort,
    rooms,
    close() {
      closing ??= (async () => {
        ready = false;
        stopLag();
        admission.stop();
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
