/**
 * The delivery queue under a manual clock: order per (subscriber, room), blocking
 * behind a pending event, independence of rooms and subscribers, the backoff
 * schedule, final 4xx, the horizon, bounded concurrency, drain and stop.
 */
import assert from "node:assert/strict";
import type { RoomEvent, StopReason } from "../../lib/room/mod.ts";
import { type RetryPolicy, verifySignature, WebhookService } from "../../lib/webhooks/mod.ts";
import { deferred, FakeClock, FakeReceiver, quietLog, settle } from "./fakes.ts";

const STREAM = {
  video: { codec: "h264", width: 640, height: 360, fps: 30, bitrate: 1_000_000 },
  audio: { codec: "aac", sampleRate: 44100, channels: 2, bitrate: 128_000, supported: true },
  bFrames: false,
  frames: { video: 0, audio: 0, keyframes: 0 },
};

const POLICY: RetryPolicy = { baseMs: 1000, maxDelayMs: 600_000, horizonMs: 86_400_000, jitter: 0 };

function started(room: string, clock: FakeClock): RoomEvent {
  return { type: "stream.started", room, at: new Date(clock.now()), stream: STREAM };
}

function stopped(room: string, clock: FakeClock, reason: StopReason = "unpublished"): RoomEvent {
  return { type: "stream.stopped", room, at: new Date(clock.now()), stream: STREAM, reason };
}

function setup(
  options: { policy?: RetryPolicy; maxInFlight?: number; perSubscription?: number; path?: string } =
    {},
) {
  const clock = new FakeClock();
  const receiver = new FakeReceiver(clock);
  const open = () =>
    WebhookService.open({
      databasePath: options.path ?? ":memory:",
      timeoutMs: 10_000,
      retry: options.policy ?? POLICY,
      maxInFlight: options.maxInFlight,
      maxInFlightPerSubscription: options.perSubscription,
      log: quietLog,
      clock,
      random: () => 0,
      sender: receiver.sender,
    });
  return { clock, receiver, service: open(), open };
}

Deno.test("dispatcher: a start and a stop arrive in order, signed, once each", async () => {
  const { clock, receiver, service } = setup();
  const { subscription, secret } = service.create({
    url: "http://hooks.test/a",
    rooms: null,
    events: ["stream.started", "stream.stopped"],
    description: "",
    enabled: true,
  });
  service.handleRoomEvent(started("r1", clock));
  service.handleRoomEvent(stopped("r1", clock));
  await clock.advance(0);
  assert.deepEqual(receiver.sent.map((s) => s.body.type), ["stream.started", "stream.stopped"]);
  const [first] = receiver.sent;
  assert.equal(first.request.headers["sluice-webhook-id"], subscription.id);
  assert.equal(first.request.headers["sluice-delivery-attempt"], "1");
  assert.equal(first.request.headers["content-type"], "application/json");
  assert.equal(first.body.id, first.eventId);
  assert.deepEqual(
    verifySignature(secret, first.request.headers["sluice-signature"], first.request.body, {
      now: clock.now(),
    }),
    { ok: true },
  );
  assert.equal(service.stats().queued, 0);
  const log = service.deliveries(subscription.id);
  assert.deepEqual(log.map((d) => [d.type, d.status, d.responseCode]), [
    ["stream.stopped", "delivered", 200],
    ["stream.started", "delivered", 200],
  ]);
  await service.close();
});

Deno.test("dispatcher: a failing event blocks its room for that subscriber only", async () => {
  const { clock, receiver, service } = setup();
  const base = { rooms: null, events: ["stream.started", "stream.stopped"] as const };
  const down = service.create({
    ...base,
    url: "http://down.test/",
    description: "",
    enabled: true,
  });
  service.create({ ...base, url: "http://up.test/", description: "", enabled: true });
  let downUp = false;
  receiver.answer = (r) => r.request.url === "http://down.test/" && !downUp ? 503 : 200;

  service.handleRoomEvent(started("a", clock));
  service.handleRoomEvent(started("b", clock));
  service.handleRoomEvent(stopped("a", clock));
  await clock.advance(0);
  // The healthy subscriber got everything at once.
  assert.deepEqual(
    receiver.to("http://up.test/").map((s) => `${s.body.type} ${s.body.room}`),
    ["stream.started a", "stream.started b", "stream.stopped a"],
  );
  // The failing one got one attempt per room; a's stop waits behind a's start.
  assert.deepEqual(
    receiver.to("http://down.test/").map((s) => `${s.body.type} ${s.body.room}`).sort(),
    ["stream.started a", "stream.started b"],
  );
  assert.equal(service.get(down.subscription.id)!.pending, 3);

  // Backoff: 1 s, 2 s, 4 s after each failure (no jitter here).
  await clock.advance(999);
  assert.equal(receiver.to("http://down.test/").length, 2);
  await clock.advance(1);
  assert.equal(receiver.to("http://down.test/").length, 4);
  await clock.advance(2000);
  assert.equal(receiver.to("http://down.test/").length, 6);
  const t0 = clock.now();
  downUp = true;
  await clock.advance(4000);
  const down4 = receiver.to("http://down.test/");
  // Both heads delivered on the 4th attempt, then a's stop right after its start.
  assert.deepEqual(
    down4.slice(6).map((s) => [s.at - t0, `${s.body.type} ${s.body.room}`]),
    [[4000, "stream.started a"], [4000, "stream.started b"], [4000, "stream.stopped a"]],
  );
  assert.equal(down4[6].request.headers["sluice-delivery-attempt"], "4");
  assert.equal(down4[8].request.headers["sluice-delivery-attempt"], "1");
  // Each event reached each subscriber successfully exactly once.
  assert.equal(new Set(receiver.to("http://up.test/").map((s) => s.eventId)).size, 3);
  assert.equal(service.stats().queued, 0);
  const log = service.deliveries(down.subscription.id, 100);
  assert.equal(log.filter((d) => d.status === "retrying").length, 6);
  assert.equal(log.filter((d) => d.status === "delivered").length, 3);
  assert.equal(log.find((d) => d.status === "retrying")!.responseCode, 503);
  assert.equal(log.find((d) => d.status === "retrying")!.response, "answer 503");
  await service.close();
});

Deno.test("dispatcher: a final 4xx is recorded and the room's next event goes", async () => {
  const { clock, receiver, service } = setup();
  const { subscription } = service.create({
    url: "http://x.test/",
    rooms: null,
    events: ["stream.started", "stream.stopped"],
    description: "",
    enabled: true,
  });
  receiver.answer = (r) => r.body.type === "stream.started" ? 410 : 200;
  service.handleRoomEvent(started("a", clock));
  service.handleRoomEvent(stopped("a", clock));
  await clock.advance(0);
  assert.deepEqual(receiver.sent.map((s) => s.body.type), ["stream.started", "stream.stopped"]);
  assert.deepEqual(
    service.deliveries(subscription.id).map((d) => [d.type, d.status, d.responseCode]),
    [["stream.stopped", "delivered", 200], ["stream.started", "failed", 410]],
  );
  await service.close();
});

Deno.test("dispatcher: 408, 429 and refused connections are retried", async () => {
  const { clock, receiver, service } = setup();
  service.create({
    url: "http://x.test/",
    rooms: null,
    events: ["stream.started"],
    description: "",
    enabled: true,
  });
  const answers: (number | { error: string })[] = [408, 429, { error: "Connection refused" }, 200];
  receiver.answer = () => answers.shift()!;
  service.handleRoomEvent(started("a", clock));
  await clock.advance(0);
  await clock.advance(1000);
  await clock.advance(2000);
  await clock.advance(4000);
  assert.equal(receiver.sent.length, 4);
  assert.equal(new Set(receiver.sent.map((s) => s.eventId)).size, 1);
  assert.equal(service.stats().queued, 0);
  await service.close();
});

Deno.test("dispatcher: the backoff is capped and gives up at the horizon", async () => {
  const policy: RetryPolicy = { baseMs: 1000, maxDelayMs: 8000, horizonMs: 30_000, jitter: 0 };
  const { clock, receiver, service } = setup({ policy });
  const { subscription } = service.create({
    url: "http://x.test/",
    rooms: ["a"],
    events: ["stream.started", "stream.stopped"],
    description: "",
    enabled: true,
  });
  receiver.answer = () => 500;
  const t0 = clock.now();
  service.handleRoomEvent(started("a", clock));
  await clock.advance(0);
  await clock.advance(60_000);
  // 0, 1, 3, 7, 15, 23 (capped at 8 s), then the horizon itself at 30.
  assert.deepEqual(receiver.sent.map((s) => (s.at - t0) / 1000), [0, 1, 3, 7, 15, 23, 30]);
  assert.equal(service.stats().queued, 0);
  assert.equal(service.deliveries(subscription.id)[0].status, "gave_up");
  await service.close();
});

Deno.test("dispatcher: a slow receiver holds neither other subscribers nor the caller", async () => {
  const { clock, receiver, service } = setup({ maxInFlight: 4, perSubscription: 2 });
  const base = { rooms: null, events: ["stream.started"] as const, description: "", enabled: true };
  service.create({ ...base, url: "http://slow.test/" });
  service.create({ ...base, url: "http://fast.test/" });
  const hang = deferred<number>();
  receiver.answer = (r) => r.request.url === "http://slow.test/" ? hang.promise : 200;
  for (const room of ["a", "b", "c", "d", "e"]) service.handleRoomEvent(started(room, clock));
  await clock.advance(0);
  assert.equal(receiver.to("http://fast.test/").length, 5, "fast subscriber served fully");
  assert.equal(receiver.to("http://slow.test/").length, 2, "slow subscriber capped at 2 in flight");
  assert.ok(receiver.maxInFlight <= 4);
  hang.resolve(200);
  await clock.advance(0);
  assert.equal(receiver.to("http://slow.test/").length, 5);
  assert.equal(service.stats().queued, 0);
  await service.close();
});

Deno.test("dispatcher: overall concurrency is bounded", async () => {
  const { clock, receiver, service } = setup({ maxInFlight: 3, perSubscription: 3 });
  const base = { rooms: null, events: ["stream.started"] as const, description: "", enabled: true };
  for (let i = 0; i < 5; i++) service.create({ ...base, url: `http://s${i}.test/` });
  const gates: Array<(n: number) => void> = [];
  receiver.answer = () => new Promise<number>((r) => gates.push(r));
  for (const room of ["a", "b", "c"]) service.handleRoomEvent(started(room, clock));
  await clock.advance(0);
  assert.equal(receiver.inFlight, 3);
  while (receiver.sent.length < 15 || receiver.inFlight > 0) {
    gates.shift()?.(200);
    await settle();
    assert.ok(receiver.inFlight <= 3);
  }
  assert.equal(receiver.maxInFlight, 3);
  assert.equal(service.stats().queued, 0);
  await service.close();
});

Deno.test("dispatcher: filters by room and event; disabled subscribers get nothing new", async () => {
  const { clock, receiver, service } = setup();
  service.create({
    url: "http://all.test/",
    rooms: null,
    events: ["stream.started", "stream.stopped"],
    description: "",
    enabled: true,
  });
  service.create({
    url: "http://a.test/",
    rooms: ["a"],
    events: ["stream.started", "stream.stopped"],
    description: "",
    enabled: true,
  });
  service.create({
    url: "http://stops.test/",
    rooms: null,
    events: ["stream.stopped"],
    description: "",
    enabled: true,
  });
  const off = service.create({
    url: "http://off.test/",
    rooms: null,
    events: ["stream.started", "stream.stopped"],
    description: "",
    enabled: false,
  });
  service.handleRoomEvent(started("a", clock));
  service.handleRoomEvent(started("b", clock));
  service.handleRoomEvent(stopped("b", clock));
  await clock.advance(0);
  const seen = (url: string) => receiver.to(url).map((s) => `${s.body.type} ${s.body.room}`);
  assert.deepEqual(seen("http://all.test/"), [
    "stream.started a",
    "stream.started b",
    "stream.stopped b",
  ]);
  assert.deepEqual(seen("http://a.test/"), ["stream.started a"]);
  assert.deepEqual(seen("http://stops.test/"), ["stream.stopped b"]);
  assert.deepEqual(seen("http://off.test/"), []);
  service.update(off.subscription.id, { enabled: true });
  service.handleRoomEvent(stopped("a", clock));
  await clock.advance(0);
  assert.deepEqual(seen("http://off.test/"), ["stream.stopped a"]);
  await service.close();
});

Deno.test("dispatcher: pausing a subscriber keeps its queue; enabling resumes in order", async () => {
  const { clock, receiver, service } = setup();
  const { subscription } = service.create({
    url: "http://x.test/",
    rooms: null,
    events: ["stream.started", "stream.stopped"],
    description: "",
    enabled: true,
  });
  receiver.answer = () => 500;
  service.handleRoomEvent(started("a", clock));
  service.handleRoomEvent(stopped("a", clock));
  await clock.advance(0);
  service.update(subscription.id, { enabled: false });
  await clock.advance(60_000);
  assert.equal(receiver.sent.length, 1, "no attempts while disabled");
  assert.equal(service.get(subscription.id)!.pending, 2);
  receiver.answer = () => 200;
  service.update(subscription.id, { enabled: true });
  await clock.advance(0);
  assert.deepEqual(receiver.sent.map((s) => s.body.type), [
    "stream.started",
    "stream.started",
    "stream.stopped",
  ]);
  await service.close();
});

Deno.test("dispatcher: deleting a subscriber drops its queue", async () => {
  const { clock, receiver, service } = setup();
  const { subscription } = service.create({
    url: "http://x.test/",
    rooms: null,
    events: ["stream.started"],
    description: "",
    enabled: true,
  });
  receiver.answer = () => 500;
  service.handleRoomEvent(started("a", clock));
  await clock.advance(0);
  assert.ok(service.delete(subscription.id));
  assert.equal(service.stats().queued, 0);
  await clock.advance(10_000);
  assert.equal(receiver.sent.length, 1);
  assert.equal(service.get(subscription.id), undefined);
  await service.close();
});

Deno.test("dispatcher: drain waits for due deliveries, not for far retries", async () => {
  const { clock, receiver, service } = setup();
  service.create({
    url: "http://x.test/",
    rooms: null,
    events: ["stream.stopped"],
    description: "",
    enabled: true,
  });
  const gate = deferred<number>();
  receiver.answer = () => gate.promise;
  service.handleRoomEvent(stopped("a", clock, "shutdown"));
  let done: boolean | undefined;
  service.drain(5000).then((v) => done = v);
  await clock.advance(0);
  assert.equal(done, undefined, "in flight: still draining");
  gate.resolve(500);
  await clock.advance(0);
  // Failed; the retry is 1 s away, inside the 5 s bound: keep draining.
  assert.equal(done, undefined);
  receiver.answer = () => 500;
  await clock.advance(1000);
  await clock.advance(2000);
  // Next retry at +7 s is past the bound: done, with the event still queued.
  assert.equal(done, true);
  assert.equal(service.stats().queued, 1);
  await service.close();
});

Deno.test("dispatcher: drain gives up at its bound; stop keeps in-flight events queued", async () => {
  const { clock, receiver, service } = setup();
  service.create({
    url: "http://x.test/",
    rooms: null,
    events: ["stream.stopped"],
    description: "",
    enabled: true,
  });
  receiver.answer = () => new Promise<number>(() => {});
  service.handleRoomEvent(stopped("a", clock, "shutdown"));
  let done: boolean | undefined;
  service.drain(5000).then((v) => done = v);
  await clock.advance(5000);
  assert.equal(done, false);
  assert.equal(receiver.inFlight, 1);
  await service.close();
  assert.equal(receiver.inFlight, 0);
});

Deno.test("dispatcher: the queue survives a reopen; crashed live rooms get a stop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-webhooks-unit-" });
  try {
    const path = `${dir}/webhooks.db`;
    const first = setup({ path });
    first.service.create({
      url: "http://x.test/",
      rooms: null,
      events: ["stream.started", "stream.stopped"],
      description: "",
      enabled: true,
    });
    first.receiver.answer = () => 500;
    first.service.handleRoomEvent(started("gone", first.clock));
    first.service.handleRoomEvent(stopped("gone", first.clock));
    first.service.handleRoomEvent(started("live", first.clock));
    await first.clock.advance(0);
    const ids = first.receiver.sent.map((s) => s.eventId);
    // Closing leaves the queue as a kill -9 would (no flush, nothing marked); the e2e test kills.
    await first.service.close();

    const second = setup({ path });
    await second.clock.advance(0);
    const got = second.receiver.sent.map((s) =>
      `${s.body.type} ${s.body.room} ${s.body.reason ?? ""}`
    );
    assert.deepEqual(got.sort(), [
      "stream.started gone ",
      "stream.started live ",
      "stream.stopped gone unpublished",
      "stream.stopped live error",
    ]);
    for (const room of ["gone", "live"]) {
      assert.deepEqual(
        second.receiver.sent.filter((s) => s.body.room === room).map((s) => s.body.type),
        ["stream.started", "stream.stopped"],
        `order in room ${room}`,
      );
    }
    for (const id of ids) assert.ok(second.receiver.sent.some((s) => s.eventId === id));
    assert.equal(second.service.stats().queued, 0);
    await second.service.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dispatcher: a second service on the same database is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-webhooks-unit-" });
  try {
    const first = setup({ path: `${dir}/webhooks.db` });
    assert.throws(() => setup({ path: `${dir}/webhooks.db` }), /in use by another Sluice/);
    await first.service.close();
    const again = setup({ path: `${dir}/webhooks.db` });
    await again.service.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dispatcher: a failure inside Sluice holds the queue back instead of spinning", async () => {
  const { clock, receiver, service } = setup();
  service.create({
    url: "http://x.test/",
    rooms: null,
    events: ["stream.started"],
    description: "",
    enabled: true,
  });
  let calls = 0;
  receiver.answer = () => {
    if (calls++ === 0) throw new Error("sender bug");
    return 200;
  };
  service.handleRoomEvent(started("a", clock));
  await clock.advance(0);
  assert.equal(receiver.sent.length, 1);
  await clock.advance(4999);
  assert.equal(receiver.sent.length, 1, "no tight loop");
  await clock.advance(1);
  assert.equal(receiver.sent.length, 2);
  assert.equal(service.stats().queued, 0);
  await service.close();
});
