/**
 * A full server refuses cleanly: with --max-viewers-total 1, a second viewer gets
 * WHEP 503 + Retry-After (or a WebSocket error with code "server-full" and close
 * 1013), the refusals are counted, and the viewer already watching loses nothing.
 */
import assert from "node:assert/strict";
import { startTestServer } from "../support/server.ts";
import { publishLive } from "../support/publishers.ts";
import { playerDecoded, startBrowser } from "../support/browser.ts";

const e2e = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "admission: beyond --max-viewers-total, 503 Retry-After and WS 1013; the watcher is untouched",
  e2e,
  async () => {
    const server = await startTestServer(["--max-viewers-total", "1"]);
    const publisher = publishLive(`${server.rtmpUrl}/full`, { seconds: 30 });
    const browser = await startBrowser();
    try {
      await browser.goto("p", `${server.httpUrl}/watch/full`);
      await browser.click("p", "#play");
      const first = (await playerDecoded(browser, "p", 30, "the first viewer to play")).stats;

      // A second viewer over WHEP: a real offer from the same browser.
      const offer: string = await browser.eval(
        "p",
        `(async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      return pc.localDescription.sdp;
    })()`,
      );
      const res = await fetch(`${server.httpUrl}/whep/full`, {
        method: "POST",
        body: offer,
        headers: { "content-type": "application/sdp" },
      });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "10");
      assert.match(res.headers.get("access-control-expose-headers") ?? "", /Retry-After/);
      assert.match((await res.json()).error, /server full: 1 of 1 viewers/);

      // … and over the WebSocket.
      const ws = new WebSocket(`ws://127.0.0.1:${server.httpPort}/ws/full`);
      const messages: { type: string; code?: string; retryAfter?: number }[] = [];
      ws.onmessage = (e) => messages.push(JSON.parse(String(e.data)));
      const code = await new Promise<number>((resolve) => ws.onclose = (e) => resolve(e.code));
      assert.equal(code, 1013);
      assert.equal(messages[0]?.type, "error");
      assert.equal(messages[0]?.code, "server-full");
      assert.equal(messages[0]?.retryAfter, 10);

      const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
      assert.match(metrics, /^sluice_viewers_refused_total\{reason="configured"\} 2$/m);
      assert.match(metrics, /^sluice_viewer_capacity 1$/m);
      assert.match(metrics, /^sluice_send_thread_load \d/m);
      assert.equal((await server.api<{ viewers: number }>("/api/rooms/full")).viewers, 1);

      // The viewer already watching goes on, losing nothing.
      const later = (await playerDecoded(
        browser,
        "p",
        first.framesDecoded + 60,
        "the first viewer to keep playing",
        10_000,
      )).stats;
      assert.equal(later.packetsLost, 0);
    } finally {
      await browser.quit();
      await publisher.stop();
      assert.equal(await server.stop(), 0);
    }
  },
);
