/**
 * The Hono app: REST API, health, and (in later stages) signaling, WHEP and the
 * demo page. Every error is JSON `{ "error": "<message>" }` with a fitting status.
 *
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { upgradeWebSocket } from "hono/deno";
import { isValidRoomName, type RoomRegistry } from "../room/mod.ts";
import { type SignalingConnection, startSignaling, type WebRtcService } from "../webrtc/mod.ts";
import type { Logger } from "../log.ts";
import type { MetricsRegistry } from "../metrics.ts";
import { webhooksApi, type WebhooksApiOptions } from "./webhooks_api.ts";
import { mountWhep } from "./whep.ts";
import { checkViewerToken } from "./viewer_tokens.ts";
import { mountWeb } from "./web.ts";

/** What the HTTP app needs from the rest of the server. */
export interface HttpContext {
  readonly rooms: RoomRegistry;
  readonly webrtc: WebRtcService;
  readonly log: Logger;
  /** The RTMP port and app, for the demo page's "what to put in OBS". */
  readonly rtmp: { readonly port: number; readonly app: string };
  /** HS256 secret of viewer tokens; absent: anyone may watch. */
  readonly viewerTokenSecret?: string;
  /** What `/metrics` exposes. */
  readonly metrics?: MetricsRegistry;
  /** Whether the server takes new work (false while it starts or stops). */
  readonly ready?: () => boolean;
  /** The webhooks admin API; absent: not mounted. */
  readonly webhooks?: WebhooksApiOptions;
}

/** Builds the app; it holds no global state, everything comes from `ctx`. */
export function createApp(ctx: HttpContext): Hono {
  const app = new Hono();

  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", (c) => {
    const ready = ctx.ready?.() ?? true;
    return c.json({ ready }, ready ? 200 : 503);
  });
  app.get("/metrics", (c) => {
    if (!ctx.metrics) return c.json({ error: "metrics are off" }, 404);
    return c.body(ctx.metrics.render(), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });

  app.get("/api/rooms", (c) => c.json({ rooms: ctx.rooms.list() }));

  app.get("/api/rooms/:room", (c) => {
    const name = c.req.param("room");
    if (!isValidRoomName(name)) {
      return c.json({ error: "room names are 1-64 characters of A-Z a-z 0-9 _ -" }, 400);
    }
    const room = ctx.rooms.get(name);
    return c.json(room ? room.snapshot() : { name, live: false, viewers: 0 });
  });

  if (ctx.webhooks) app.route("/api/webhooks", webhooksApi(ctx.webhooks));

  app.get(
    "/ws/:room",
    upgradeWebSocket((c) => {
      const room = c.req.param("room") ?? "";
      const token = c.req.query("token");
      let conn: SignalingConnection | undefined;
      return {
        onOpen: (_evt, ws) => {
          const secret = ctx.viewerTokenSecret;
          conn = startSignaling(
            room,
            ws,
            ctx.webrtc,
            {
              maxMessageBytes: 64 * 1024,
              maxMessagesPer10s: 200,
            },
            ctx.log,
            secret ? (token) => checkViewerToken(secret, token, room) : undefined,
            token,
          );
        },
        onMessage: (evt) => conn?.message(evt.data),
        onClose: () => conn?.closed(),
        onError: () => conn?.closed(),
      };
    }),
  );

  mountWhep(app, ctx.webrtc, ctx.log, ctx.viewerTokenSecret);
  mountWeb(app, { rtmpPort: ctx.rtmp.port, app: ctx.rtmp.app });

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    if (err instanceof HTTPException) return c.json({ error: err.message }, err.status);
    ctx.log.error("http {method} {path} failed: {error}", {
      method: c.req.method,
      path: c.req.path,
      error: String(err),
    });
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}
