/**
 * WHEP and the demo page end to end: HTTP status codes of the WHEP resource, then
 * Chromium opens `/`, sees the room appear when ffmpeg publishes, clicks it, and the
 * player (the reference WHEP client) decodes video and audio.
 */
import assert from "node:assert/strict";
import { startTestServer, waitFor } from "../support/server.ts";
import { publishLive } from "../support/publishers.ts";
import { playerDecoded, startBrowser } from "../support/browser.ts";

const e2e = { sanitizeOps: false, sanitizeResources: false };
const artifacts = new URL("../../test-artifacts/", import.meta.url).pathname;

Deno.test("whep: status codes, CORS and Link headers", e2e, async (t) => {
  const server = await startTestServer(["--ice-server", "turn://user:secret@127.0.0.1:3478"]);
  const url = `${server.httpUrl}/whep/room1`;
  try {
    await t.step("OPTIONS answers CORS and Accept-Post", async () => {
      const res = await fetch(url, { method: "OPTIONS" });
      await res.body?.cancel();
      assert.equal(res.status, 204);
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      assert.equal(res.headers.get("accept-post"), "application/sdp");
    });
    await t.step("415 for a wrong content type", async () => {
      const res = await fetch(url, {
        method: "POST",
        body: "v=0",
        headers: { "content-type": "text/plain" },
      });
      assert.equal(res.status, 415);
      assert.match((await res.json()).error, /application\/sdp/);
    });
    await t.step("400 for a body that is not SDP, and for a bad room name", async () => {
      let res = await fetch(url, {
        method: "POST",
        body: "hello",
        headers: { "content-type": "application/sdp" },
      });
      assert.equal(res.status, 400);
      assert.ok((await res.json()).error);
      res = await fetch(`${server.httpUrl}/whep/bad%20room`, {
        method: "POST",
        body: "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        headers: { "content-type": "application/sdp" },
      });
      assert.equal(res.status, 400);
      await res.body?.cancel();
    });
    await t.step(
      "413 for an oversized offer; 405 for GET; 404 for an unknown session",
      async () => {
        let res = await fetch(url, {
          method: "POST",
          body: "v=0\r\n" + "a=x\r\n".repeat(20000),
          headers: { "content-type": "application/sdp" },
        });
        assert.equal(res.status, 413);
        await res.body?.cancel();
        res = await fetch(url);
        assert.equal(res.status, 405);
        await res.body?.cancel();
        res = await fetch(`${url}/nope`, { method: "DELETE" });
        assert.equal(res.status, 404);
        await res.body?.cancel();
      },
    );
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("demo page: the room appears, a click plays it over WHEP with sound", e2e, async () => {
  await Deno.mkdir(artifacts, { recursive: true });
  // werift's own send path (--send-path werift) stays covered here; the other tests
  // run the native one.
  const server = await startTestServer([
    "--ice-server",
    "stun:127.0.0.1:3478",
    "--send-path",
    "werift",
  ]);
  const browser = await startBrowser();
  let publisher;
  try {
    await browser.goto("home", server.httpUrl + "/", { width: 1100, height: 720 });
    await browser.waitFor("home", "#empty:not([hidden])");
    const serverUrl = await browser.eval("home", "document.getElementById('server').textContent");
    assert.equal(serverUrl, `rtmp://127.0.0.1:${server.rtmpPort}/live`);
    await browser.shot("home", `${artifacts}/demo-home-empty.png`);

    publisher = publishLive(`${server.rtmpUrl}/demo-room`, { seconds: 40 });
    await browser.waitFor("home", 'a.card[data-room="demo-room"]', 20_000);
    await browser.shot("home", `${artifacts}/demo-home-live.png`);
    await browser.click("home", 'a.card[data-room="demo-room"]');
    await browser.click("home", "#play");
    await browser.click("home", "#toggle-stats");

    const first = await playerDecoded(browser, "home", 30, "the player to decode video");
    assert.equal(first.state, "live");
    assert.equal(first.stats.resolution, "640×360");
    assert.match(first.stats.codec, /H264/);
    await new Promise((r) => setTimeout(r, 2000));
    const later = await browser.eval("home", "window.sluicePlayer");
    assert.ok(later.stats.framesDecoded > first.stats.framesDecoded, "video keeps decoding");
    assert.ok(later.stats.audioSamples > first.stats.audioSamples, "audio samples keep arriving");
    assert.match(later.stats.codec, /opus/i);
    assert.equal(await browser.eval("home", "document.getElementById('video').muted"), false);
    await browser.shot("home", `${artifacts}/demo-player.png`);

    // WHEP resource: the player's session shows as a viewer; Link carries the ICE server.
    const room = await server.api<{ viewers: number }>("/api/rooms/demo-room");
    assert.equal(room.viewers, 1);
    assert.match(
      await (await fetch(`${server.httpUrl}/metrics`)).text(),
      /^sluice_viewers_by_send_path\{path="werift"\} 1$/m,
    );

    // The player's ICE restart (what it does when its path fails) keeps the session
    // and the picture.
    await browser.eval("home", "window.sluicePlayer.restartIce()");
    const restarted = (await browser.eval("home", "window.sluicePlayer")).stats.framesDecoded;
    await waitFor(
      async () =>
        (await browser.eval("home", "window.sluicePlayer")).stats.framesDecoded > restarted + 45,
      10_000,
      "video to keep decoding after the player's ICE restart",
    );
    assert.equal((await server.api<{ viewers: number }>("/api/rooms/demo-room")).viewers, 1);
  } finally {
    await publisher?.stop();
    await browser.quit();
    assert.equal(await server.stop(), 0);
  }
});
