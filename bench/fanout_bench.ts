/**
 * Fan-out: one ffmpeg publisher (1280x720 30 fps, 2.5 Mbit/s, AAC), N WebRTC
 * viewers in separate processes that really decrypt, authenticate and count every
 * packet (bench/support/fanout_receiver.ts), the server on werift's own send path
 * and on the native one, side by side in the same run.
 *
 * Per N it prints the server's CPU (process CPU time / wall time, % of one core),
 * µs of server CPU per packet per viewer, loss, reordering, the server's RSS,
 * viewers per core at that load, and the server-added latency (RTMP message in →
 * last RTP packet of that frame out, from /metrics). At the end: the ratio of the
 * two paths and the largest N with < 0.1 % loss on each.
 *
 *   deno run --allow-all bench/fanout_bench.ts [--quick] [--counts 25,50,100,200,400]
 *     [--werift-counts 25,50] [--seconds 10] [--chromium]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Browser, startBrowser } from "../tests/support/browser.ts";
import { startTestServer } from "../tests/support/server.ts";
import { cpuSeconds } from "./support/proc.ts";
import { loadFanout, SrtpContext, SrtpProfile } from "../lib/webrtc/fast/ffi.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    counts: { type: "string", default: "1,25,50,100,200,400,600" },
    "werift-counts": { type: "string", default: "25,50,100" },
    seconds: { type: "string", default: "10" },
    "per-process": { type: "string", default: "100" },
    chromium: { type: "boolean", default: true },
    "send-threads": { type: "string", default: "0" },
  },
});
if (flags.quick) {
  Object.assign(flags, {
    counts: "1,25,100,200",
    "werift-counts": "25",
    seconds: "5",
  });
}
const SECONDS = Number(flags.seconds);
const PER_PROCESS = Number(flags["per-process"]);
const ROOT = new URL("../", import.meta.url).pathname;

interface Server {
  pid: number;
  http: string;
  rtmp: string;
  stop(): Promise<void>;
}

/** The server as the tests run it (`main.ts`, the start task's permissions, free ports). */
async function startServer(sendPath: string, sendThreads = "0"): Promise<Server> {
  const server = await startTestServer([
    "--send-path",
    sendPath,
    "--send-threads",
    sendThreads,
    "--max-viewers",
    "5000",
  ]);
  return {
    pid: server.pid,
    http: server.httpUrl,
    rtmp: server.rtmpUrl,
    stop: async () => void await server.stop(),
  };
}

function publish(url: string): Deno.ChildProcess {
  return new Deno.Command("ffmpeg", {
    args: [
      ..."-nostdin -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30"
        .split(" "),
      ..."-f lavfi -i sine=f=440:sample_rate=48000 -t 900 -c:v libx264 -preset ultrafast"
        .split(" "),
      ..."-tune zerolatency -b:v 2500k -maxrate 2500k -bufsize 1250k -g 60 -pix_fmt yuv420p"
        .split(" "),
      ..."-c:a aac -b:a 128k -f flv".split(" "),
      url,
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

/** The machine's idle and total CPU ticks so far (/proc/stat, all cores). */
async function machineTicks(): Promise<{ idle: number; total: number }> {
  const cpu = (await Deno.readTextFile("/proc/stat")).split("\n")[0].split(/\s+/).slice(1)
    .map(Number);
  return { idle: cpu[3] + (cpu[4] ?? 0), total: cpu.reduce((a, b) => a + (b || 0), 0) };
}

/** utime + stime of a process in seconds, and its RSS in MiB. */
async function usage(pid: number): Promise<{ cpu: number; rssMiB: number }> {
  const cpu = cpuSeconds(await Deno.readTextFile(`/proc/${pid}/stat`));
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpu, rssMiB: rssKiB / 1024 };
}

interface ViewerStats {
  received: number;
  expected: number;
  reordered: number;
  authFailures: number;
  bytes: number;
}

class Receivers {
  readonly #procs: {
    child: Deno.ChildProcess;
    lines: string[];
    waiters: (() => void)[];
  }[] = [];
  readonly #writers: WritableStreamDefaultWriter<Uint8Array>[] = [];

  constructor(whep: string, n: number) {
    for (let left = n; left > 0; left -= PER_PROCESS) {
      const count = Math.min(PER_PROCESS, left);
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          `${ROOT}bench/support/fanout_receiver.ts`,
          whep,
          String(count),
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const proc = {
        child,
        lines: [] as string[],
        waiters: [] as (() => void)[],
      };
      this.#procs.push(proc);
      this.#writers.push(child.stdin.getWriter());
      (async () => {
        let buf = "";
        for await (
          const chunk of child.stdout.pipeThrough(new TextDecoderStream())
        ) {
          buf += chunk;
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            proc.lines.push(buf.slice(0, i));
            buf = buf.slice(i + 1);
            for (const w of proc.waiters.splice(0)) w();
          }
        }
      })();
    }
  }

  get pids(): number[] {
    return this.#procs.map((p) => p.child.pid);
  }

  /** Waits until every process reports all its viewers connected or failed. */
  async ready(
    n: number,
    timeoutMs: number,
  ): Promise<{ connected: number; failed: number }> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      let connected = 0, failed = 0;
      for (const p of this.#procs) {
        const last = [...p.lines].reverse().find((l) => l.includes('"connected"'));
        if (last) {
          const r = JSON.parse(last);
          connected += r.connected;
          failed += r.failed;
        }
      }
      if (connected + failed >= n || performance.now() > deadline) {
        return { connected, failed };
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async stats(): Promise<ViewerStats[]> {
    const all: ViewerStats[] = [];
    await Promise.all(this.#procs.map(async (p, i) => {
      const before = p.lines.length;
      await this.#writers[i].write(new TextEncoder().encode("stats\n"));
      for (;;) {
        const line = p.lines.slice(before).find((l) => l.startsWith('{"stats"'));
        if (line) {
          all.push(...JSON.parse(line).stats);
          return;
        }
        await new Promise<void>((r) => p.waiters.push(r));
      }
    }));
    return all;
  }

  async quit(): Promise<void> {
    await Promise.all(this.#procs.map(async (p, i) => {
      await this.#writers[i].write(new TextEncoder().encode("quit\n")).catch(
        () => {},
      );
      const timer = setTimeout(() => p.child.kill("SIGKILL"), 15_000);
      await p.child.status;
      clearTimeout(timer);
    }));
  }
}

/**
 * Quantiles of a Prometheus histogram's growth between two scrapes, interpolated
 * linearly inside the bucket they fall in.
 */
function histogramQuantiles(
  before: string,
  after: string,
  name: string,
  qs: number[],
): (number | undefined)[] {
  const buckets = (text: string) => {
    const out = new Map<number, number>();
    const re = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, "gm");
    for (const m of text.matchAll(re)) {
      out.set(m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2]));
    }
    return out;
  };
  const a = buckets(before), b = buckets(after);
  const les = [...b.keys()].sort((x, y) => x - y);
  const counts = les.map((le) => (b.get(le) ?? 0) - (a.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  return qs.map((q) => {
    if (!total) return undefined;
    const target = q * total;
    const i = counts.findIndex((c) => c >= target);
    const hi = les[i], lo = i > 0 ? les[i - 1] : 0;
    const below = i > 0 ? counts[i - 1] : 0;
    if (!Number.isFinite(hi)) return lo;
    return lo + ((hi - lo) * (target - below)) / Math.max(1, counts[i] - below);
  });
}

interface Row {
  path: string;
  n: number;
  connected: number;
  cpuPct: number;
  usPerPacketViewer: number;
  lossPct: number;
  reordered: number;
  rssMiB: number;
  viewersPerCore: number;
  packetsPerViewerS: number;
  mbitPerViewer: number;
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  /** Share of the whole machine (every core) idle during the point. */
  machineIdlePct: number;
}

interface ChromiumStats {
  video?: {
    framesDecoded?: number;
    freezeCount?: number;
    packetsLost?: number;
  };
  videoWidth?: number;
}

async function measure(
  server: Server,
  path: string,
  n: number,
  withChromium: boolean,
): Promise<Row | undefined> {
  const receivers = new Receivers(`${server.http}/whep/bench`, n);
  let browser: Browser | undefined;
  try {
    const up = await receivers.ready(n, 30_000 + n * 300);
    if (up.connected === 0) {
      console.log(
        `  ${path} N=${n}: no viewer connected (${up.failed} failed)`,
      );
      return;
    }
    if (withChromium) {
      browser = await startBrowser();
      await browser.open(server.http, "bench", "c");
    }
    await new Promise((r) => setTimeout(r, 3000)); // warm-up: GOP replays, PLIs settle
    const c0: ChromiumStats | undefined = await browser?.stats("c");
    const m0 = await (await fetch(`${server.http}/metrics`)).text();
    const s0 = await receivers.stats();
    const u0 = await usage(server.pid);
    const k0 = await machineTicks();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const s1 = await receivers.stats();
    const u1 = await usage(server.pid);
    const k1 = await machineTicks();
    const t1 = performance.now();
    const m1 = await (await fetch(`${server.http}/metrics`)).text();
    const c1: ChromiumStats | undefined = await browser?.stats("c");
    if (c0 && c1) {
      const decoded = (c1.video?.framesDecoded ?? 0) -
        (c0.video?.framesDecoded ?? 0);
      console.log(
        `  Chromium among the ${up.connected}: ${decoded} frames decoded in ` +
          `${((t1 - t0) / 1000).toFixed(1)} s (${
            (decoded / ((t1 - t0) / 1000)).toFixed(1)
          } fps of 30), ` +
          `freezes ${(c1.video?.freezeCount ?? 0) - (c0.video?.freezeCount ?? 0)}, ` +
          `packets lost ${(c1.video?.packetsLost ?? 0) - (c0.video?.packetsLost ?? 0)}, ` +
          `${c1.videoWidth}px wide`,
      );
    }
    let received = 0, expected = 0, reordered = 0, bytes = 0;
    for (let i = 0; i < s1.length; i++) {
      received += s1[i].received - (s0[i]?.received ?? 0);
      expected += s1[i].expected - (s0[i]?.expected ?? 0);
      reordered += s1[i].reordered - (s0[i]?.reordered ?? 0);
      bytes += s1[i].bytes - (s0[i]?.bytes ?? 0);
    }
    const wall = (t1 - t0) / 1000;
    const cpu = u1.cpu - u0.cpu;
    const [p50, p99] = histogramQuantiles(m0, m1, "sluice_fanout_seconds", [
      0.5,
      0.99,
    ]);
    const gauge = (text: string, name: string) =>
      Number(
        new RegExp(`^${name}(?:\\{\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN,
      );
    const inPerS = (gauge(m1, "sluice_native_udp_datagrams_in") -
      gauge(m0, "sluice_native_udp_datagrams_in")) / ((t1 - t0) / 1000);
    if (Number.isFinite(inPerS) && inPerS > 0) {
      console.log(
        `  (server read ${inPerS.toFixed(0)} control datagrams/s from its viewers)`,
      );
    }
    return {
      path,
      n,
      connected: up.connected,
      cpuPct: (cpu / wall) * 100,
      usPerPacketViewer: received ? (cpu * 1e6) / received : NaN,
      lossPct: expected ? Math.max(0, (1 - received / expected) * 100) : 100,
      reordered,
      rssMiB: u1.rssMiB,
      viewersPerCore: cpu ? up.connected / (cpu / wall) : NaN,
      packetsPerViewerS: received / up.connected / wall,
      mbitPerViewer: (bytes * 8) / up.connected / wall / 1e6,
      latencyP50Ms: p50 === undefined ? undefined : p50 * 1000,
      latencyP99Ms: p99 === undefined ? undefined : p99 * 1000,
      machineIdlePct: ((k1.idle - k0.idle) / Math.max(1, k1.total - k0.total)) * 100,
    };
  } finally {
    await browser?.quit();
    await receivers.quit();
    // Let the server settle (sessions closed) before the next N.
    for (let i = 0; i < 40; i++) {
      const rooms = await (await fetch(`${server.http}/api/rooms/bench`)).json()
        .catch(() => ({}));
      if (!rooms.viewers) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

const fmt = (x: number | undefined, d = 1) =>
  x === undefined || Number.isNaN(x) ? "–" : x.toFixed(d);

/** Native SRTP protect cost per 1200-byte RTP packet (FFI call and copy included), per profile. */
function srtpCost(): string {
  const lib = loadFanout();
  if (lib instanceof Error) return `native SRTP: ${lib.message}`;
  const packet = new Uint8Array(1212);
  packet[0] = 0x80;
  packet[1] = 96;
  const out = new Uint8Array(1300);
  const parts: string[] = [];
  for (
    const [name, profile, saltLength] of [
      ["AES-CM + HMAC-SHA1-80", SrtpProfile.AES128_CM_HMAC_SHA1_80, 14],
      ["AEAD-AES-128-GCM", SrtpProfile.AEAD_AES_128_GCM, 12],
    ] as const
  ) {
    const ctx = new SrtpContext(lib, profile, new Uint8Array(16), new Uint8Array(saltLength));
    const protect = (i: number) => {
      packet[2] = i >> 8;
      packet[3] = i;
      lib.symbols.sf_srtp_protect(ctx.handle, packet, packet.length, out);
    };
    for (let i = 0; i < 10_000; i++) protect(i);
    const n = 100_000, t0 = performance.now();
    for (let i = 0; i < n; i++) protect(i);
    parts.push(`${name} ${(((performance.now() - t0) * 1000) / n).toFixed(2)} µs`);
    ctx.destroy();
  }
  return `native SRTP protect per 1200-byte packet: ${parts.join(", ")}`;
}

const rows: Row[] = [];
console.log(
  `machine: ${Deno.build.os} ${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, ` +
    `Deno ${Deno.version.deno}; stream 1280x720 30 fps 2.5 Mbit/s + AAC→Opus; ` +
    `${SECONDS} s per point, viewers ${PER_PROCESS} per receiver process`,
);
console.log(srtpCost());
console.log(
  "path    N     up   server CPU  µs/pkt/viewer  loss %   reordered  RSS MiB  viewers/core" +
    "  pkt/s/viewer  Mbit/s/viewer  latency p50/p99 ms  machine idle",
);
// The native path once per --send-threads value ("native×2": two send threads; 0 = one per core).
const threadCounts = flags["send-threads"]!.split(",").filter((t) => t !== "");
const runs: [string, string, string][] = [["werift", flags["werift-counts"]!, "0"]];
for (const t of threadCounts) {
  runs.push([threadCounts.length > 1 ? `native×${t}` : "native", flags.counts!, t]);
}
for (const [path, counts, threads] of runs) {
  const server = await startServer(path.startsWith("native") ? "native" : path, threads);
  const publisher = publish(`${server.rtmp}/bench`);
  try {
    for (let i = 0; i < 40; i++) {
      const r = await (await fetch(`${server.http}/api/rooms/bench`)).json()
        .catch(() => ({}));
      if (r.live) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const ns = counts.split(",").map(Number);
    for (const n of ns) {
      const last = n === ns[ns.length - 1];
      const row = await measure(
        server,
        path,
        n,
        flags.chromium! && path.startsWith("native") && last,
      );
      if (!row) break;
      rows.push(row);
      console.log(
        `${path.padEnd(7)} ${String(n).padStart(4)} ${String(row.connected).padStart(5)}` +
          `  ${fmt(row.cpuPct).padStart(9)} %  ${fmt(row.usPerPacketViewer, 2).padStart(12)}` +
          `  ${fmt(row.lossPct, 3).padStart(7)}  ${String(row.reordered).padStart(9)}` +
          `  ${fmt(row.rssMiB, 0).padStart(7)}  ${fmt(row.viewersPerCore, 0).padStart(12)}` +
          `  ${fmt(row.packetsPerViewerS, 0).padStart(12)}  ${
            fmt(row.mbitPerViewer, 2).padStart(13)
          }` +
          `  ${`${fmt(row.latencyP50Ms, 1)}/${fmt(row.latencyP99Ms, 1)}`.padEnd(18)}` +
          `  ${fmt(row.machineIdlePct, 0)} %`,
      );
      if (row.lossPct > 5 || row.cpuPct > 95) break; // saturated: larger N only hurts
    }
  } finally {
    publisher.kill("SIGTERM");
    await publisher.status;
    await server.stop();
  }
}

// A row counts only when the machine kept up: every viewer got the whole stream (on a
// 2-core box the receivers and ffmpeg run out of CPU before a fast server does).
const fullRate = Math.max(...rows.map((r) => r.packetsPerViewerS));
const clean = (r: Row) => r.lossPct < 0.1 && r.packetsPerViewerS >= 0.95 * fullRate;
const at = (path: string, n: number) => rows.find((r) => r.path === path && r.n === n);
for (const n of new Set(rows.map((r) => r.n))) {
  const w = at("werift", n), f = at(runs[1]?.[0] ?? "native", n);
  if (w && f && clean(w) && clean(f)) {
    console.log(
      `N=${n}: werift ${fmt(w.usPerPacketViewer, 2)} µs vs native ${
        fmt(f.usPerPacketViewer, 2)
      } µs` +
        ` per packet per viewer: ${fmt(w.usPerPacketViewer / f.usPerPacketViewer, 1)}× less CPU`,
    );
  }
}
for (const r of rows.filter((r) => r.lossPct < 0.1 && !clean(r))) {
  console.log(
    `${r.path} N=${r.n}: the stream reached viewers at ${fmt(r.mbitPerViewer, 2)} Mbit/s: this ` +
      `machine could not feed the receivers (or ffmpeg) in real time; not counted`,
  );
}
// The latency goal (p50 ≤ 2 ms, p99 ≤ 10 ms) and, per native run, the largest N meeting it.
for (const [path] of runs.slice(1)) {
  const met = rows.filter((r) =>
    r.path === path && clean(r) && (r.latencyP50Ms ?? Infinity) <= 2 &&
    (r.latencyP99Ms ?? Infinity) <= 10
  ).sort((a, b) => b.n - a.n)[0];
  console.log(
    `${path}: largest N with fan-out latency p50 ≤ 2 ms and p99 ≤ 10 ms: ${met ? met.n : "none"}`,
  );
}
for (const path of runs.map(([path]) => path)) {
  const best = rows.filter((r) => r.path === path && clean(r)).sort((a, b) => b.n - a.n)[0];
  if (best) {
    console.log(
      `${path}: largest N with < 0.1 % loss at the full rate: ${best.n} (server ` +
        `${fmt(best.cpuPct)} % of a core → ${fmt(best.viewersPerCore, 0)} viewers per core)`,
    );
  }
}
