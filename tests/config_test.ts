/**
 * Config: defaults, precedence (flag > env > file > default), list flags, ICE server
 * URLs, durations and sizes, and errors that name the flag; then the CLI itself.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig, OPTIONS } from "../lib/config.ts";
import { startTestServer } from "./support/server.ts";
import { RtmpTestClient } from "./support/rtmp_client.ts";

const ROOT = new URL("../", import.meta.url).pathname;

const noEnv = () => undefined;
const envOf = (vars: Record<string, string>) => (name: string) => vars[name];
const noFile = (path: string): string => {
  throw new Error(`unexpected read of ${path}`);
};
const fileOf = (files: Record<string, unknown>) => (path: string): string => {
  if (!(path in files)) throw new Error(`no such file ${path}`);
  const content = files[path];
  return typeof content === "string" ? content : JSON.stringify(content);
};

/** Asserts `fn` throws a ConfigError whose message starts with `prefix`. */
function assertConfigError(fn: () => unknown, prefix: string, also?: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    assert.ok(
      err.message.startsWith(prefix),
      `message ${JSON.stringify(err.message)} should start with ${JSON.stringify(prefix)}`,
    );
    if (also) assert.match(err.message, also);
    return true;
  });
}

Deno.test("config: defaults", () => {
  const c = loadConfig([], noEnv, noFile);
  assert.equal(c.rtmpPort, 1935);
  assert.equal(c.httpPort, 8080);
  assert.equal(c.host, "0.0.0.0");
  assert.equal(c.dataDir, "./sluice-data");
  assert.equal(c.logLevel, "info");
  assert.equal(c.logFormat, "text");
  assert.equal(c.rtmpApp, "live");
  assert.deepEqual(c.publicIps, []);
  assert.deepEqual(c.iceServers, []);
  assert.equal(c.publishKey, undefined);
  assert.equal(c.keysFile, undefined);
  assert.equal(c.adminToken, undefined);
  assert.equal(c.handshakeTimeoutMs, 10_000);
  assert.equal(c.idleTimeoutMs, 30_000);
  assert.equal(c.maxMessageSize, 16 * 1024 * 1024);
  assert.equal(c.maxChunkSize, 0x7fffffff);
  assert.equal(c.maxConnections, 1000);
  assert.equal(c.udpPortMin, 0);
  assert.equal(c.udpPortMax, 0);
});

Deno.test("config: flags override env override config file override defaults", () => {
  const files = fileOf({
    "/etc/sluice.json": {
      "rtmp-port": 1001,
      "http-port": 2001,
      "host": "10.0.0.1",
      "data-dir": "/var/lib/sluice",
      "public-ip": ["192.0.2.1"],
      "idle-timeout": "45s",
    },
  });
  const env = envOf({
    SLUICE_RTMP_PORT: "1002",
    SLUICE_HTTP_PORT: "2002",
    SLUICE_LOG_LEVEL: "debug",
  });
  const c = loadConfig(["--config", "/etc/sluice.json", "--rtmp-port", "1003"], env, files);
  assert.equal(c.rtmpPort, 1003, "flag beats env and file");
  assert.equal(c.httpPort, 2002, "env beats file");
  assert.equal(c.logLevel, "debug", "env beats default");
  assert.equal(c.host, "10.0.0.1", "file beats default");
  assert.equal(c.dataDir, "/var/lib/sluice");
  assert.deepEqual(c.publicIps, ["192.0.2.1"]);
  assert.equal(c.idleTimeoutMs, 45_000);
  assert.equal(c.handshakeTimeoutMs, 10_000, "default where nobody says otherwise");

  // The config file can come from the env twin too, and a flag still wins over it.
  const viaEnv = loadConfig(
    ["--host", "127.0.0.1"],
    envOf({ SLUICE_CONFIG: "/etc/sluice.json" }),
    files,
  );
  assert.equal(viaEnv.rtmpPort, 1001);
  assert.equal(viaEnv.host, "127.0.0.1");

  // Every option has an env twin.
  const all = loadConfig(
    [],
    envOf({
      SLUICE_DATA_DIR: "/d",
      SLUICE_ADMIN_TOKEN: "tok",
      SLUICE_PUBLISH_KEY: "pk",
      SLUICE_LOG_FORMAT: "json",
      SLUICE_MAX_MESSAGE_SIZE: "2MiB",
    }),
    noFile,
  );
  assert.equal(all.dataDir, "/d");
  assert.equal(all.adminToken, "tok");
  assert.equal(all.publishKey, "pk");
  assert.equal(all.logFormat, "json");
  assert.equal(all.maxMessageSize, 2 * 1024 * 1024);
});

Deno.test("config: --ice-server and --public-ip are repeatable", () => {
  const c = loadConfig(
    [
      "--public-ip",
      "203.0.113.7",
      "--ice-server",
      "stun:stun.example.org:19302",
      "--public-ip",
      "2001:db8::1",
      "--ice-server",
      "turn://user:pa%40ss@turn.example.org:3478?transport=udp",
    ],
    noEnv,
    noFile,
  );
  assert.deepEqual(c.publicIps, ["203.0.113.7", "2001:db8::1"]);
  assert.deepEqual(c.iceServers, [
    { urls: "stun:stun.example.org:19302" },
    {
      urls: "turn:turn.example.org:3478?transport=udp",
      username: "user",
      credential: "pa@ss",
    },
  ]);

  const env = loadConfig(
    [],
    envOf({ SLUICE_PUBLIC_IP: "198.51.100.1, 198.51.100.2", SLUICE_ICE_SERVER: "stun:a:1" }),
    noFile,
  );
  assert.deepEqual(env.publicIps, ["198.51.100.1", "198.51.100.2"]);
  assert.deepEqual(env.iceServers, [{ urls: "stun:a:1" }]);
});

Deno.test("config: ICE server URL with credentials", () => {
  const c = loadConfig(
    ["--ice-server", "turn://user:pass@host:3478?transport=udp"],
    noEnv,
    noFile,
  );
  assert.deepEqual(c.iceServers, [
    { urls: "turn:host:3478?transport=udp", username: "user", credential: "pass" },
  ]);
  const turns = loadConfig(["--ice-server", "turns:relay.example.org:5349"], noEnv, noFile);
  assert.deepEqual(turns.iceServers, [{ urls: "turns:relay.example.org:5349" }]);
});

Deno.test("config: durations and sizes", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["10s", 10_000],
    ["1.5s", 1500],
    [
      "2m",
      120_000,
    ],
    ["1h", 3_600_000],
    ["250", 250],
  ];
  for (const [text, ms] of cases) {
    assert.equal(loadConfig(["--idle-timeout", text], noEnv, noFile).idleTimeoutMs, ms, text);
  }
  const sizes: [string, number][] = [
    ["1MiB", 1024 * 1024],
    ["64KiB", 64 * 1024],
    ["1MB", 1_000_000],
    ["4096", 4096],
    ["16mib", 16 * 1024 * 1024],
  ];
  for (const [text, bytes] of sizes) {
    assert.equal(
      loadConfig(["--max-message-size", text], noEnv, noFile).maxMessageSize,
      bytes,
      text,
    );
  }
  const c = loadConfig(["--handshake-timeout", "2s", "--max-chunk-size", "64KiB"], noEnv, noFile);
  assert.equal(c.handshakeTimeoutMs, 2000);
  assert.equal(c.maxChunkSize, 65536);
  const udp = loadConfig(["--udp-ports", "40000-40100"], noEnv, noFile);
  assert.equal(udp.udpPortMin, 40000);
  assert.equal(udp.udpPortMax, 40100);
});

Deno.test("config: invalid values throw a ConfigError that starts with the flag", () => {
  const bad: [string[], string][] = [
    [["--rtmp-port", "nope"], "--rtmp-port: expected "],
    [["--rtmp-port", "70000"], "--rtmp-port: expected "],
    [["--http-port", "-1"], "--http-port: expected "],
    [["--idle-timeout", "10x"], "--idle-timeout: expected "],
    [["--handshake-timeout", "0"], "--handshake-timeout: expected "],
    [["--max-message-size", "12"], "--max-message-size: expected "],
    [["--max-message-size", "3GiB"], "--max-message-size: expected "],
    [["--max-connections", "0"], "--max-connections: expected "],
    [["--log-level", "loud"], "--log-level: expected "],
    [["--log-format", "xml"], "--log-format: expected "],
    [["--public-ip", "not-an-ip"], "--public-ip: expected "],
    [["--ice-server", "http://example.org"], "--ice-server: expected "],
    [["--udp-ports", "5000-4000"], "--udp-ports: expected "],
    [["--host", ""], "--host: expected "],
    [["--send-threads", "17"], "--send-threads: expected "],
    [["--transcode-engine", "gpu"], "--transcode-engine: expected "],
    [["--transcode-wasm-max-height", "tall"], "--transcode-wasm-max-height: expected "],
  ];
  for (const [args, prefix] of bad) {
    assertConfigError(() => loadConfig(args, noEnv, noFile), prefix);
  }
  // A bad env twin or file value is reported under its flag name too.
  assertConfigError(
    () => loadConfig([], envOf({ SLUICE_HTTP_PORT: "http" }), noFile),
    "--http-port: expected ",
    /"http"/,
  );
  assertConfigError(
    () => loadConfig(["--config", "c.json"], noEnv, fileOf({ "c.json": { "rtmp-port": "x" } })),
    "--rtmp-port: expected ",
  );
  assertConfigError(
    () =>
      loadConfig(["--config", "c.json"], noEnv, fileOf({ "c.json": { "public-ip": "1.2.3.4" } })),
    "--public-ip: expected ",
  );
});

Deno.test("config: send threads and the video transcoder engine, by flag and env", () => {
  const d = loadConfig([], noEnv, noFile);
  assert.equal(d.sendThreads, 0, "one per core");
  assert.equal(d.transcodeEngine, "auto");
  assert.equal(d.transcodeWasmMaxHeight, 720);
  const c = loadConfig(
    ["--send-threads", "4", "--transcode-wasm-max-height", "480"],
    envOf({ SLUICE_TRANSCODE_ENGINE: "wasm", SLUICE_SEND_THREADS: "2" }),
    noFile,
  );
  assert.equal(c.sendThreads, 4);
  assert.equal(c.transcodeEngine, "wasm");
  assert.equal(c.transcodeWasmMaxHeight, 480);
});

Deno.test("config: unknown flags, missing values and stray arguments throw", () => {
  assertConfigError(() => loadConfig(["--rtmp-prot", "1"], noEnv, noFile), "--rtmp-prot:");
  assertConfigError(() => loadConfig(["--rtmp-port"], noEnv, noFile), "--rtmp-port:");
  assert.throws(() => loadConfig(["serve"], noEnv, noFile), ConfigError);
});

Deno.test("config: the config file must exist, be a JSON object, and hold known keys only", () => {
  assertConfigError(
    () => loadConfig(["--config", "c.json"], noEnv, fileOf({ "c.json": { "rtmp-prot": 1 } })),
    "--config:",
    /unknown option "rtmp-prot"/,
  );
  assertConfigError(
    () => loadConfig(["--config", "c.json"], noEnv, fileOf({ "c.json": "{not json" })),
    "--config:",
  );
  assertConfigError(
    () => loadConfig(["--config", "c.json"], noEnv, fileOf({ "c.json": [1, 2] })),
    "--config:",
  );
  assertConfigError(() => loadConfig(["--config", "missing.json"], noEnv, fileOf({})), "--config:");
});

async function runMain(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${ROOT}main.ts`, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("cli: a bad flag exits 2 with one line naming it", async () => {
  const { code, stdout, stderr } = await runMain(["--rtmp-port", "nope"]);
  assert.equal(code, 2);
  assert.equal(stdout, "");
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0], /--rtmp-port/);
  assert.match(lines[0], /nope/);

  const unknown = await runMain(["--no-such-flag"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr.trim().split("\n").length, 1, unknown.stderr);
  assert.match(unknown.stderr, /--no-such-flag/);
});

Deno.test("cli: --help prints every flag and exits 0", async () => {
  const { code, stdout } = await runMain(["--help"]);
  assert.equal(code, 0);
  for (const o of OPTIONS) {
    assert.match(stdout, new RegExp(`--${o.flag}\\b`), `--help lacks --${o.flag}`);
    const env = `SLUICE_${o.flag.toUpperCase().replaceAll("-", "_")}`;
    assert.ok(stdout.includes(env), `--help lacks ${env}`);
  }
});

Deno.test(
  "cli: SIGTERM stops a running server with exit 0",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const server = await startTestServer();
    // An open RTMP connection must not hold the shutdown up.
    const client = await RtmpTestClient.connect(server.rtmpPort);
    try {
      const started = Date.now();
      assert.equal(await server.stop(), 0);
      assert.ok(Date.now() - started < 10_000, "stopped promptly");
      assert.match(server.log(), /SIGTERM: stopping/);
      assert.ok(await client.closedWithin(1000), "the RTMP connection was closed");
    } finally {
      client.close();
    }
  },
);
