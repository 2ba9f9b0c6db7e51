/**
 * Bad input end to end: hostile or broken RTMP connections are each closed with one
 * log line saying why, while a real ffmpeg publish in another room keeps receiving
 * frames. Stream keys: wrong or missing keys are refused and never logged.
 */
import assert from "node:assert/strict";
import { amfNumber, amfProp, amfString, decodeAmf0 } from "../../lib/rtmp/amf0.ts";
import type { RtmpMessage } from "../../lib/rtmp/chunk.ts";
import { startTestServer, type TestServer, waitFor } from "../support/server.ts";
import { type Publisher, publishLive } from "../support/publishers.ts";
import { RtmpTestClient } from "../support/rtmp_client.ts";

// deno-lint-ignore no-explicit-any
type Room = any;

const e2e = { sanitizeOps: false, sanitizeResources: false };
const VICTIM = "victim";

/** Lines logged after `mark` (a length of `server.log()`). */
function linesSince(server: TestServer, mark: number): string[] {
  return server.log().slice(mark).split("\n").filter((l) => l.trim() !== "");
}

/**
 * Waits for a line matching `reason` about the connection from `port`, then checks
 * that this connection produced exactly one log line.
 */
async function assertOneLogLine(
  server: TestServer,
  mark: number,
  port: number,
  reason: RegExp,
): Promise<string> {
  const about = (l: string) => l.includes(`127.0.0.1:${port}`);
  const line = await waitFor(
    () => linesSince(server, mark).find((l) => about(l) && reason.test(l)),
    5000,
    `a log line matching ${reason} about 127.0.0.1:${port}`,
  );
  // Anything else the server would say about the connection comes right after.
  await new Promise((r) => setTimeout(r, 300));
  const all = linesSince(server, mark).filter(about);
  assert.equal(all.length, 1, `one log line for the connection, got:\n${all.join("\n")}`);
  return line;
}

/** Decodes an AMF0 command the server sent; undefined for other messages. */
function commandOf(m: RtmpMessage): { name?: string; txn?: number; args: unknown[] } | undefined {
  if (m.type !== 20) return undefined;
  const [name, txn, ...args] = decodeAmf0(m.payload);
  return { name: amfString(name), txn: amfNumber(txn), args };
}

function isCommand(name: string, pred: (args: unknown[], txn?: number) => boolean = () => true) {
  return (m: RtmpMessage) => {
    const c = commandOf(m);
    return c?.name === name && pred(c.args, c.txn);
  };
}

function statusCode(args: unknown[]): string | undefined {
  // deno-lint-ignore no-explicit-any
  return amfString(amfProp(args[1] as any, "code"));
}

/** Resolves with the exit code, or stops the process and fails after `timeoutMs`. */
async function exitWithin(p: Publisher, timeoutMs: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), timeoutMs));
  const code = await Promise.race([p.exited, late]);
  clearTimeout(timer);
  if (code === "late") {
    await p.stop();
    throw new Error(`publisher still running after ${timeoutMs} ms:\n${p.output()}`);
  }
  return code;
}

Deno.test(
  "bad input: each bad connection is closed and logged; another room goes on",
  e2e,
  async (t) => {
    const server = await startTestServer([
      "--handshake-timeout",
      "2s",
      "--idle-timeout",
      "4s",
      "--max-message-size",
      "1MiB",
    ]);
    const victim = publishLive(`${server.rtmpUrl}/${VICTIM}`, { seconds: 90 });
    const clients: RtmpTestClient[] = [];
    const open = async (handshake: boolean) => {
      const c = handshake
        ? await RtmpTestClient.connect(server.rtmpPort)
        : await RtmpTestClient.open(server.rtmpPort);
      clients.push(c);
      return c;
    };
    try {
      const live = await waitFor(
        async () => {
          const r = await server.api<Room>(`/api/rooms/${VICTIM}`);
          return r.live && r.frames.video > 0 ? r : undefined;
        },
        20_000,
        `the victim room to go live (ffmpeg: ${victim.output()})`,
      );
      const since = live.since;

      /** Runs one bad connection; the victim must be live and gaining frames across it. */
      const step = (name: string, fn: (mark: number) => Promise<void>) =>
        t.step(name, async () => {
          const before = (await server.api<Room>(`/api/rooms/${VICTIM}`)).frames.video;
          await fn(server.log().length);
          await waitFor(
            async () => {
              const r = await server.api<Room>(`/api/rooms/${VICTIM}`);
              return r.live && r.since === since && r.frames.video > before;
            },
            5000,
            `victim frames to rise past ${before} after "${name}"`,
          );
        });

      await step("garbage instead of a handshake (C0 != 3)", async (mark) => {
        const c = await open(false);
        await c.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: sluice\r\n\r\n"));
        assert.ok(await c.closedWithin(3000), "closed at once, not after the handshake timeout");
        await assertOneLogLine(server, mark, c.localPort, /expected RTMP version 3 in C0, got 71/);
      });

      await step("truncated handshake: closed by the handshake timeout", async (mark) => {
        const c = await open(false);
        const started = Date.now();
        const partial = new Uint8Array(101);
        partial[0] = 3;
        await c.write(partial);
        assert.ok(await c.closedWithin(5000), "closed by the handshake timeout");
        const took = Date.now() - started;
        assert.ok(took >= 1500, `closed after ${took} ms, before the 2 s handshake timeout`);
        await assertOneLogLine(server, mark, c.localPort, /handshake not completed within 2000 ms/);
      });

      await step("message length over --max-message-size", async (mark) => {
        const c = await open(true);
        const length = 2 * 1024 * 1024;
        // Type 0 header on chunk stream 4: a 2 MiB video message, then a little of it.
        const header = [
          0x04,
          0,
          0,
          0,
          length >> 16,
          (length >> 8) & 0xff,
          length & 0xff,
          9,
          1,
          0,
          0,
          0,
        ];
        await c.write(new Uint8Array([...header, ...new Uint8Array(128)]));
        assert.ok(await c.closedWithin(3000), "closed");
        await assertOneLogLine(
          server,
          mark,
          c.localPort,
          /message of 2097152 bytes exceeds the configured maximum 1048576/,
        );
      });

      await step("type 1 header on an unknown chunk stream", async (mark) => {
        const c = await open(true);
        await c.write(new Uint8Array([0x40 | 7, 0, 0, 0, 0, 0, 4, 20, 1, 2, 3, 4]));
        assert.ok(await c.closedWithin(3000), "closed");
        await assertOneLogLine(
          server,
          mark,
          c.localPort,
          /chunk stream 7: first chunk has header type 1/,
        );
      });

      await step("malformed AMF0 in a command message", async (mark) => {
        const c = await open(true);
        // A string marker announcing 64 bytes, followed by one.
        await c.send({
          type: 20,
          streamId: 0,
          timestamp: 0,
          payload: new Uint8Array([2, 0, 64, 0x61]),
        });
        assert.ok(await c.closedWithin(3000), "closed");
        await assertOneLogLine(server, mark, c.localPort, /AmfError/);
      });

      await step("connect to the wrong application", async (mark) => {
        const c = await open(true);
        await c.command(0, "connect", 1, {
          app: "wrongapp",
          type: "nonprivate",
          flashVer: "FMLE/3.0 (compatible; sluice-test)",
          tcUrl: `rtmp://127.0.0.1:${server.rtmpPort}/wrongapp`,
        });
        const refusal = await c.expect(isCommand("_error", (_, txn) => txn === 1), 3000);
        assert.ok(refusal, "an _error answer to connect");
        assert.equal(statusCode(commandOf(refusal)!.args), "NetConnection.Connect.Rejected");
        assert.ok(await c.closedWithin(3000), "closed after the refusal");
        await assertOneLogLine(server, mark, c.localPort, /unknown application wrongapp/);
      });

      await step("malformed FLV video body after a granted publish", async (mark) => {
        const c = await open(true);
        await c.command(0, "connect", 1, {
          app: "live",
          type: "nonprivate",
          flashVer: "FMLE/3.0 (compatible; sluice-test)",
          tcUrl: `rtmp://127.0.0.1:${server.rtmpPort}/live`,
        });
        assert.ok(await c.expect(isCommand("_result", (_, txn) => txn === 1)), "connect _result");
        await c.command(0, "createStream", 2, null);
        const created = await c.expect(isCommand("_result", (_, txn) => txn === 2));
        assert.ok(created, "createStream _result");
        const streamId = amfNumber(commandOf(created)!.args[1] as number)!;
        assert.ok(streamId > 0, `stream id ${streamId}`);
        await c.command(streamId, "publish", 3, null, "bad-flv", "live");
        const started = await c.expect(
          isCommand("onStatus", (args) => statusCode(args) === "NetStream.Publish.Start"),
        );
        assert.ok(started, "NetStream.Publish.Start");
        assert.equal((await server.api<Room>("/api/rooms/bad-flv")).live, true);
        // An AVC keyframe tag header with nothing after it: no AVCPacketType.
        await c.send({ type: 9, streamId, timestamp: 0, payload: new Uint8Array([0x17]) });
        assert.ok(await c.closedWithin(3000), "closed");
        await assertOneLogLine(server, mark, c.localPort, /FlvError/);
        await waitFor(
          async () => !(await server.api<Room>("/api/rooms/bad-flv")).live,
          3000,
          "bad-flv to stop being live",
        );
      });

      await step("second publisher to the live room is refused", async (mark) => {
        const second = publishLive(`${server.rtmpUrl}/${VICTIM}`, { seconds: 5 });
        const code = await exitWithin(second, 15_000);
        assert.notEqual(code, 0, `second publisher exited 0:\n${second.output()}`);
        assert.match(second.output(), /already being published|BadName/);
        const refused = await waitFor(
          () => linesSince(server, mark).filter((l) => /publish refused: room busy/.test(l)),
          3000,
          "a 'publish refused: room busy' line",
        );
        assert.equal(refused.length, 1, refused.join("\n"));
        assert.match(refused[0], new RegExp(`room ${VICTIM}\\b`));
      });

      await step("silent connection after the handshake: idle timeout", async (mark) => {
        const c = await open(true);
        const started = Date.now();
        assert.ok(await c.closedWithin(7000), "closed by the idle timeout");
        const took = Date.now() - started;
        assert.ok(took >= 3500, `closed after ${took} ms, before the 4 s idle timeout`);
        await assertOneLogLine(server, mark, c.localPort, /no data for 4000 ms \(idle timeout\)/);
      });

      const end = await server.api<Room>(`/api/rooms/${VICTIM}`);
      assert.equal(end.live, true, "victim still live");
      assert.equal(end.since, since, "victim's publish never restarted");
      assert.equal(victim.output().match(/error/i), null, `victim ffmpeg: ${victim.output()}`);
      const health = await fetch(`${server.httpUrl}/healthz`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      for (const c of clients) c.close();
      await victim.stop();
      assert.equal(await server.stop(), 0);
    }
  },
);

/** Publishes `path` (room with its query) with ffmpeg; it must fail and the room never go live. */
async function assertRefused(server: TestServer, path: string, room: string, why: RegExp) {
  const mark = server.log().length;
  const publisher = publishLive(`${server.rtmpUrl}/${path}`, { seconds: 5 });
  let exited: number | undefined;
  publisher.exited.then((c) => exited = c);
  const deadline = Date.now() + 15_000;
  try {
    while (exited === undefined && Date.now() < deadline) {
      const r = await server.api<Room>(`/api/rooms/${room}`);
      assert.equal(r.live, false, `${path} went live`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    if (exited === undefined) await publisher.stop();
  }
  assert.notEqual(exited, undefined, `ffmpeg publishing ${path} was not refused`);
  assert.notEqual(exited, 0, `ffmpeg publishing ${path} exited 0`);
  const lines = await waitFor(
    () => linesSince(server, mark).filter((l) => /publish refused/.test(l)),
    3000,
    "a 'publish refused' line",
  );
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0], why);
  assert.equal((await server.api<Room>(`/api/rooms/${room}`)).live, false);
}

/** Publishes `path` with ffmpeg until the room is live, then stops it. */
async function assertGoesLive(server: TestServer, path: string, room: string) {
  const publisher = publishLive(`${server.rtmpUrl}/${path}`, { seconds: 30 });
  try {
    await waitFor(
      async () => {
        const r = await server.api<Room>(`/api/rooms/${room}`);
        return r.live && r.frames.video > 0;
      },
      15_000,
      `${room} to go live (ffmpeg: ${publisher.output()})`,
    );
  } finally {
    await publisher.stop();
  }
}

Deno.test(
  "stream keys: --publish-key refuses a wrong or missing key, never logs keys",
  e2e,
  async () => {
    const server = await startTestServer(["--publish-key", "s3cret", "--log-level", "debug"]);
    try {
      await assertRefused(server, "room?key=wrong-9f2c", "room", /wrong stream key/);
      await assertRefused(server, "room", "room", /no stream key/);
      await assertGoesLive(server, "room?key=s3cret", "room");
      const log = server.log();
      assert.match(log, /stream keys are required/);
      assert.ok(!log.includes("s3cret"), "the key appears in the log");
      assert.ok(!log.includes("wrong-9f2c"), "the wrong key appears in the log");
      const rooms = JSON.stringify(await server.api("/api/rooms"));
      assert.ok(!rooms.includes("s3cret"), "the key appears in the API");
    } finally {
      assert.equal(await server.stop(), 0);
    }
  },
);

Deno.test("stream keys: --keys-file gives each room its own key", e2e, async () => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-keys-" });
  const keysFile = `${dir}/keys.json`;
  await Deno.writeTextFile(keysFile, JSON.stringify({ a: "ka-71c0" }));
  const server = await startTestServer(["--keys-file", keysFile]);
  try {
    await assertGoesLive(server, "a?key=ka-71c0", "a");
    await assertRefused(server, "b?key=ka-71c0", "b", /no key is configured for this room/);
    await assertRefused(server, "a?key=kb", "a", /wrong stream key/);
    assert.ok(!server.log().includes("ka-71c0"), "the key appears in the log");
  } finally {
    assert.equal(await server.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});
