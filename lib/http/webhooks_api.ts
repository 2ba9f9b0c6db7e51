/**
 * The webhooks admin API under `/api/webhooks`, and the admin auth it sits behind:
 * `Authorization: Bearer <--admin-token>`, or, with no token configured, loopback
 * clients only. Errors are JSON `{ "error": "<message>" }`.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createHash, timingSafeEqual } from "node:crypto";
import type { Logger } from "../log.ts";
import {
  LIMITS,
  parseSubscriptionInput,
  parseSubscriptionPatch,
  ValidationError,
  WebhookConflictError,
  WebhookNotFoundError,
  type WebhookService,
} from "../webhooks/mod.ts";

/** What the webhooks API needs. */
export interface WebhooksApiOptions {
  readonly service: WebhookService;
  /** The admin token; unset: only loopback clients are answered. */
  readonly adminToken?: string;
  readonly log: Logger;
}

const ID_RE = /^(?:wh|cfg)_[A-Za-z0-9_-]{1,64}$/;

/** Whether `hostname` (an IP as Deno reports it) is a loopback address. */
export function isLoopback(hostname: string | undefined): boolean {
  if (!hostname) return false;
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "::1" || /^(?:::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The client address: `c.env` is the `Deno.ServeHandlerInfo` when the server calls
 * `app.fetch(req, info)` (also accepted: `{ info }`). Unknown means "not loopback".
 */
function remoteHostname(env: unknown): string | undefined {
  const e = env as
    | { remoteAddr?: { hostname?: string }; info?: { remoteAddr?: { hostname?: string } } }
    | undefined;
  return e?.remoteAddr?.hostname ?? e?.info?.remoteAddr?.hostname;
}

function digest(s: string): Uint8Array {
  return createHash("sha256").update(s).digest();
}

/** Admin auth middleware: Bearer token when one is configured, else loopback only. */
export function adminAuth(options: { adminToken?: string }): MiddlewareHandler {
  const token = options.adminToken;
  const expected = token === undefined ? undefined : digest(token);
  return async (c, next) => {
    if (expected) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
      if (!m || !timingSafeEqual(digest(m[1]), expected)) {
        c.header("WWW-Authenticate", 'Bearer realm="sluice-admin"');
        return c.json(
          {
            error: m ? "wrong admin token" : "admin token required (Authorization: Bearer <token>)",
          },
          401,
        );
      }
    } else if (!isLoopback(remoteHostname(c.env))) {
      return c.json(
        { error: "the admin API answers loopback clients only when no --admin-token is set" },
        403,
      );
    }
    await next();
  };
}

function readJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`body: expected JSON, ${(err as Error).message}`);
  }
}

/** The `/api/webhooks` routes, to mount with `app.route("/api/webhooks", webhooksApi(…))`. */
export function webhooksApi(options: WebhooksApiOptions): Hono {
  const { service, log } = options;
  const api = new Hono();
  if (options.adminToken === undefined) {
    log.info(
      "admin API: no --admin-token set; answering loopback clients only (behind a local proxy, set a token)",
    );
  }

  api.use("*", adminAuth(options));
  api.use(
    "*",
    bodyLimit({
      maxSize: LIMITS.maxBodyBytes,
      onError: (c) => c.json({ error: `body: expected at most ${LIMITS.maxBodyBytes} bytes` }, 413),
    }),
  );
  api.use("/:id/*", async (c, next) => {
    if (!ID_RE.test(c.req.param("id") ?? "")) {
      return c.json({ error: `no webhook ${c.req.param("id")?.slice(0, 80)}` }, 404);
    }
    await next();
  });
  api.use("/:id", async (c, next) => {
    if (!ID_RE.test(c.req.param("id") ?? "")) {
      return c.json({ error: `no webhook ${c.req.param("id")?.slice(0, 80)}` }, 404);
    }
    await next();
  });

  api.onError((err, c) => {
    if (err instanceof ValidationError) return c.json({ error: err.message }, 400);
    if (err instanceof WebhookNotFoundError) return c.json({ error: err.message }, 404);
    if (err instanceof WebhookConflictError) return c.json({ error: err.message }, 409);
    log.error("webhooks API {method} {path} failed: {error}", {
      method: c.req.method,
      path: c.req.path,
      error: String(err),
    });
    return c.json({ error: "internal error" }, 500);
  });

  api.post("/", async (c) => {
    const input = parseSubscriptionInput(readJson(await c.req.text()));
    const { subscription, secret } = service.create(input);
    log.info("webhook {id} created for {rooms}", {
      id: subscription.id,
      rooms: subscription.rooms ?? "every room",
    });
    c.header("Location", `/api/webhooks/${subscription.id}`);
    return c.json({ ...subscription, secret }, 201);
  });

  api.get("/", (c) => c.json({ webhooks: service.list() }));

  api.get("/:id", (c) => {
    const sub = service.get(c.req.param("id"));
    return sub ? c.json(sub) : c.json({ error: `no webhook ${c.req.param("id")}` }, 404);
  });

  api.patch("/:id", async (c) => {
    const patch = parseSubscriptionPatch(readJson(await c.req.text()));
    const sub = service.update(c.req.param("id"), patch);
    log.info("webhook {id} changed ({fields})", {
      id: sub.id,
      fields: Object.keys(patch).join(", "),
    });
    return c.json(sub);
  });

  api.delete("/:id", (c) => {
    const id = c.req.param("id");
    if (!service.delete(id)) return c.json({ error: `no webhook ${id}` }, 404);
    log.info("webhook {id} deleted", { id });
    return c.body(null, 204);
  });

  api.get("/:id/deliveries", (c) => {
    const raw = c.req.query("limit");
    const limit = raw === undefined ? 50 : Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      throw new ValidationError(`limit: expected an integer 1-100, got ${JSON.stringify(raw)}`);
    }
    return c.json({ deliveries: service.deliveries(c.req.param("id"), limit) });
  });

  api.post("/:id/test", async (c) => {
    const delivery = await service.ping(c.req.param("id"));
    return c.json({ delivery });
  });

  return api;
}
