/**
 * A raw WebSocket client of `/ws/<room>` for tests that speak (or abuse) the
 * signaling protocol directly: it records every message and the close, and waits
 * for either with a bound.
 *
 * @module
 */

// deno-lint-ignore no-explicit-any
export type Json = any;

/** How the server closed the socket. */
export interface Closed {
  code: number;
  reason: string;
}

/** An open signaling WebSocket. */
export interface SignalingClient {
  readonly ws: WebSocket;
  /** Every JSON message received so far (non-JSON ones as `{ raw }`). */
  readonly messages: Json[];
  /** Set once the socket closed. */
  readonly closedWith: Closed | undefined;
  /** Resolves when the socket closes. */
  readonly closed: Promise<Closed>;
  /** Sends a string as is, or an object as JSON. */
  send(data: string | Record<string, unknown>): void;
  /** Waits for a message matching `pred` received at index `from` or later. */
  next(
    pred: (m: Json) => boolean,
    timeoutMs?: number,
    from?: number,
  ): Promise<Json>;
  /** Waits for the close (or throws after `timeoutMs`). */
  waitClosed(timeoutMs?: number): Promise<Closed>;
  close(): void;
}

/** Opens `url` (ws://…/ws/<room>) and waits until it is open or closed. */
export async function openSignaling(
  url: string,
  timeoutMs = 5000,
): Promise<SignalingClient> {
  const ws = new WebSocket(url);
  const messages: Json[] = [];
  const waiters = new Set<() => void>();
  let closedWith: Closed | undefined;
  const closed = new Promise<Closed>((resolve) => {
    ws.onclose = (e) => {
      closedWith = { code: e.code, reason: e.reason };
      resolve(closedWith);
      for (const w of waiters) w();
    };
  });
  ws.onerror = () => {};
  ws.onmessage = (e) => {
    try {
      messages.push(JSON.parse(String(e.data)));
    } catch {
      messages.push({ raw: String(e.data) });
    }
    for (const w of waiters) w();
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${url} did not open in ${timeoutMs} ms`)),
      timeoutMs,
    );
    ws.onopen = () => {
      clearTimeout(timer);
      resolve();
    };
    closed.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });

  const wait = <T>(
    check: () => T | undefined,
    timeoutMs: number,
    what: string,
  ) =>
    new Promise<T>((resolve, reject) => {
      const test = () => {
        const v = check();
        if (v === undefined) return;
        waiters.delete(test);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => {
        waiters.delete(test);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${
              JSON.stringify(messages).slice(0, 2000)
            }, closed ${JSON.stringify(closedWith)}`,
          ),
        );
      }, timeoutMs);
      waiters.add(test);
      test();
    });

  return {
    ws,
    messages,
    get closedWith() {
      return closedWith;
    },
    closed,
    send(data) {
      ws.send(typeof data === "string" ? data : JSON.stringify(data));
    },
    next(pred, timeoutMs = 5000, from = 0) {
      return wait(
        () => messages.slice(from).find(pred),
        timeoutMs,
        "a matching message",
      );
    },
    waitClosed(timeoutMs = 5000) {
      return wait(() => closedWith, timeoutMs, "the close");
    },
    close() {
      try {
        ws.close();
      } catch { /* closed */ }
    },
  };
}
