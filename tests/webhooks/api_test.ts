/**
 * The webhooks admin API on a Hono app (no network): auth by token or loopback,
 * 400s that say what is wrong, create/list/get/patch/delete, deliveries, ping,
 * config subscriptions read-only, 1,000 subscriptions.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { isLoopback, webhooksApi } from "../../lib/http/webhooks_api.ts";
import { WebhookService } from "../../lib/webhooks/mod.ts";
import { FakeClock, FakeReceiver, quietLog } from "./fakes.ts";

const LOOPBACK = { remoteAddr: { hostname: "127.0.0.1", port: 5555, transport: "tcp" } };
const REMOTE = { remoteAddr: { hostname: "203.0.113.7", port: 5555, transport: "tcp" } };
const TOKEN = "admin-token-0123456789";

function setup(adminToken?: string, configSubscriptions = false) {
  const clock = new FakeClock();
  const receiver = new FakeReceiver(clock);
  const service = WebhookService.open({
    databasePath: ":memory:",
    timeoutMs: 1000,
    log: quietLog,
    clock,
    sender: receiver.sender,
    configSubscriptions: configSubscriptions
      ? [{
        id: "cfg_ops",
        url: "http://ops.test/",
        secret: "config-secret-0123456789",
        rooms: null,
        events: ["stream.started", "stream.stopped"],
        description: "from the config",
        enabled: true,
      }]
      : undefined,
  });
  const app = new Hono();
  app.route("/api/webhooks", webhooksApi({ service, adminToken, log: quietLog }));
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    opts: { env?: unknown; token?: string; raw?: string } = {},
  ) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    const token = opts.token ?? adminToken;
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await app.request(`/api/webhooks${path}`, {
      method,
      headers,
      body: opts.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    }, opts.env ?? LOOPBACK);
    const text = await res.text();
    // deno-lint-ignore no-explicit-any
    const json: any = text ? JSON.parse(text) : undefined;
    return { status: res.status, json, headers: res.headers };
  };
  return { service, call, receiver, clock };
}

Deno.test("api: loopback addresses", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1"]) {
    assert.ok(isLoopback(h), h);
  }
  for (const h of ["10.0.0.1", "0.0.0.0", "::", "192.168.1.1", "::ffff:10.0.0.1", "", undefined]) {
    assert.ok(!isLoopback(h), String(h));
  }
});

Deno.test("api: without a token only loopback clients are answered", async () => {
  const { call, service } = setup();
  assert.equal((await call("GET", "", undefined, { env: LOOPBACK })).status, 200);
  const remote = await call("GET", "", undefined, { env: REMOTE });
  assert.equal(remote.status, 403);
  assert.match(remote.json.error, /loopback clients only/);
  // No client address known (e.g. a proxy that did not pass it): refused too.
  assert.equal((await call("GET", "", undefined, { env: {} })).status, 403);
  await service.close();
});

Deno.test("api: with a token, no token or a wrong one is 401, from anywhere", async () => {
  const { call, service } = setup(TOKEN);
  for (const env of [LOOPBACK, REMOTE]) {
    const none = await call("GET", "", undefined, { env, token: "" });
    assert.equal(none.status, 401);
    assert.match(none.json.error, /admin token required/);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    const wrong = await call("POST", "", { url: "http://x/" }, { env, token: "nope" });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.json, { error: "wrong admin token" });
    assert.equal((await call("GET", "", undefined, { env, token: TOKEN })).status, 200);
  }
  assert.equal(service.stats().subscriptions, 0, "nothing created without auth");
  await service.close();
});

Deno.test("api: create returns the secret once; get and list never do", async () => {
  const { call, service } = setup();
  const created = await call("POST", "", {
    url: "https://hooks.example.com/sluice",
    rooms: ["a"],
    description: "badge",
  });
  assert.equal(created.status, 201);
  const w = created.json;
  assert.match(w.id, /^wh_[0-9a-f]{20}$/);
  assert.match(w.secret, /^whsec_/);
  assert.equal(created.headers.get("location"), `/api/webhooks/${w.id}`);
  assert.deepEqual(
    { ...w, id: undefined, secret: undefined, createdAt: undefined, updatedAt: undefined },
    {
      id: undefined,
      secret: undefined,
      createdAt: undefined,
      updatedAt: undefined,
      url: "https://hooks.example.com/sluice",
      rooms: ["a"],
      events: ["stream.started", "stream.stopped"],
      description: "badge",
      enabled: true,
      source: "api",
      pending: 0,
    },
  );
  const got = await call("GET", `/${w.id}`);
  assert.equal(got.status, 200);
  assert.equal(got.json.secret, undefined);
  assert.equal(got.json.url, w.url);
  const list = await call("GET", "");
  assert.equal(list.json.webhooks.length, 1);
  assert.ok(!JSON.stringify(list.json).includes(w.secret));
  // A given secret is kept (and echoed that once).
  const own = await call("POST", "", { url: "http://x/", secret: "my-own-secret-0123456789" });
  assert.equal(own.json.secret, "my-own-secret-0123456789");
  await service.close();
});

Deno.test("api: invalid bodies are 400 with a message", async () => {
  const { call, service } = setup();
  const cases: [unknown, RegExp, string?][] = [
    [undefined, /body: expected JSON/, "{not json"],
    [[1], /expected a JSON object/],
    [{}, /url: required/],
    [{ url: "ftp://x/" }, /url: expected an http or https URL/],
    [{ url: "http://x/", rooms: ["no spaces"] }, /rooms: expected room names/],
    [{ url: "http://x/", events: ["stream.maybe"] }, /events: expected/],
    [{ url: "http://x/", secret: "short" }, /secret: expected/],
    [{ url: "http://x/", extra: 1 }, /unknown field "extra"/],
  ];
  for (const [body, pattern, raw] of cases) {
    const res = await call("POST", "", body, { raw });
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.json.error, pattern);
    assert.deepEqual(Object.keys(res.json), ["error"]);
  }
  const big = await call("POST", "", undefined, {
    raw: JSON.stringify({ url: "http://x/", description: "x".repeat(70_000) }),
  });
  assert.equal(big.status, 413);
  assert.match(big.json.error, /at most 65536 bytes/);
  assert.equal(service.stats().subscriptions, 0);
  await service.close();
});

Deno.test("api: patch, deliveries, ping, delete, 404s", async () => {
  const { call, service, receiver } = setup();
  const { json: w } = await call("POST", "", { url: "http://recv.test/hook" });
  const patched = await call("PATCH", `/${w.id}`, { enabled: false, rooms: ["a", "b"] });
  assert.equal(patched.status, 200);
  assert.equal(patched.json.enabled, false);
  assert.deepEqual(patched.json.rooms, ["a", "b"]);
  assert.equal(patched.json.secret, undefined);
  assert.equal((await call("PATCH", `/${w.id}`, { rooms: null })).json.rooms, null);
  assert.equal((await call("PATCH", `/${w.id}`, {})).status, 400);
  assert.equal((await call("PATCH", `/${w.id}`, { enabled: "no" })).status, 400);

  receiver.answer = () => 204;
  const ping = await call("POST", `/${w.id}/test`);
  assert.equal(ping.status, 200);
  assert.equal(ping.json.delivery.type, "ping");
  assert.equal(ping.json.delivery.status, "delivered");
  assert.equal(ping.json.delivery.responseCode, 204);
  assert.deepEqual(receiver.sent[0].body, {
    id: receiver.sent[0].eventId,
    type: "ping",
    at: receiver.sent[0].body.at,
    webhook: w.id,
  });
  receiver.answer = () => ({ error: "Connection refused" });
  const failed = await call("POST", `/${w.id}/test`);
  assert.equal(failed.json.delivery.status, "failed");
  assert.equal(failed.json.delivery.responseCode, null);
  assert.equal(failed.json.delivery.error, "Connection refused");

  const deliveries = await call("GET", `/${w.id}/deliveries`);
  assert.equal(deliveries.status, 200);
  assert.deepEqual(
    deliveries.json.deliveries.map((d: { status: string }) => d.status),
    ["failed", "delivered"],
  );
  const d = deliveries.json.deliveries[1];
  for (const k of ["eventId", "type", "at", "status", "responseCode", "durationMs", "error"]) {
    assert.ok(k in d, k);
  }
  assert.equal((await call("GET", `/${w.id}/deliveries?limit=1`)).json.deliveries.length, 1);
  assert.equal((await call("GET", `/${w.id}/deliveries?limit=0`)).status, 400);
  assert.equal((await call("GET", `/${w.id}/deliveries?limit=x`)).status, 400);

  assert.equal((await call("DELETE", `/${w.id}`)).status, 204);
  for (
    const [method, path] of [
      ["GET", `/${w.id}`],
      ["PATCH", `/${w.id}`],
      ["DELETE", `/${w.id}`],
      ["GET", `/${w.id}/deliveries`],
      ["POST", `/${w.id}/test`],
      ["GET", "/not-an-id"],
      ["GET", "/wh_%2e%2e"],
    ]
  ) {
    const res = await call(method, path, method === "PATCH" ? { enabled: true } : undefined);
    assert.equal(res.status, 404, `${method} ${path}`);
    assert.match(res.json.error, /^no webhook /);
  }
  await service.close();
});

Deno.test("api: config subscriptions are listed but not changed through the API", async () => {
  const { call, service } = setup(undefined, true);
  const list = await call("GET", "");
  assert.deepEqual(
    list.json.webhooks.map((w: { id: string; source: string }) => [w.id, w.source]),
    [
      ["cfg_ops", "config"],
    ],
  );
  assert.ok(!JSON.stringify(list.json).includes("config-secret"));
  const patch = await call("PATCH", "/cfg_ops", { enabled: false });
  assert.equal(patch.status, 409);
  assert.match(patch.json.error, /comes from the config/);
  assert.equal((await call("DELETE", "/cfg_ops")).status, 409);
  assert.equal((await call("GET", "/cfg_ops/deliveries")).status, 200);
  await service.close();
});

Deno.test("api: 1,000 subscriptions are created and listed", async () => {
  const { call, service } = setup(TOKEN);
  for (let i = 0; i < 1000; i++) {
    const res = await call("POST", "", { url: `http://hooks.test/${i}`, rooms: [`room${i % 50}`] });
    assert.equal(res.status, 201);
  }
  const started = performance.now();
  const list = await call("GET", "");
  const ms = performance.now() - started;
  assert.equal(list.status, 200);
  assert.equal(list.json.webhooks.length, 1000);
  assert.deepEqual(
    list.json.webhooks.slice(0, 3).map((w: { url: string }) => w.url),
    ["http://hooks.test/0", "http://hooks.test/1", "http://hooks.test/2"],
  );
  assert.ok(ms < 1000, `listing took ${ms} ms`);
  await service.close();
});
