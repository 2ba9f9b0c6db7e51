/**
 * One HTTP attempt: POST the body with its headers, bounded in time (connect,
 * response and body together) and in how much of the answer is read.
 *
 * @module
 */
import { type AttemptResult, parseRetryAfter } from "./policy.ts";

/** What to send. */
export interface OutgoingRequest {
  readonly url: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Sends one request; resolves (never rejects) with what happened. */
export type Sender = (request: OutgoingRequest, signal: AbortSignal) => Promise<AttemptResult>;

/** Bounds of the HTTP sender. */
export interface HttpSenderOptions {
  /** The whole attempt, from connect to the last byte read. */
  readonly timeoutMs: number;
  /** Bytes of the response body read (the rest is dropped unread). */
  readonly maxResponseBytes?: number;
  /** Characters of the response kept for the deliveries log. */
  readonly snippetChars?: number;
  readonly now?: () => number;
}

const decoder = new TextDecoder();

async function readCapped(body: ReadableStream<Uint8Array> | null, max: number): Promise<string> {
  if (!body) return "";
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value.subarray(0, max - size));
      size += value.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(Math.min(size, max));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return decoder.decode(all);
}

function describeError(err: unknown): string {
  const e = err as Error & { cause?: unknown };
  const cause = e.cause instanceof Error ? e.cause.message : undefined;
  const message = (cause && !e.message.includes(cause) ? `${e.message}: ${cause}` : e.message) ??
    String(err);
  return message.length > 300 ? `${message.slice(0, 297)}...` : message;
}

/** A {@linkcode Sender} over `fetch`. Redirects are not followed (a 3xx is retried). */
export function httpSender(options: HttpSenderOptions): Sender {
  const maxBytes = options.maxResponseBytes ?? 64 * 1024;
  const snippetChars = options.snippetChars ?? 256;
  const now = options.now ?? Date.now;
  return async (request, signal) => {
    const started = performance.now();
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const both = AbortSignal.any([signal, timeout]);
    try {
      const res = await fetch(request.url, {
        method: "POST",
        body: request.body,
        headers: request.headers,
        redirect: "manual",
        signal: both,
      });
      const text = await readCapped(res.body, maxBytes);
      return {
        status: res.status,
        durationMs: performance.now() - started,
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), now()),
        responseSnippet: text.slice(0, snippetChars),
      };
    } catch (err) {
      const error = timeout.aborted && !signal.aborted
        ? `timed out after ${options.timeoutMs} ms`
        : signal.aborted
        ? "aborted: shutting down"
        : describeError(err);
      return { error, durationMs: performance.now() - started };
    }
  };
}
