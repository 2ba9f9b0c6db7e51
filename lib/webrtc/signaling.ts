/**
 * The WebSocket signaling protocol of `/ws/<room>` (README "WebSocket signaling"):
 * the browser offers, the server answers, candidates trickle both ways, and the
 * server tells the room's state. Messages are JSON objects with a `type`.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { isValidRoomName } from "../room/mod.ts";
import type { ViewerSession, WebRtcService } from "./service.ts";

/** Bounds of one signaling connection. */
export interface SignalingLimits {
  /** Largest message accepted, in bytes. */
  readonly maxMessageBytes: number;
  /** Most messages accepted per 10 s window. */
  readonly maxMessagesPer10s: number;
}

/** The minimal socket the protocol needs (Hono's WSContext or a WebSocket). */
export interface SignalingSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** Handles one signaling connection; feed it messages, tell it when the socket closed. */
export interface SignalingConnection {
  message(data: unknown): void;
  closed(): void;
}

/** WebSocket close codes used. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  TRY_AGAIN: 1013,
} as const;

/** Starts the protocol on an open socket for `roomName`. */
export function startSignaling(
  roomName: string,
  socket: SignalingSocket,
  service: WebRtcService,
  limits: SignalingLimits,
  log: Logger,
  /** With viewer tokens on: returns why a token is refused, undefined when it is good. */
  authorize?: (token: string | undefined) => string | undefined,
  /** The `?token=` of the request, if any. */
  queryToken?: string,
): SignalingConnection {
  let session: ViewerSession | undefined;
  let negotiated = false;
  let authTimer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let windowStart = Date.now();
  let windowCount = 0;

  const send = (msg: Record<string, unknown>) => {
    if (closed) return;
    try {
      socket.send(JSON.stringify(msg));
    } catch { /* the socket is going away */ }
  };
  const fail = (message: string, code: number, extra: Record<string, unknown> = {}) => {
    send({ type: "error", message, fatal: true, ...extra });
    if (!closed) {
      closed = true;
      clearTimeout(authTimer);
      session?.close("signaling closed");
      try {
        socket.close(code, message.slice(0, 120));
      } catch { /* already closing */ }
    }
  };
  const error = (message: string) => send({ type: "error", message, fatal: false });

  if (!isValidRoomName(roomName)) {
    fail(`invalid room name: use 1-64 characters of A-Z a-z 0-9 _ -`, CloseCode.POLICY);
    return { message() {}, closed() {} };
  }

  const begin = (): boolean => {
    const opened = service.open(roomName, {
      candidate: (candidate) => send({ type: "candidate", candidate }),
      state: (state, stream) => send({ type: "state", state, stream }),
      closed: (reason) => {
        if (!closed) fail(`peer connection ended: ${reason}`, CloseCode.NORMAL);
      },
    });
    if ("error" in opened) {
      fail(opened.error, CloseCode.TRY_AGAIN, {
        code: opened.code,
        ...(opened.retryAfterS ? { retryAfter: opened.retryAfterS } : {}),
      });
      return false;
    }
    session = opened;
    send({
      type: "config",
      room: roomName,
      iceServers: service.iceServers.map((s) => ({ ...s })),
    });
    send({
      type: "state",
      state: session.currentState(),
      stream: session.room.live ? session.room.info() : undefined,
    });
    return true;
  };

  // Viewer tokens: a good ?token= opens at once; otherwise the first message must be
  // { type: "auth", token } within 10 s.
  let awaitingAuth = false;
  if (authorize && authorize(queryToken) !== undefined) {
    if (queryToken) {
      fail(authorize(queryToken)!, CloseCode.POLICY);
      return { message() {}, closed() {} };
    }
    awaitingAuth = true;
    authTimer = setTimeout(() => fail("no viewer token within 10 s", CloseCode.POLICY), 10_000);
  } else if (!begin()) {
    return { message() {}, closed() {} };
  }

  const handle = async (msg: Record<string, unknown>) => {
    if (awaitingAuth) {
      if (msg.type !== "auth") return fail('send { type: "auth", token } first', CloseCode.POLICY);
      clearTimeout(authTimer);
      const problem = authorize!(typeof msg.token === "string" ? msg.token : undefined);
      if (problem) return fail(problem, CloseCode.POLICY);
      awaitingAuth = false;
      begin();
      return;
    }
    switch (msg.type) {
      case "offer": {
        if (typeof msg.sdp !== "string" || !msg.sdp.startsWith("v=0")) {
          return error("offer.sdp must be an SDP string starting with v=0");
        }
        if (negotiated) return error("already negotiated; open a new connection to renegotiate");
        negotiated = true;
        let sdp: string;
        try {
          sdp = await session!.answer(msg.sdp);
        } catch (err) {
          log.info("signaling {id}: offer rejected: {error}", {
            id: session!.id,
            error: (err as Error).message,
          });
          return fail(`cannot answer the offer: ${(err as Error).message}`, CloseCode.POLICY);
        }
        return send({ type: "answer", sdp });
      }
      case "candidate": {
        const c = msg.candidate;
        if (
          c !== null &&
          (typeof c !== "object" || typeof (c as { candidate?: unknown }).candidate !== "string")
        ) {
          return error("candidate must be null or an object with a candidate string");
        }
        if (!negotiated) return error("send the offer before candidates");
        try {
          await session!.addCandidate(c as { candidate: string } | null);
        } catch (err) {
          error(`bad candidate: ${(err as Error).message}`);
        }
        return;
      }
      case "ping":
        return send({ type: "pong" });
      default:
        return error(`unknown message type ${JSON.stringify(msg.type)?.slice(0, 40)}`);
    }
  };

  return {
    message(data: unknown) {
      if (closed) return;
      const now = Date.now();
      if (now - windowStart > 10_000) {
        windowStart = now;
        windowCount = 0;
      }
      if (++windowCount > limits.maxMessagesPer10s) {
        return fail("too many messages; slow down", CloseCode.POLICY);
      }
      const text = typeof data === "string" ? data : undefined;
      if (text === undefined) return fail("messages must be JSON text", CloseCode.POLICY);
      if (text.length > limits.maxMessageBytes) {
        return fail(`message over ${limits.maxMessageBytes} bytes`, CloseCode.TOO_BIG);
      }
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        return error("message is not valid JSON");
      }
      if (!msg || typeof msg !== "object" || Array.isArray(msg)) {
        return error("message must be a JSON object with a type");
      }
      handle(msg as Record<string, unknown>).catch((err) => {
        log.warn("signaling {id}: {error}", { id: session?.id, error: String(err) });
        error("internal error");
      });
    },
    closed() {
      closed = true;
      clearTimeout(authTimer);
      session?.close("signaling closed");
    },
  };
}
