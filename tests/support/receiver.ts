/**
 * A real webhook receiver on loopback for tests: records every request (path, headers,
 * raw body), answers with whatever status the test chooses, and verifies signatures
 * the way the README tells receivers to (node:crypto, independent of lib/webhooks).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";

/** One request the receiver got. */
export interface ReceivedRequest {
  readonly path: string;
  readonly headers: Headers;
  /** The body exactly as sent. */
  readonly raw: string;
  // deno-lint-ignore no-explicit-any
  readonly body: any;
  readonly eventId: string | null;
  readonly signature: string | null;
  /** The status the receiver answered. */
  readonly status: number;
  /** `Date.now()` when it arrived. */
  readonly receivedAt: number;
}

/** How to answer a request: a status, or a promise of one (a slow receiver). */
export type Responder = (
  request: Omit<ReceivedRequest, "status">,
) => number | Promise<number>;

/** A running receiver. */
export interface Receiver {
  readonly port: number;
  /** `http://127.0.0.1:<port><path>`. */
  url(path?: string): string;
  /** Every request so far, in arrival order. */
  readonly requests: ReceivedRequest[];
  /** The requests to `path` answered with a 2xx. */
  accepted(path?: string): ReceivedRequest[];
  /** Changes how later requests are answered. */
  respond: Responder;
  /** Waits until `predicate(requests)` holds. */
  waitFor(
    predicate: (requests: ReceivedRequest[]) => boolean,
    timeoutMs?: number,
    what?: string,
  ): Promise<void>;
  /** Stops listening (later connections are refused). */
  close(): Promise<void>;
}

/** Starts a receiver on 127.0.0.1 (`port` 0: any free port). */
export function startReceiver(
  options: { port?: number; respond?: Responder } = {},
): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const waiters = new Set<() => void>();
  const abort = new AbortController();
  const receiver: Partial<Receiver> & { respond: Responder } = {
    respond: options.respond ?? (() => 200),
  };
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      signal: abort.signal,
      onListen: ({ port }) => {
        resolve(Object.assign(receiver, {
          port,
          url: (path = "/") => `http://127.0.0.1:${port}${path}`,
          requests,
          accepted: (path?: string) =>
            requests.filter((r) => r.status >= 200 && r.status < 300 && (!path || r.path === path)),
          waitFor(predicate, timeoutMs = 10_000, what = "webhook requests") {
            return new Promise<void>((ok, fail) => {
              const check = () => {
                if (!predicate(requests)) return;
                waiters.delete(check);
                clearTimeout(timer);
                ok();
              };
              const timer = setTimeout(() => {
                waiters.delete(check);
                const seen = requests.map((r) =>
                  `${r.path} ${r.body?.type} ${r.body?.room ?? ""} → ${r.status}`
                );
                fail(
                  new Error(
                    `timed out after ${timeoutMs} ms waiting for ${what}; got:\n${seen.join("\n")}`,
                  ),
                );
              }, timeoutMs);
              waiters.add(check);
              check();
            });
          },
          async close() {
            abort.abort();
            await server.finished;
          },
        } as Omit<Receiver, "respond">) as Receiver);
      },
    }, async (req) => {
      const raw = await req.text();
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      const seen = {
        path: new URL(req.url).pathname,
        headers: req.headers,
        raw,
        body,
        eventId: req.headers.get("sluice-event-id"),
        signature: req.headers.get("sluice-signature"),
        receivedAt: Date.now(),
      };
      const status = await receiver.respond(seen);
      requests.push({ ...seen, status });
      for (const w of waiters) w();
      return Response.json({ ok: status < 300 }, { status });
    });
  });
}

/**
 * Verifies `Sluice-Signature` as the README shows a receiver doing it: parse `t` and
 * the `v1` values, refuse a `t` more than `toleranceSeconds` away, recompute the
 * HMAC-SHA256 of `"<t>.<raw body>"` with the secret and compare in constant time.
 */
export function verifySluiceSignature(
  secret: string,
  header: string | null,
  rawBody: string,
  toleranceSeconds = 300,
): boolean {
  if (!header) return false;
  const parts = header.split(",").map((p) => p.trim().split("="));
  const t = parts.find(([k]) => k === "t")?.[1];
  const signatures = parts.filter(([k]) => k === "v1").map(([, v]) => v);
  if (!t || !/^\d+$/.test(t) || signatures.length === 0) return false;
  if (Math.abs(Date.now() / 1000 - Number(t)) > toleranceSeconds) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${rawBody}`)
    .digest();
  return signatures.some((s) => {
    const given = Buffer.from(s, "hex");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/** A loopback port nothing listens on (connections to it are refused). */
export async function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await new Promise((r) => setTimeout(r, 10));
  return port;
}
