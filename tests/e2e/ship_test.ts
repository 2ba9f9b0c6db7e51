/**
 * Operating Sluice: the compile task reaches the runtime download with the whole
 * module graph, the server runs from any working directory with its assets embedded,
 * and /metrics and /readyz say what it does.
 */
import assert from "node:assert/strict";
import { startTestServer, waitFor } from "../support/server.ts";
import { publishLive } from "../support/publishers.ts";

const e2e = { sanitizeOps: false, sanitizeResources: false };
const root = new URL("../../", import.meta.url).pathname;

Deno.test(
  "compile: `deno task compile` builds the whole graph (it may stop at the denort download)",
  e2e,
  async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "compile"],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (out.success) {
      const info = await Deno.stat(`${root}dist/sluice`);
      assert.ok(info.size > 10_000_000, "a self-contained binary");
      return;
    }
    // Offline machines: everything up to fetching the runtime must have succeeded.
    assert.match(text, /Compile .*main\.ts/);
    assert.match(text, /Download https:\/\/dl\.deno\.land\/release\/.*denort/, text);
    assert.doesNotMatch(text, /TS\d{4}|Module not found|Import .* not a dependency/, text);
  },
);

Deno.test(
  "ship: started from another directory, the demo page and codec load from the binary's graph",
  e2e,
  async () => {
    const elsewhere = await Deno.makeTempDir({ prefix: "sluice-cwd-" });
    const server = await startTestServer([], { cwd: elsewhere });
    let publisher;
    try {
      const home = await fetch(server.httpUrl + "/");
      assert.equal(home.status, 200);
      assert.match(await home.text(), /Sluice/);
      const js = await fetch(server.httpUrl + "/assets/whep.js");
      assert.match(js.headers.get("content-type") ?? "", /javascript/);
      assert.match(await js.text(), /class WhepClient/);
      assert.deepEqual(await server.api("/api/info"), {
        name: "sluice",
        rtmpPort: server.rtmpPort,
        app: "live",
      });
      // The audio worker and its WASM module load the same way (a viewer makes it run).
      publisher = publishLive(`${server.rtmpUrl}/elsewhere`, { seconds: 8 });
      await waitFor(
        async () => (await server.api<{ live: boolean }>("/api/rooms/elsewhere")).live,
        10_000,
        "live",
      );
      const ws = new WebSocket(`ws://127.0.0.1:${server.httpPort}/ws/elsewhere`);
      const first = await new Promise<string>((resolve, reject) => {
        ws.onmessage = (e) => resolve(String(e.data));
        ws.onerror = () => reject(new Error("ws failed"));
      });
      assert.equal(JSON.parse(first).type, "config");
      ws.close();
    } finally {
      await publisher?.stop();
      assert.equal(await server.stop(), 0);
      await Deno.remove(elsewhere, { recursive: true });
    }
    assert.doesNotMatch(server.log(), /error|NotCapable|Requires .* access/i);
  },
);

Deno.test("ship: /metrics in Prometheus text and /readyz", e2e, async () => {
  const server = await startTestServer();
  const publisher = publishLive(`${server.rtmpUrl}/metered`, { seconds: 10 });
  try {
    const ready = await fetch(server.httpUrl + "/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true });
    await waitFor(
      async () => (await server.api<{ live: boolean }>("/api/rooms/metered")).live,
      10_000,
      "live",
    );
    await new Promise((r) => setTimeout(r, 1500));
    const res = await fetch(server.httpUrl + "/metrics");
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const value = (re: RegExp) => Number(text.match(re)?.[1]);
    assert.equal(value(/^sluice_rooms_live (\d+)$/m), 1);
    assert.equal(value(/^sluice_rtmp_connections (\d+)$/m), 1);
    assert.ok(value(/^sluice_room_in_bytes\{room="metered"\} (\d+)$/m) > 10_000);
    assert.ok(value(/^sluice_room_in_frames\{kind="video",room="metered"\} (\d+)$/m) > 10);
    assert.match(text, /^# TYPE sluice_webhook_deliveries_total counter$/m);
    assert.match(text, /^# TYPE sluice_audio_transcode_seconds histogram$/m);
    assert.ok(value(/^sluice_event_loop_lag_seconds ([\d.e-]+)$/m) >= 0);
    for (const line of text.trim().split("\n")) {
      assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[\d.e+-]+)$/, line);
    }
  } finally {
    await publisher.stop();
    assert.equal(await server.stop(), 0);
  }
});
