/**
 * Webhooks end to end: the real server process, real ffmpeg publishers and a real
 * HTTP receiver on loopback. Start/stop reach the right subscribers, signed; a receiver
 * outage and a kill -9 of Sluice lose nothing and duplicate nothing; the admin API
 * guards itself.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer, waitFor } from "../support/server.ts";
import { publishLive } from "../support/publishers.ts";
import {
  freePort,
  type ReceivedRequest,
  startReceiver,
  verifySluiceSignature,
} from "../support/receiver.ts";

const e2e = { sanitizeOps: false, sanitizeResources: false };
// Fast retries so outages in tests take seconds, not minutes.
const FAST_RETRIES = ["--webhook-retry-base", "200ms", "--webhook-retry-max", "1s"];

// deno-lint-ignore no-explicit-any
type Json = any;

async function admin(
  server: TestServer,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; json: Json }> {
  const res = await fetch(server.httpUrl + path, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token && { authorization: `Bearer ${token}` }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function subscribe(
  server: TestServer,
  body: unknown,
): Promise<{ id: string; secret: string }> {
  const res = await admin(server, "POST", "/api/webhooks", body);
  assert.equal(res.status, 201, JSON.stringify(res.json));
  return res.json;
}

const ofType = (type: string, path?: string) => (r: ReceivedRequest) =>
  r.body?.type === type && (!path || r.path === path);

/** Each event id accepted (2xx) exactly once, and the accepted types in order. */
function acceptedOnce(requests: ReceivedRequest[]): string[] {
  const ok = requests.filter((r) => r.status >= 200 && r.status < 300);
  const ids = ok.map((r) => r.eventId);
  assert.equal(new Set(ids).size, ids.length, `an event was accepted twice: ${ids.join(" ")}`);
  return ok.map((r) => `${r.body.type} ${r.body.room}${r.body.reason ? ` ${r.body.reason}` : ""}`);
}

Deno.test("webhooks e2e: start and stop reach matching subscribers, signed", e2e, async () => {
  const receiver = await startReceiver();
  const server = await startTestServer(FAST_RETRIES);
  try {
    const all = await subscribe(server, { url: receiver.url("/all") });
    const onlyA = await subscribe(server, {
      url: receiver.url("/a"),
      rooms: ["hookA"],
      description: "room A only",
    });
    await subscribe(server, { url: receiver.url("/b"), rooms: ["hookB"] });

    const publisher = publishLive(`${server.rtmpUrl}/hookA`, { seconds: 4 });
    await receiver.waitFor(
      (rs) => rs.some(ofType("stream.started", "/all")) && rs.some(ofType("stream.started", "/a")),
      15_000,
      "stream.started on /all and /a",
    );
    for (const [path, secret] of [["/all", all.secret], ["/a", onlyA.secret]]) {
      const r = receiver.requests.find(ofType("stream.started", path))!;
      assert.equal(r.body.room, "hookA");
      assert.equal(r.body.id, r.eventId);
      assert.match(r.eventId!, /^evt_[0-9a-f]{32}$/);
      assert.deepEqual(r.body.stream.codecs, ["h264", "aac"]);
      assert.equal(r.body.stream.width, 640);
      assert.equal(r.body.stream.height, 360);
      assert.equal(r.body.stream.video.codec, "h264");
      assert.equal(r.body.stream.audio.codec, "aac");
      assert.equal(r.body.reason, undefined);
      const latency = r.receivedAt - Date.parse(r.body.at);
      assert.ok(latency >= -50 && latency < 1000, `delivered ${latency} ms after the start`);
      // The signature verifies with this subscriber's secret, and only with it.
      assert.ok(verifySluiceSignature(secret, r.signature, r.raw), `signature on ${path}`);
      assert.ok(!verifySluiceSignature(secret, r.signature, r.raw.replace("hookA", "hookX")));
      assert.ok(!verifySluiceSignature(secret + "x", r.signature, r.raw));
      assert.match(r.signature!, /^t=\d+,v1=[0-9a-f]{64}$/);
      assert.equal(r.headers.get("content-type"), "application/json");
    }
    // Subscribers of a room get the same event id (one event, many deliveries).
    assert.equal(
      receiver.requests.find(ofType("stream.started", "/all"))!.eventId,
      receiver.requests.find(ofType("stream.started", "/a"))!.eventId,
    );

    assert.equal(await publisher.exited, 0, publisher.output());
    await receiver.waitFor(
      (rs) => rs.some(ofType("stream.stopped", "/all")) && rs.some(ofType("stream.stopped", "/a")),
      10_000,
      "stream.stopped on /all and /a",
    );
    for (const path of ["/all", "/a"]) {
      const stop = receiver.requests.find(ofType("stream.stopped", path))!;
      assert.equal(stop.body.reason, "unpublished");
      assert.equal(stop.body.room, "hookA");
      assert.ok(stop.body.stream.frames.video > 0);
    }

    // A killed publisher: the stop says `disconnected`.
    const killed = publishLive(`${server.rtmpUrl}/hookA`, { seconds: 60 });
    await receiver.waitFor(
      (rs) => rs.filter(ofType("stream.started", "/a")).length === 2,
      15_000,
      "the second stream.started",
    );
    killed.child.kill("SIGKILL");
    await killed.exited;
    await receiver.waitFor(
      (rs) => rs.filter(ofType("stream.stopped", "/a")).length === 2,
      10_000,
      "the second stream.stopped",
    );
    assert.equal(
      receiver.requests.filter(ofType("stream.stopped", "/a"))[1].body.reason,
      "disconnected",
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      receiver.requests.filter((r) => r.path === "/b"),
      [],
      "room B's subscriber got nothing",
    );
    for (const path of ["/all", "/a"]) {
      assert.deepEqual(acceptedOnce(receiver.requests.filter((r) => r.path === path)), [
        "stream.started hookA",
        "stream.stopped hookA unpublished",
        "stream.started hookA",
        "stream.stopped hookA disconnected",
      ]);
    }
    const log = await admin(server, "GET", `/api/webhooks/${all.id}/deliveries`);
    assert.equal(log.json.deliveries.length, 4);
    assert.ok(
      log.json.deliveries.every((d: Json) => d.status === "delivered" && d.responseCode === 200),
    );
    assert.ok(!server.log().includes(all.secret), "secrets stay out of the log");
  } finally {
    await server.stop();
    await receiver.close();
  }
});

Deno.test(
  "webhooks e2e: a receiver outage (refused, then 500s) loses and duplicates nothing",
  e2e,
  async () => {
    const port = await freePort();
    const secret = "operator-secret-0123456789";
    const server = await startTestServer([
      ...FAST_RETRIES,
      "--webhook",
      `http://127.0.0.1:${port}/hook`,
      "--webhook-secret",
      secret,
    ]);
    let receiver;
    try {
      const [sub] = (await admin(server, "GET", "/api/webhooks")).json.webhooks;
      assert.equal(sub.source, "config");
      // Start and stop while nothing listens.
      const publisher = publishLive(`${server.rtmpUrl}/outage`, { seconds: 3 });
      assert.equal(await publisher.exited, 0, publisher.output());
      await waitFor(
        async () => (await admin(server, "GET", `/api/webhooks/${sub.id}`)).json.pending === 2,
        10_000,
        "both events queued",
      );
      const refused =
        (await admin(server, "GET", `/api/webhooks/${sub.id}/deliveries`)).json.deliveries;
      assert.ok(
        refused.length > 0 &&
          refused.every((d: Json) => d.status === "retrying" && d.responseCode === null),
      );
      assert.match(refused[0].error, /refused|connect/i);

      // The receiver comes back failing with 500s: only the start is tried, the stop waits.
      receiver = await startReceiver({ port, respond: () => 500 });
      await receiver.waitFor((rs) => rs.length >= 3, 15_000, "three 500s");
      assert.ok(
        receiver.requests.every(ofType("stream.started")),
        "the stop waits behind the start",
      );
      assert.equal(new Set(receiver.requests.map((r) => r.eventId)).size, 1);

      receiver.respond = () => 200;
      await receiver.waitFor((rs) => rs.some(ofType("stream.stopped")), 15_000, "the stop");
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(acceptedOnce(receiver.requests), [
        "stream.started outage",
        "stream.stopped outage unpublished",
      ]);
      const firstStop = receiver.requests.findIndex(ofType("stream.stopped"));
      assert.ok(receiver.requests.slice(firstStop).every(ofType("stream.stopped")));
      for (const r of receiver.requests) {
        assert.ok(
          verifySluiceSignature(secret, r.signature, r.raw),
        );
      }
      assert.equal((await admin(server, "GET", `/api/webhooks/${sub.id}`)).json.pending, 0);
    } finally {
      await server.stop();
      await receiver?.close();
    }
  },
);

Deno.test(
  "webhooks e2e: kill -9 with deliveries pending, restart, all delivered once",
  e2e,
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "sluice-webhooks-e2e-" });
    const receiver = await startReceiver({ respond: () => 500 });
    let second: TestServer | undefined;
    try {
      const first = await startTestServer(FAST_RETRIES, { dataDir });
      const { id, secret } = await subscribe(first, { url: receiver.url("/hook") });
      const publisher = publishLive(`${first.rtmpUrl}/crash`, { seconds: 3 });
      assert.equal(await publisher.exited, 0, publisher.output());
      await waitFor(
        async () => (await admin(first, "GET", `/api/webhooks/${id}`)).json.pending === 2,
        10_000,
        "both events queued",
      );
      await receiver.waitFor((rs) => rs.length >= 2, 10_000, "failed attempts");
      const failedIds = new Set(receiver.requests.map((r) => r.eventId));
      assert.equal(await first.kill(), 137);

      receiver.respond = () => 200;
      second = await startTestServer(FAST_RETRIES, { dataDir });
      await receiver.waitFor(
        (rs) => rs.some((r) => r.status === 200 && r.body.type === "stream.stopped"),
        10_000,
        "redelivery after restart",
      );
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(acceptedOnce(receiver.requests), [
        "stream.started crash",
        "stream.stopped crash unpublished",
      ]);
      // The same events (same ids) as before the crash, still signed with the subscription's secret.
      const accepted = receiver.accepted();
      assert.ok(failedIds.has(accepted[0].eventId));
      for (const r of accepted) assert.ok(verifySluiceSignature(secret, r.signature, r.raw));
      const sub = (await admin(second, "GET", `/api/webhooks/${id}`)).json;
      assert.equal(sub.pending, 0);
    } finally {
      await second?.stop();
      await receiver.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
);

Deno.test(
  "webhooks e2e: a graceful stop sends stream.stopped (shutdown) before exiting",
  e2e,
  async () => {
    const receiver = await startReceiver();
    const server = await startTestServer(FAST_RETRIES);
    try {
      await subscribe(server, { url: receiver.url("/hook"), events: ["stream.stopped"] });
      const publisher = publishLive(`${server.rtmpUrl}/goodbye`, { seconds: 60 });
      await waitFor(
        async () => (await server.api<Json>("/api/rooms/goodbye")).live,
        15_000,
        "live",
      );
      // Wait for the start announcement (the room is live before it describes itself).
      await server.waitForLog(/publish started: room goodbye/);
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(await server.stop(), 0);
      await publisher.stop();
      assert.deepEqual(acceptedOnce(receiver.requests), ["stream.stopped goodbye shutdown"]);
    } finally {
      await server.stop();
      await receiver.close();
    }
  },
);

Deno.test("webhooks e2e: admin API auth, validation and 1,000 subscriptions", e2e, async () => {
  const token = "e2e-admin-token-0123456789";
  const server = await startTestServer(["--admin-token", token]);
  try {
    const none = await admin(server, "GET", "/api/webhooks");
    assert.equal(none.status, 401);
    assert.match(none.json.error, /admin token required/);
    const wrong = await admin(server, "POST", "/api/webhooks", { url: "http://x/" }, "wrong");
    assert.deepEqual(wrong, { status: 401, json: { error: "wrong admin token" } });
    assert.equal((await admin(server, "GET", "/api/webhooks", undefined, token)).status, 200);

    const bad = await admin(server, "POST", "/api/webhooks", { url: "ftp://x/" }, token);
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /^url: expected an http or https URL/);
    const badRooms = await admin(server, "POST", "/api/webhooks", {
      url: "http://x/",
      rooms: ["a b"],
    }, token);
    assert.equal(badRooms.status, 400);
    assert.match(badRooms.json.error, /^rooms:/);

    const created = [];
    for (let i = 0; i < 1000; i += 50) {
      created.push(
        ...await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            admin(server, "POST", "/api/webhooks", {
              url: `http://127.0.0.1:9/h${i + j}`,
              enabled: false,
            }, token)),
        ),
      );
    }
    assert.ok(created.every((r) => r.status === 201));
    const list = await admin(server, "GET", "/api/webhooks", undefined, token);
    assert.equal(list.status, 200);
    assert.equal(list.json.webhooks.length, 1000);
    assert.ok(!JSON.stringify(list.json).includes("whsec_"), "no secrets in the list");
  } finally {
    await server.stop();
  }
  // With no token, a client on a non-loopback address is refused.
  const lan = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  );
  if (!lan) return;
  const open = await startTestServer(["--host", "0.0.0.0"]);
  try {
    assert.match(open.log(), /admin API: no --admin-token set; answering loopback clients only/);
    const res = await fetch(`http://${lan.address}:${open.httpPort}/api/webhooks`);
    assert.equal(res.status, 403);
    assert.match((await res.json()).error, /loopback clients only/);
    assert.equal((await admin(open, "GET", "/api/webhooks")).status, 200);
  } finally {
    await open.stop();
  }
});
