/** Admission control: the configured cap, the measured send-thread load, the capacity estimate. */
import assert from "node:assert/strict";
import { Admission, mainThreadCpuSeconds } from "../../lib/webrtc/admission.ts";

/** A fake CPU clock: `busy` seconds of CPU per second of wall time. */
function fakeCpu() {
  let cpu = 0;
  return {
    read: () => cpu,
    run(busy: number, seconds: number) {
      cpu += busy * seconds;
    },
  };
}

Deno.test("admission: the configured cap refuses the viewer beyond it", () => {
  const a = new Admission({ maxViewers: 3, maxLoad: 0 });
  assert.equal(a.check(2), undefined);
  const refusal = a.check(3);
  assert.equal(refusal?.reason, "configured");
  assert.equal(refusal?.retryAfterS, 10);
  assert.match(refusal!.message, /server full: 3 of 3 viewers/);
  assert.equal(a.capacity(2), 3);
});

Deno.test("admission: a busy send thread refuses at once, and admits again only once it calms", () => {
  const cpu = fakeCpu();
  const a = new Admission({ maxViewers: 0, maxLoad: 0.85 }, cpu.read);
  let t = 0;
  a.sample(t);
  for (const busy of [0.3, 0.5, 0.6]) {
    cpu.run(busy, 1);
    a.sample(t += 1000);
  }
  assert.ok(Math.abs(a.load - 0.6) < 1e-9);
  assert.equal(a.check(300), undefined);
  // Viewers make up the load: 300 at 60 % → about 425 at the 85 % limit.
  assert.equal(a.capacity(300), 425);
  cpu.run(0.9, 1);
  a.sample(t += 1000);
  assert.equal(a.check(400)?.reason, "capacity", "a spike refuses at once");
  cpu.run(0.5, 1);
  a.sample(t += 1000);
  assert.ok(a.load > 0.5 && a.load < 0.9, `falls slowly: ${a.load}`);
  for (let i = 0; i < 5; i++) {
    cpu.run(0.5, 1);
    a.sample(t += 1000);
  }
  assert.equal(a.check(400), undefined);
});

Deno.test("admission: with the load limit off, nothing is measured or refused", () => {
  const a = new Admission({ maxViewers: 0, maxLoad: 0 }, () => 1e9);
  a.start();
  a.stop();
  assert.equal(a.check(1_000_000), undefined);
  assert.equal(a.capacity(1_000), undefined);
});

Deno.test("admission: the main thread's CPU time is readable here and grows with work", () => {
  const before = mainThreadCpuSeconds();
  assert.ok(before !== undefined, "process.threadCpuUsage()");
  const end = performance.now() + 150;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  assert.ok(mainThreadCpuSeconds()! > before!, String(x));
});
