/**
 * A WHEP player nobody here wrote plays a room: Medooze's `whip-whep` WHEPClient
 * (npm whip-whep 1.2.0, the reference client of the WHEP draft's author) in a page
 * served from another origin, in Chromium. It trickles with PATCH, restarts ICE with
 * `PATCH If-Match: *` and ends with DELETE. Then raw `fetch` calls check the
 * resource's status codes and headers, and that a DELETE really ends the peer.
 */
import assert from "node:assert/strict";
import { startTestServer, waitFor } from "../support/server.ts";
import { publishLive } from "../support/publishers.ts";
import { type Browser, playerDecoded, startBrowser } from "../support/browser.ts";

const e2e = { sanitizeOps: false, sanitizeResources: false };
const support = new URL("../support/", import.meta.url).pathname;

/** The page: the third-party client, a <video>, and a log of the WHEP requests it made. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>whip-whep player</title>
<video id="v" autoplay muted playsinline></video>
<script type="module">
import { WHEPClient } from "/whep.js";
const requests = [];
const realFetch = window.fetch.bind(window);
window.fetch = async (url, init = {}) => {
  const res = await realFetch(url, init);
  requests.push({ method: init.method ?? "GET", status: res.status,
    ifMatch: init.headers?.["If-Match"] ?? null, etag: res.headers.get("etag") });
  return res;
};
window.whep = { requests };
window.play = async (endpoint) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (e) => {
    const v = document.getElementById("v");
    if (!v.srcObject) v.srcObject = new MediaStream();
    v.srcObject.addTrack(e.track);
  };
  const client = new WHEPClient();
  await client.view(pc, endpoint);
  Object.assign(window.whep, { pc, client });
};
window.inbound = async () => {
  const out = { iceLocalUfrag: null };
  const stats = await window.whep.pc.getStats();
  for (const s of stats.values()) {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      Object.assign(out, { framesDecoded: s.framesDecoded, frameWidth: s.frameWidth,
        frameHeight: s.frameHeight, codec: stats.get(s.codecId)?.mimeType });
    }
    if (s.type === "inbound-rtp" && s.kind === "audio") out.audioSamples = s.totalSamplesReceived;
    if (s.type === "transport") {
      const pair = stats.get(s.selectedCandidatePairId);
      Object.assign(out, { iceLocalUfrag: s.iceLocalUsernameFragment ?? null,
        pairChanges: s.selectedCandidatePairChanges, pairId: s.selectedCandidatePairId,
        pairPacketsReceived: pair?.packetsReceived ?? 0 });
    }
  }
  return out;
};
</script>`;

/** Serves the page and the client library on their own origin (so CORS is exercised). */
function servePlayerPage(): { url: string; close(): Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/") return new Response(PAGE, { headers: { "content-type": "text/html" } });
    if (path === "/whep.js") {
      const js = await Deno.readTextFile(`${support}node_modules/whip-whep/whep.js`);
      return new Response(js, { headers: { "content-type": "text/javascript" } });
    }
    return new Response("not found", { status: 404 });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, close: () => server.shutdown() };
}

interface Inbound {
  framesDecoded?: number;
  frameWidth?: number;
  frameHeight?: number;
  codec?: string;
  audioSamples?: number;
  iceLocalUfrag: string | null;
  pairChanges?: number;
  pairId?: string;
  pairPacketsReceived?: number;
}

const inbound = (b: Browser): Promise<Inbound> => b.eval("p", "window.inbound()");

Deno.test(
  "whep: the whip-whep reference client plays, restarts ICE and ends with DELETE",
  e2e,
  async () => {
    const server = await startTestServer();
    const page = servePlayerPage();
    const publisher = publishLive(`${server.rtmpUrl}/third-party`, { seconds: 40 });
    const browser = await startBrowser();
    try {
      await waitFor(
        async () => (await server.api<{ live: boolean }>("/api/rooms/third-party")).live,
        15_000,
        "the room to go live",
      ).catch(() => undefined);
      await browser.goto("p", page.url);
      await browser.eval(
        "p",
        `window.play(${JSON.stringify(`${server.httpUrl}/whep/third-party`)})`,
      );

      const first = await waitFor(
        async () => {
          const s = await inbound(browser);
          return (s.framesDecoded ?? 0) > 30 && (s.audioSamples ?? 0) > 0 ? s : undefined;
        },
        15_000,
        "whip-whep's peer to decode video and audio",
      );
      assert.equal(first.frameWidth, 640);
      assert.equal(first.frameHeight, 360);
      assert.match(first.codec ?? "", /H264/);
      assert.equal((await server.api<{ viewers: number }>("/api/rooms/third-party")).viewers, 1);
      const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
      assert.match(
        metrics,
        /^sluice_viewers_by_send_path\{path="native"\} 1$/m,
        "native send path",
      );
      assert.match(metrics, /^sluice_viewers_by_send_path\{path="werift"\} 0$/m);

      // ICE restart: the client PATCHes new credentials with If-Match: *; the server
      // answers 200 with its own and a new ETag; Chromium selects a pair of the new
      // generation (a new local port) and the media arrives on that pair.
      const before = first.iceLocalUfrag;
      assert.ok(before, "Chromium reports the transport's local ufrag");
      await browser.eval("p", "window.whep.client.restart()");
      const requests = await browser.eval("p", "window.whep.requests") as {
        method: string;
        status: number;
        ifMatch: string | null;
        etag: string | null;
      }[];
      const restart = requests.find((r) => r.method === "PATCH" && r.ifMatch === "*");
      assert.ok(restart, `a restart PATCH was sent: ${JSON.stringify(requests)}`);
      assert.equal(restart.status, 200);
      assert.ok(restart.etag, "the restart answer carries a new ETag");
      const after = await waitFor(
        async () => {
          const s = await inbound(browser);
          return s.iceLocalUfrag !== before && s.pairId !== first.pairId &&
              (s.pairPacketsReceived ?? 0) > 50
            ? s
            : undefined;
        },
        10_000,
        "media on a pair of the new ICE generation",
      );
      const later = await waitFor(
        async () => {
          const s = await inbound(browser);
          return (s.framesDecoded ?? 0) > (after.framesDecoded ?? 0) + 45 ? s : undefined;
        },
        10_000,
        "video to keep decoding after the ICE restart",
      );
      assert.equal(later.pairId, after.pairId);
      assert.equal(later.pairChanges, (first.pairChanges ?? 0) + 1);
      assert.ok((later.audioSamples ?? 0) > (after.audioSamples ?? 0), "audio keeps arriving");
      const trickles = requests.filter((r) => r.method === "PATCH" && r.ifMatch !== "*");
      for (const t of trickles) assert.equal(t.status, 204, JSON.stringify(trickles));
      assert.equal((await server.api<{ viewers: number }>("/api/rooms/third-party")).viewers, 1);

      // stop(): the client closes its peer and DELETEs the resource.
      await browser.eval("p", "window.whep.client.stop()");
      await waitFor(
        async () => (await server.api<{ viewers: number }>("/api/rooms/third-party")).viewers === 0,
        5000,
        "the DELETEd session to leave the room",
      );
    } finally {
      await browser.quit();
      await publisher.stop();
      await page.close();
      assert.equal(await server.stop(), 0);
    }
  },
);

Deno.test("whep: raw PATCH and DELETE status codes; a DELETE ends the peer", e2e, async (t) => {
  const server = await startTestServer();
  const publisher = publishLive(`${server.rtmpUrl}/raw`, { seconds: 30 });
  const browser = await startBrowser();
  try {
    // A real browser offer (nobody answers the server's candidates in this test).
    // A viewer that must not notice any of what follows.
    await browser.goto("w", `${server.httpUrl}/watch/raw`);
    await browser.click("w", "#play");
    const watching = (await playerDecoded(browser, "w", 30, "the bystander to play")).stats;
    await browser.goto("o", `${server.httpUrl}/healthz`);
    const offer: string = await browser.eval(
      "o",
      `(async () => {
        const pc = new RTCPeerConnection();
        pc.addTransceiver("video", { direction: "recvonly" });
        pc.addTransceiver("audio", { direction: "recvonly" });
        await pc.setLocalDescription(await pc.createOffer());
        return pc.localDescription.sdp;
      })()`,
    );
    const ufrag = /a=ice-ufrag:(\S+)/.exec(offer)![1];
    const pwd = /a=ice-pwd:(\S+)/.exec(offer)![1];
    const res = await fetch(`${server.httpUrl}/whep/raw`, {
      method: "POST",
      body: offer,
      headers: { "content-type": "application/sdp" },
    });
    assert.equal(res.status, 201);
    const answer = await res.text();
    assert.match(answer, /^v=0\r\n/);
    assert.match(answer, /a=candidate:/);
    assert.equal(res.headers.get("content-type"), "application/sdp");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.match(res.headers.get("access-control-expose-headers") ?? "", /Location/);
    const location = res.headers.get("location")!;
    assert.match(location, /^\/whep\/raw\/[0-9a-f-]{36}$/);
    const etag = res.headers.get("etag")!;
    assert.match(etag, /^".+"$/);
    const resource = new URL(location, server.httpUrl).href;
    const patch = (body: string, headers: Record<string, string>) =>
      fetch(resource, { method: "PATCH", body, headers });
    const frag = (u: string, p: string) =>
      `a=ice-ufrag:${u}\r\na=ice-pwd:${p}\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n` +
      `a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n`;
    const sdpfrag = { "content-type": "application/trickle-ice-sdpfrag" };
    assert.equal((await server.api<{ viewers: number }>("/api/rooms/raw")).viewers, 2);

    await t.step("bad POSTs and unknown sessions: 400, 415, 413, 404", async () => {
      const post = (body: string, type: string) =>
        fetch(`${server.httpUrl}/whep/raw`, {
          method: "POST",
          body,
          headers: { "content-type": type },
        });
      for (
        const [body, type, status] of [
          ["not sdp", "application/sdp", 400],
          [offer, "text/plain", 415],
          ["v=0\r\n" + "a=x\r\n".repeat(20_000), "application/sdp", 413],
        ] as const
      ) {
        const r = await post(body, type);
        assert.equal(r.status, status);
        assert.ok((await r.json()).error);
      }
      for (const method of ["PATCH", "DELETE"]) {
        const r = await fetch(`${server.httpUrl}/whep/raw/00000000-0000-0000-0000-000000000000`, {
          method,
          body: method === "PATCH" ? "a=end-of-candidates\r\n" : undefined,
          headers: { "content-type": "application/trickle-ice-sdpfrag" },
        });
        assert.equal(r.status, 404);
        await r.body?.cancel();
      }
    });
    await t.step("OPTIONS on the resource advertises PATCH", async () => {
      const r = await fetch(resource, { method: "OPTIONS" });
      await r.body?.cancel();
      assert.equal(r.status, 204);
      assert.equal(r.headers.get("accept-patch"), "application/trickle-ice-sdpfrag");
      assert.match(r.headers.get("access-control-allow-methods") ?? "", /PATCH/);
    });
    await t.step("a trickle PATCH with the session's ETag → 204", async () => {
      const r = await patch(frag(ufrag, pwd), { ...sdpfrag, "if-match": etag });
      assert.equal(r.status, 204, await r.text());
    });
    await t.step("415 wrong type, 412 stale ETag, 422 new ufrag without If-Match: *", async () => {
      let r = await patch(frag(ufrag, pwd), { "content-type": "application/sdp" });
      assert.equal(r.status, 415);
      assert.match((await r.json()).error, /trickle-ice-sdpfrag/);
      r = await patch(frag(ufrag, pwd), { ...sdpfrag, "if-match": '"stale"' });
      assert.equal(r.status, 412);
      await r.body?.cancel();
      r = await patch(frag("zzzz", "z".repeat(24)), { ...sdpfrag, "if-match": etag });
      assert.equal(r.status, 422);
      assert.match((await r.json()).error, /If-Match/);
    });
    await t.step("413 for a huge fragment; 400 for a restart without a password", async () => {
      let r = await patch("a=x\r\n".repeat(20_000), sdpfrag);
      assert.equal(r.status, 413);
      await r.body?.cancel();
      r = await patch("a=ice-ufrag:newu\r\n", { ...sdpfrag, "if-match": "*" });
      assert.equal(r.status, 400);
      await r.body?.cancel();
    });
    await t.step("an ICE restart → 200, new credentials and candidates, a new ETag", async () => {
      const r = await patch(frag("rst1", "r".repeat(24)), { ...sdpfrag, "if-match": "*" });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("content-type"), "application/trickle-ice-sdpfrag");
      const body = await r.text();
      const newUfrag = /a=ice-ufrag:(\S+)/.exec(body)?.[1];
      assert.ok(newUfrag && !answer.includes(`a=ice-ufrag:${newUfrag}\r\n`), body);
      assert.match(body, /a=ice-pwd:\S{22,}/);
      assert.match(body, /a=candidate:/);
      const newEtag = r.headers.get("etag");
      assert.ok(newEtag && newEtag !== etag);
      // The old ETag is stale now; the new one and the new ufrag trickle fine.
      let t2 = await patch(frag("rst1", "r".repeat(24)), { ...sdpfrag, "if-match": etag });
      assert.equal(t2.status, 412);
      await t2.body?.cancel();
      t2 = await patch(frag("rst1", "r".repeat(24)), { ...sdpfrag, "if-match": newEtag });
      assert.equal(t2.status, 204);
    });
    await t.step("DELETE → 200, the peer leaves the room; again → 404", async () => {
      let r = await fetch(resource, { method: "DELETE" });
      await r.body?.cancel();
      assert.equal(r.status, 200);
      assert.equal((await server.api<{ viewers: number }>("/api/rooms/raw")).viewers, 1);
      r = await fetch(resource, { method: "DELETE" });
      await r.body?.cancel();
      assert.equal(r.status, 404);
      r = await patch(frag(ufrag, pwd), sdpfrag);
      await r.body?.cancel();
      assert.equal(r.status, 404);
    });
    await t.step(
      "the server log names no error; the bystander played on, losing nothing",
      async () => {
        assert.doesNotMatch(server.log(), /"level":"(error|fatal)"/i);
        const after = (await playerDecoded(
          browser,
          "w",
          watching.framesDecoded + 30,
          "the bystander to keep playing",
          10_000,
        )).stats;
        assert.equal(after.packetsLost, 0);
      },
    );
  } finally {
    await browser.quit();
    await publisher.stop();
    assert.equal(await server.stop(), 0);
  }
});
