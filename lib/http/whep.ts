/**
 * WHEP (RFC 9725): `POST /whep/<room>` with an SDP offer → 201, the answer, a
 * session `Location` and `ETag`; `PATCH` on it trickles ICE candidates, or with
 * `If-Match: *` and new ICE credentials restarts ICE (200, the server's new
 * credentials and candidates, a new `ETag`); `DELETE` ends it. CORS is open so a
 * player on another origin can play.
 *
 * A room that is not live yet is accepted: the peer connects and plays the moment
 * the publisher starts, as the WebSocket signaling does (players need not poll).
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { isValidRoomName } from "../room/mod.ts";
import type { IceServer } from "../config.ts";
import type { ViewerSession, WebRtcService } from "../webrtc/mod.ts";
import type { Logger } from "../log.ts";
import { checkViewerToken } from "./viewer_tokens.ts";

/** Largest SDP offer or trickle fragment accepted. */
const MAX_SDP_BYTES = 64 * 1024;

/** `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>…` (RFC 8839). */
const CANDIDATE =
  /^candidate:\S{1,32} \d{1,3} (udp|tcp) \d{1,10} [0-9A-Za-z.:%_-]{1,255} \d{1,5} typ (host|srflx|prflx|relay)( .*)?$/i;

/** PATCHes of one session waiting their turn before more are refused with 429. */
const MAX_QUEUED_PATCHES = 16;

const CORS_HEADERS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
  "Access-Control-Allow-Headers": "Content-Type, Authorization, If-Match",
  "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Patch, Retry-After",
};

/** `Link` header values announcing ICE servers (RFC 9725 §4.6). */
export function iceServerLinks(servers: readonly IceServer[]): string[] {
  const quote = (s: string) => `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  return servers.map((s) => {
    let link = `<${s.urls}>; rel="ice-server"`;
    if (s.username !== undefined) {
      link += `; username=${quote(s.username)}; credential=${quote(s.credential ?? "")}` +
        `; credential-type="password"`;
    }
    return link;
  });
}

/** Candidate lines (`a=candidate:…`, `a=end-of-candidates`) of a trickle-ice-sdpfrag body. */
export function parseSdpFragment(body: string): {
  candidates: { candidate: string; sdpMid: string | null; sdpMLineIndex: number | null }[];
  ufrag?: string;
  pwd?: string;
} {
  const candidates: { candidate: string; sdpMid: string | null; sdpMLineIndex: number | null }[] =
    [];
  let mid: string | null = null;
  let mline = -1;
  let ufrag: string | undefined;
  let pwd: string | undefined;
  for (const raw of body.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("m=")) mline++;
    else if (line.startsWith("a=mid:")) mid = line.slice(6);
    else if (line.startsWith("a=ice-ufrag:")) ufrag = line.slice(12);
    else if (line.startsWith("a=ice-pwd:")) pwd = line.slice(10);
    else if (line.startsWith("a=candidate:")) {
      candidates.push({
        candidate: line.slice(2),
        sdpMid: mid,
        sdpMLineIndex: mline >= 0 ? mline : null,
      });
    }
  }
  return { candidates, ufrag, pwd };
}

interface WhepSession {
  readonly room: string;
  readonly session: ViewerSession;
  /** A new entity tag after each ICE restart. */
  etag: string;
  /** PATCHes run one at a time, in order: a restart must not interleave with a trickle. */
  queue: Promise<unknown>;
  /** PATCHes waiting in `queue` (bounded). */
  queued: number;
}

/** Mounts the WHEP routes on `app`. */
export function mountWhep(
  app: Hono,
  webrtc: WebRtcService,
  log: Logger,
  viewerTokenSecret?: string,
): void {
  const sessions = new Map<string, WhepSession>();

  const error = (
    c: Context,
    status: 400 | 401 | 404 | 405 | 412 | 413 | 415 | 422 | 429 | 503,
    message: string,
  ) => {
    for (const [k, v] of Object.entries(CORS_HEADERS)) c.header(k, v);
    return c.json({ error: message }, status);
  };
  const cors = (c: Context) => {
    for (const [k, v] of Object.entries(CORS_HEADERS)) c.header(k, v);
  };
  const readBody = async (c: Context): Promise<string | undefined> => {
    const length = Number(c.req.header("content-length") ?? "0");
    if (length > MAX_SDP_BYTES) return undefined;
    const text = await c.req.text();
    return text.length > MAX_SDP_BYTES ? undefined : text;
  };

  app.options("/whep/:room", (c) => {
    cors(c);
    c.header("Accept-Post", "application/sdp");
    return c.body(null, 204);
  });
  app.options("/whep/:room/:id", (c) => {
    cors(c);
    c.header("Accept-Patch", "application/trickle-ice-sdpfrag");
    return c.body(null, 204);
  });

  app.post("/whep/:room", async (c) => {
    const room = c.req.param("room");
    if (!isValidRoomName(room)) {
      return error(c, 400, "room names are 1-64 characters of A-Z a-z 0-9 _ -");
    }
    if (viewerTokenSecret) {
      const auth = c.req.header("authorization") ?? "";
      const token = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
      const problem = checkViewerToken(viewerTokenSecret, token, room);
      if (problem) {
        c.header("WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`);
        return error(c, 401, problem);
      }
    }
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/sdp") {
      return error(c, 415, `expected Content-Type application/sdp, got ${type || "none"}`);
    }
    const offer = await readBody(c);
    if (offer === undefined) return error(c, 413, `SDP offer over ${MAX_SDP_BYTES} bytes`);
    if (!offer.startsWith("v=0") || !/\r?\nm=video /.test(offer)) {
      return error(c, 400, "the body must be an SDP offer (v=0 …) with a video m-line");
    }
    const id = crypto.randomUUID();
    const opened = webrtc.open(room, {
      candidate: () => {}, // every server candidate is in the answer
      state: () => {},
      closed: () => sessions.delete(id),
    });
    if ("error" in opened) {
      if (opened.retryAfterS) c.header("Retry-After", String(opened.retryAfterS));
      return error(c, opened.status, opened.error);
    }
    let answer: string;
    try {
      answer = await opened.answer(offer, true);
    } catch (err) {
      opened.close("bad offer");
      return error(c, 400, `cannot answer the offer: ${(err as Error).message}`);
    }
    const etag = `"${crypto.randomUUID()}"`;
    sessions.set(id, { room, session: opened, etag, queue: Promise.resolve(), queued: 0 });
    log.debug("whep session {id} for room {room}", { id, room });
    cors(c);
    c.header("Content-Type", "application/sdp");
    c.header("Location", `/whep/${room}/${id}`);
    c.header("ETag", etag);
    c.header("Accept-Patch", "application/trickle-ice-sdpfrag");
    for (const link of iceServerLinks(webrtc.iceServers)) c.header("Link", link, { append: true });
    return c.body(answer, 201);
  });

  const find = (c: Context): WhepSession | undefined => {
    const s = sessions.get(c.req.param("id") ?? "");
    return s && s.room === c.req.param("room") ? s : undefined;
  };

  app.patch("/whep/:room/:id", async (c) => {
    const s = find(c);
    if (!s) return error(c, 404, "no such WHEP session");
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/trickle-ice-sdpfrag") {
      return error(c, 415, "expected Content-Type application/trickle-ice-sdpfrag");
    }
    const ifMatch = c.req.header("if-match");
    const body = await readBody(c);
    if (body === undefined) return error(c, 413, `fragment over ${MAX_SDP_BYTES} bytes`);
    const fragment = parseSdpFragment(body);
    if (s.queued >= MAX_QUEUED_PATCHES) return error(c, 429, "too many PATCHes in flight");
    s.queued++;
    // Judged in turn, against the state the PATCHes before this one left.
    const turn = s.queue.then(async () => {
      if (ifMatch && ifMatch !== "*" && ifMatch !== s.etag) {
        return error(c, 412, "If-Match does not match the session's ETag");
      }
      const restart = fragment.ufrag !== undefined && fragment.ufrag !== s.session.remoteUfrag;
      if (restart && ifMatch !== "*") {
        // RFC 9725 §4.3.1: new credentials without `If-Match: *` are not a restart.
        return error(
          c,
          422,
          "the fragment's ice-ufrag is not this session's; an ICE restart needs If-Match: *",
        );
      }
      if (restart && !fragment.pwd) return error(c, 400, "an ICE restart needs a=ice-pwd");
      if (restart) {
        let local;
        try {
          local = await s.session.restartIce({
            ufrag: fragment.ufrag!,
            pwd: fragment.pwd!,
            candidates: fragment.candidates,
          });
        } catch (err) {
          return error(c, 400, `cannot restart ICE: ${(err as Error).message}`);
        }
        s.etag = `"${crypto.randomUUID()}"`;
        log.debug("whep session {id}: ICE restart", { id: c.req.param("id") });
        cors(c);
        c.header("Content-Type", "application/trickle-ice-sdpfrag");
        c.header("ETag", s.etag);
        return c.body(
          `a=ice-ufrag:${local.ufrag}\r\na=ice-pwd:${local.pwd}\r\n` +
            local.candidates.map((cand) => `a=${cand}\r\n`).join("") +
            "a=end-of-candidates\r\n",
          200,
        );
      }
      const bad = fragment.candidates.find((cand) => !CANDIDATE.test(cand.candidate));
      if (bad) return error(c, 400, `bad candidate: ${bad.candidate.slice(0, 200)}`);
      // Applied in the background: werift resolves an mDNS (.local) candidate for up
      // to 10 s, and neither this answer nor a following ICE restart should wait for it.
      for (const candidate of fragment.candidates) {
        s.session.addCandidate(candidate).catch((err) =>
          log.debug("whep session {id}: candidate ignored: {reason}", {
            id: c.req.param("id"),
            reason: (err as Error).message,
          })
        );
      }
      cors(c);
      return c.body(null, 204);
    }).finally(() => s.queued--);
    s.queue = turn.catch(() => {});
    return await turn;
  });

  app.delete("/whep/:room/:id", (c) => {
    const s = find(c);
    if (!s) return error(c, 404, "no such WHEP session");
    sessions.delete(c.req.param("id"));
    s.session.close("WHEP DELETE");
    cors(c);
    return c.body(null, 200);
  });

  for (const path of ["/whep/:room", "/whep/:room/:id"]) {
    app.on(
      ["GET", "PUT", "HEAD"],
      path,
      (c) => error(c, 405, `${c.req.method} is not allowed here`),
    );
  }
}
