/**
 * Test harness: runs the real `main.ts` as a child process on free ports, reads the
 * `listening rtmp=<port> http=<port>` line, keeps its log, and stops it with SIGTERM.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);

/** A running server under test. */
export interface TestServer {
  readonly rtmpPort: number;
  readonly httpPort: number;
  readonly rtmpUrl: string;
  readonly httpUrl: string;
  /** Everything the server logged so far. */
  log(): string;
  /** Waits until the log matches `pattern` (or throws after `timeoutMs`). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** GET a JSON API path. */
  api<T = unknown>(path: string): Promise<T>;
  /** SIGTERM, then wait; returns the exit code. */
  stop(): Promise<number>;
  /** The `--data-dir` of this run. */
  readonly dataDir: string;
  /** The server's process id (for CPU and memory figures). */
  readonly pid: number;
  /** SIGKILL (no graceful stop), then wait; returns the exit code. */
  kill(): Promise<number>;
}

/** Starts `main.ts` with the given extra flags on ports 0. */
export async function startTestServer(
  flags: string[] = [],
  options: {
    cwd?: string;
    env?: Record<string, string>;
    /** Use this data dir (e.g. of a server that was killed) and leave it in place on stop. */
    dataDir?: string;
  } = {},
): Promise<TestServer> {
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ??
    await Deno.makeTempDir({ prefix: "sluice-test-data-" });
  const removeDataDir = () =>
    ownDataDir ? Deno.remove(dataDir, { recursive: true }).catch(() => {}) : Promise.resolve();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-ffi",
      "--allow-env",
      // The same permissions as `deno task start` (plus this run's data dir).
      "--allow-sys=networkInterfaces",
      "--allow-read",
      `--allow-write=${dataDir}`,
      new URL("main.ts", ROOT).pathname,
      "--host",
      "127.0.0.1",
      "--rtmp-port",
      "0",
      "--http-port",
      "0",
      "--data-dir",
      dataDir,
      ...flags,
    ],
    cwd: options.cwd ?? ROOT.pathname,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let text = "";
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      for (const w of waiters) w();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);

  const waitForLog = (pattern: RegExp, timeoutMs = 15_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = text.match(pattern);
        if (m) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `server log did not match ${pattern} within ${timeoutMs} ms:\n${text}`,
          ),
        );
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    for (const w of waiters) w();
    return s;
  });
  let m: RegExpMatchArray;
  try {
    m = await Promise.race([
      waitForLog(/listening rtmp=(\d+) http=(\d+)/, 20_000),
      status.then((s) => {
        throw new Error(
          `server exited with ${s.code} before listening:\n${text}`,
        );
      }),
    ]);
  } catch (err) {
    if (!exited) child.kill("SIGKILL");
    await status;
    await pumps;
    await removeDataDir();
    throw err;
  }
  const rtmpPort = Number(m[1]);
  const httpPort = Number(m[2]);
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  return {
    pid: child.pid,
    rtmpPort,
    httpPort,
    rtmpUrl: `rtmp://127.0.0.1:${rtmpPort}/live`,
    httpUrl,
    log: () => text,
    waitForLog,
    async api<T>(path: string): Promise<T> {
      const res = await fetch(httpUrl + path);
      const body = await res.json();
      if (!res.ok) {
        throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(body)}`);
      }
      return body as T;
    },
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const killer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, 12_000);
      const s = await status;
      clearTimeout(killer);
      await pumps;
      await removeDataDir();
      return s.code;
    },
    dataDir,
    async kill() {
      if (!exited) child.kill("SIGKILL");
      const s = await status;
      await pumps;
      await removeDataDir();
      return s.code;
    },
  };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  fn: () =>
    | Promise<T | undefined | null | false>
    | T
    | undefined
    | null
    | false,
  timeoutMs = 10_000,
  what = "condition",
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`,
  );
}
