/**
 * `--viewer-token-secret`: WHEP wants a Bearer token, the WebSocket a `?token=` or a
 * first `auth` message; the demo player passes its `?token=` on.
 */
import assert from "node:assert/strict";
import { startTestServer, waitFor } from "../support/server.ts";
import { publishLive } from "../support/publishers.ts";
import { startBrowser } from "../support/browser.ts";
import { signViewerToken } from "../../lib/http/viewer_tokens.ts";

const e2e = { sanitizeOps: false, sanitizeResources: false };
const SECRET = "viewer-secret-4f1c";

function openWs(
  url: string,
): Promise<{ ws: WebSocket; messages: unknown[]; closed: Promise<number> }> {
  const ws = new WebSocket(url);
  const messages: unknown[] = [];
  const closed = new Promise<number>((resolve) => ws.onclose = (e) => resolve(e.code));
  ws.onmessage = (e) => messages.push(JSON.parse(String(e.data)));
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve({ ws, messages, closed });
    ws.onerror = () => reject(new Error("ws failed"));
  });
}

Deno.test(
  "viewer tokens: WHEP and WebSocket refuse without a good token, play with one",
  e2e,
  async (t) => {
    const server = await startTestServer(["--viewer-token-secret", SECRET]);
    const ws = `ws://127.0.0.1:${server.httpPort}/ws/room1`;
    try {
      await t.step(
        "WHEP: 401 with WWW-Authenticate without, with a wrong or another room's token",
        async () => {
          for (
            const auth of [
              undefined,
              "Bearer nope",
              `Bearer ${signViewerToken(SECRET, "room2", 60)}`,
            ]
          ) {
            const res = await fetch(`${server.httpUrl}/whep/room1`, {
              method: "POST",
              body: "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
              headers: {
                "content-type": "application/sdp",
                ...(auth ? { authorization: auth } : {}),
              },
            });
            assert.equal(res.status, 401);
            assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
            assert.ok((await res.json()).error);
          }
        },
      );
      await t.step(
        "WebSocket: a bad ?token= closes 1008; none waits for an auth message",
        async () => {
          const bad = await openWs(`${ws}?token=nope`);
          assert.equal(await bad.closed, 1008);
          const none = await openWs(ws);
          none.ws.send(
            JSON.stringify({ type: "auth", token: signViewerToken(SECRET, "room1", 60) }),
          );
          await waitFor(
            () => none.messages.some((m) => (m as { type: string }).type === "config"),
            5000,
            "config",
          );
          none.ws.close();
          const early = await openWs(ws);
          early.ws.send(JSON.stringify({ type: "offer", sdp: "v=0" }));
          assert.equal(await early.closed, 1008);
        },
      );
      await t.step("the demo player with ?token= plays", async () => {
        const publisher = publishLive(`${server.rtmpUrl}/room1`, { seconds: 15 });
        const browser = await startBrowser();
        try {
          await waitFor(
            async () => (await server.api<{ live: boolean }>("/api/rooms/room1")).live,
            10_000,
            "live",
          );
          await browser.goto(
            "p",
            `${server.httpUrl}/watch/room1?token=${signViewerToken(SECRET, "room1", 60)}`,
          );
          await waitFor(
            async () => {
              const p = await browser.eval("p", "globalThis.sluicePlayer");
              return p?.stats?.framesDecoded > 20;
            },
            15_000,
            "the player to decode",
          );
        } finally {
          await browser.quit();
          await publisher.stop();
        }
      });
    } finally {
      assert.equal(await server.stop(), 0);
    }
    assert.doesNotMatch(server.log(), new RegExp(SECRET));
  },
);
