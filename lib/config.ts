/**
 * The one Config type, its defaults, and parsing from flags, `SLUICE_*` env twins
 * and an optional JSON config file. Precedence: flag > env > file > default.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./log.ts";

/** An ICE server handed to werift and to browsers. */
export interface IceServer {
  readonly urls: string;
  readonly username?: string;
  readonly credential?: string;
}

/** Everything Sluice can be told at start. */
export interface Config {
  readonly host: string;
  readonly rtmpPort: number;
  readonly httpPort: number;
  readonly publicIps: readonly string[];
  readonly iceServers: readonly IceServer[];
  readonly udpPortMin: number;
  readonly udpPortMax: number;
  readonly dataDir: string;
  readonly adminToken?: string;
  /** HS256 secret of viewer tokens; unset: anyone may watch. */
  readonly viewerTokenSecret?: string;
  readonly publishKey?: string;
  readonly keysFile?: string;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** RTMP application name (`live`). */
  readonly rtmpApp: string;
  readonly maxConnections: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxMessageSize: number;
  readonly maxChunkSize: number;
  readonly maxRooms: number;
  readonly maxViewersPerRoom: number;
  /** Viewers on the whole server at once (0: no fixed cap; the measured load still applies). */
  readonly maxViewersTotal: number;
  /** Main-thread busy % of one core at which new viewers are refused (0: off). */
  readonly maxSendLoad: number;
  /** `auto` (rooms with B-frames), `always` or `never`. */
  readonly videoTranscode: "auto" | "always" | "never";
  /**
   * Transcoder build: `native` (Debian's FFmpeg + openh264 through FFI), `wasm`
   * (bundled WebAssembly, no system library), `auto` (native where it can run).
   */
  readonly transcodeEngine: "auto" | "native" | "wasm";
  /** Tallest source the WebAssembly transcoder takes (taller: passthrough with a warning). */
  readonly transcodeWasmMaxHeight: number;
  /**
   * Media send path: `native` (libsluice_fanout: SRTP + sendto in one FFI call per
   * packet), `werift` (werift's own sender), `auto` (native when the library loads).
   */
  readonly sendPath: "auto" | "native" | "werift";
  /** Native send threads (each owns a share of the viewers); 0 = one per core. */
  readonly sendThreads: number;
  /** Most rooms transcoded at once. */
  readonly maxTranscodes: number;
  /** Scale transcoded video taller than this down; 0 = never. */
  readonly transcodeMaxHeight: number;
  /** How long a room keeps its viewers after its publisher drops, waiting for a reconnect. */
  readonly reconnectGraceMs: number;
  /** Webhook receiver URLs subscribed to every room and event (`--webhook`). */
  readonly webhooks: readonly string[];
  /** JSON file of webhook subscriptions. */
  readonly webhooksFile?: string;
  /** Signing secret of config webhooks that name none (unset: generated in the data dir). */
  readonly webhookSecret?: string;
  /** Per-attempt webhook timeout. */
  readonly webhookTimeoutMs: number;
  /** Delay before the first webhook retry; doubles each time. */
  readonly webhookRetryBaseMs: number;
  /** Longest delay between two webhook attempts. */
  readonly webhookRetryMaxMs: number;
  /** Give up on a webhook event this long after it was queued. */
  readonly webhookRetryHorizonMs: number;
}

/** A bad flag, env or config value; the message names the flag. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

type Kind = "string" | "port" | "duration" | "size" | "count" | "count0" | "percent" | "list";

interface OptionSpec {
  readonly flag: string;
  readonly key: keyof Config | "config" | "iceServer" | "publicIp" | "udpPorts";
  readonly kind: Kind;
  readonly help: string;
  readonly default?: string;
  readonly choices?: readonly string[];
}

/** Every option, in `--help` order. */
export const OPTIONS: readonly OptionSpec[] = [
  { flag: "config", key: "config", kind: "string", help: "JSON file with any of these options" },
  { flag: "host", key: "host", kind: "string", default: "0.0.0.0", help: "address to bind" },
  { flag: "rtmp-port", key: "rtmpPort", kind: "port", default: "1935", help: "RTMP port (0: any)" },
  { flag: "http-port", key: "httpPort", kind: "port", default: "8080", help: "HTTP port (0: any)" },
  {
    flag: "public-ip",
    key: "publicIp",
    kind: "list",
    help: "IP to advertise as an ICE host candidate (repeatable)",
  },
  {
    flag: "ice-server",
    key: "iceServer",
    kind: "list",
    help: "STUN/TURN URL, credentials as turn://user:pass@host:port (repeatable)",
  },
  {
    flag: "udp-ports",
    key: "udpPorts",
    kind: "string",
    default: "0",
    help: "WebRTC UDP port range MIN-MAX, or 0 for any",
  },
  {
    flag: "data-dir",
    key: "dataDir",
    kind: "string",
    default: "./sluice-data",
    help: "durable state",
  },
  {
    flag: "admin-token",
    key: "adminToken",
    kind: "string",
    help: "Bearer token of the admin API (unset: loopback only)",
  },
  {
    flag: "viewer-token-secret",
    key: "viewerTokenSecret",
    kind: "string",
    help: "require viewer tokens (HS256 JWT with room and exp claims) signed with this",
  },
  {
    flag: "publish-key",
    key: "publishKey",
    kind: "string",
    help: "stream key every room requires (?key=)",
  },
  { flag: "keys-file", key: "keysFile", kind: "string", help: "JSON file {room: key}" },
  {
    flag: "log-level",
    key: "logLevel",
    kind: "string",
    default: "info",
    choices: LOG_LEVELS,
    help: "debug|info|warning|error",
  },
  {
    flag: "log-format",
    key: "logFormat",
    kind: "string",
    default: "text",
    choices: LOG_FORMATS,
    help: "text|json",
  },
  {
    flag: "max-connections",
    key: "maxConnections",
    kind: "count",
    default: "1000",
    help: "open RTMP connections",
  },
  {
    flag: "handshake-timeout",
    key: "handshakeTimeoutMs",
    kind: "duration",
    default: "10s",
    help: "RTMP handshake deadline",
  },
  {
    flag: "idle-timeout",
    key: "idleTimeoutMs",
    kind: "duration",
    default: "30s",
    help: "close an RTMP connection silent this long",
  },
  {
    flag: "max-message-size",
    key: "maxMessageSize",
    kind: "size",
    default: "16MiB",
    help: "largest RTMP message",
  },
  {
    flag: "max-chunk-size",
    key: "maxChunkSize",
    kind: "size",
    default: "2147483647",
    help: "largest RTMP Set Chunk Size",
  },
  { flag: "max-rooms", key: "maxRooms", kind: "count", default: "1000", help: "rooms at once" },
  {
    flag: "max-viewers",
    key: "maxViewersPerRoom",
    kind: "count",
    default: "500",
    help: "viewers per room",
  },
  {
    flag: "max-viewers-total",
    key: "maxViewersTotal",
    kind: "count0",
    default: "0",
    help: "viewers on the whole server (0: no fixed cap; --max-send-load still applies)",
  },
  {
    flag: "max-send-load",
    key: "maxSendLoad",
    kind: "percent",
    default: "85",
    help:
      "refuse new viewers (503, Retry-After) when the busiest send thread is this % busy (0: off)",
  },
  {
    flag: "video-transcode",
    key: "videoTranscode",
    kind: "string",
    default: "auto",
    choices: ["auto", "always", "never"],
    help: "transcode video for browsers: auto (rooms with B-frames), always, never",
  },
  {
    flag: "transcode-engine",
    key: "transcodeEngine",
    kind: "string",
    default: "auto",
    choices: ["auto", "native", "wasm"],
    help: "video transcoder: native (FFmpeg+openh264 via FFI), wasm (bundled, slower), auto",
  },
  {
    flag: "transcode-wasm-max-height",
    key: "transcodeWasmMaxHeight",
    kind: "port",
    default: "720",
    help: "tallest source the WebAssembly transcoder takes (taller: passthrough)",
  },
  {
    flag: "max-transcodes",
    key: "maxTranscodes",
    kind: "count",
    default: "2",
    help: "rooms transcoded at once (beyond: passthrough with a warning)",
  },
  {
    flag: "transcode-max-height",
    key: "transcodeMaxHeight",
    kind: "port",
    default: "0",
    help: "scale transcoded video taller than this down (0: never)",
  },
  {
    flag: "send-path",
    key: "sendPath",
    kind: "string",
    default: "auto",
    choices: ["auto", "native", "werift"],
    help: "media send path: native (SRTP+sendto via libsluice_fanout), werift, auto",
  },
  {
    flag: "send-threads",
    key: "sendThreads",
    kind: "count0",
    default: "0",
    help:
      "native send threads (≤ 16), each sending video to its share of the viewers (0: one per core)",
  },
  {
    flag: "reconnect-grace",
    key: "reconnectGraceMs",
    kind: "duration",
    default: "15s",
    help: "keep viewers this long for a publisher to come back",
  },
  {
    flag: "webhook",
    key: "webhooks",
    kind: "list",
    help: "webhook receiver URL for every room and event (repeatable)",
  },
  {
    flag: "webhooks-file",
    key: "webhooksFile",
    kind: "string",
    help: "JSON file: [{url, rooms?, events?, secret?, description?, id?}]",
  },
  {
    flag: "webhook-secret",
    key: "webhookSecret",
    kind: "string",
    help: "signing secret of config webhooks without one (unset: <data-dir>/webhook-secret)",
  },
  {
    flag: "webhook-timeout",
    key: "webhookTimeoutMs",
    kind: "duration",
    default: "10s",
    help: "webhook request timeout",
  },
  {
    flag: "webhook-retry-base",
    key: "webhookRetryBaseMs",
    kind: "duration",
    default: "1s",
    help: "first webhook retry delay (doubles each retry)",
  },
  {
    flag: "webhook-retry-max",
    key: "webhookRetryMaxMs",
    kind: "duration",
    default: "10m",
    help: "longest delay between webhook retries",
  },
  {
    flag: "webhook-retry-horizon",
    key: "webhookRetryHorizonMs",
    kind: "duration",
    default: "24h",
    help: "give up on a webhook event this long after it happened",
  },
];

/** Parses `10s`, `500ms`, `2m`, `1h` or plain milliseconds. */
export function parseDuration(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "ms"]!;
  return Math.round(Number(m[1]) * unit);
}

/** Parses `16MiB`, `64KiB`, `1GiB`, `1MB` or plain bytes. */
export function parseSize(value: string): number | undefined {
  const m = /^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i.exec(value.trim());
  if (!m) return undefined;
  const units: Record<string, number> = {
    b: 1,
    kb: 1e3,
    kib: 1024,
    mb: 1e6,
    mib: 1024 ** 2,
    gb: 1e9,
    gib: 1024 ** 3,
  };
  return Number(m[1]) * units[(m[2] ?? "b").toLowerCase()];
}

/** Parses `--ice-server`: `stun:host:port`, `turn:host?transport=udp`, or `turn://user:pass@host:port`. */
export function parseIceServer(value: string): IceServer | undefined {
  const m = /^(stuns?|turns?):(?:\/\/)?(?:([^:@/]*):([^@/]*)@)?([^\s@]+)$/.exec(value.trim());
  if (!m) return undefined;
  const [, scheme, user, pass, rest] = m;
  const server: IceServer = { urls: `${scheme}:${rest}` };
  return user !== undefined
    ? {
      ...server,
      username: decodeURIComponent(user),
      credential: decodeURIComponent(pass ?? ""),
    }
    : server;
}

function envName(flag: string): string {
  return `SLUICE_${flag.toUpperCase().replaceAll("-", "_")}`;
}

function fail(flag: string, expected: string, got: unknown): never {
  throw new ConfigError(`--${flag}: expected ${expected}, got ${JSON.stringify(got)}`);
}

const IP_RE = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]+)$/;

/** Reads flags (`args`), env (`env`) and the `--config` file (through `readFile`) into a Config. */
export function loadConfig(
  args: readonly string[],
  env: (name: string) => string | undefined = () => undefined,
  readFile: (path: string) => string = (p) => Deno.readTextFileSync(p),
): Config {
  let parsed: Record<string, string | string[] | undefined>;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries(
        OPTIONS.map((o) => [o.flag, { type: "string" as const, multiple: o.kind === "list" }]),
      ),
    }).values as Record<string, string | string[] | undefined>;
  } catch (err) {
    // node:util reports unknown flags and missing values as TypeErrors; callers expect
    // a ConfigError that starts with the flag.
    const message = (err as Error).message;
    const flag = /'(-[^' ]+)/.exec(message)?.[1];
    const code = (err as { code?: string }).code;
    if (flag && code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new ConfigError(`${flag}: unknown option (see --help)`);
    }
    if (flag && code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      throw new ConfigError(`${flag}: expected a value`);
    }
    throw new ConfigError(message);
  }

  const configPath = (parsed.config as string | undefined) ?? env(envName("config"));
  let file: Record<string, unknown> = {};
  if (configPath) {
    let text: string;
    try {
      text = readFile(configPath);
    } catch (err) {
      throw new ConfigError(`--config: cannot read ${configPath}: ${(err as Error).message}`);
    }
    try {
      file = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`--config: ${configPath} is not JSON: ${(err as Error).message}`);
    }
    if (!file || typeof file !== "object" || Array.isArray(file)) {
      fail("config", "a JSON object", file);
    }
    const known = new Set(OPTIONS.map((o) => o.flag));
    for (const key of Object.keys(file)) {
      if (!known.has(key)) {
        throw new ConfigError(`--config: unknown option "${key}" in ${configPath}`);
      }
    }
  }

  const raw = (o: OptionSpec): string | string[] | undefined => {
    const fromFlag = parsed[o.flag];
    if (fromFlag !== undefined && !(Array.isArray(fromFlag) && fromFlag.length === 0)) {
      return fromFlag;
    }
    const fromEnv = env(envName(o.flag));
    if (fromEnv !== undefined && fromEnv !== "") {
      return o.kind === "list" ? fromEnv.split(",").map((s) => s.trim()).filter(Boolean) : fromEnv;
    }
    const fromFile = file[o.flag];
    if (fromFile !== undefined) {
      if (o.kind === "list") {
        if (!Array.isArray(fromFile)) fail(o.flag, "an array in the config file", fromFile);
        return fromFile.map(String);
      }
      return String(fromFile);
    }
    return o.default;
  };

  const out: Record<string, unknown> = {};
  for (const o of OPTIONS) {
    if (o.key === "config") continue;
    const value = raw(o);
    if (value === undefined) continue;
    if (o.kind === "list") {
      out[o.key] = value;
      continue;
    }
    const v = value as string;
    if (o.choices && !o.choices.includes(v)) fail(o.flag, `one of ${o.choices.join("|")}`, v);
    switch (o.kind) {
      case "port": {
        const n = Number(v);
        if (!/^\d+$/.test(v) || n > 65535) fail(o.flag, "a port 0..65535", v);
        out[o.key] = n;
        break;
      }
      case "count": {
        const n = Number(v);
        if (!/^\d+$/.test(v) || n < 1) fail(o.flag, "a positive integer", v);
        out[o.key] = n;
        break;
      }
      case "count0": {
        const n = Number(v);
        if (!/^\d{1,9}$/.test(v)) fail(o.flag, "an integer 0 or more (0: off)", v);
        out[o.key] = n;
        break;
      }
      case "percent": {
        const n = Number(v);
        if (!/^\d{1,3}$/.test(v) || n > 100) fail(o.flag, "a percentage 0..100 (0: off)", v);
        out[o.key] = n;
        break;
      }
      case "duration": {
        const n = parseDuration(v);
        if (n === undefined || n <= 0) fail(o.flag, "a duration like 10s or 500ms", v);
        out[o.key] = n;
        break;
      }
      case "size": {
        const n = parseSize(v);
        if (n === undefined || n < 128 || n > 0x7fffffff) {
          fail(o.flag, "a size from 128 bytes to 2GiB, like 16MiB", v);
        }
        out[o.key] = n;
        break;
      }
      default:
        if (v === "") fail(o.flag, "a non-empty value", v);
        out[o.key] = v;
    }
  }

  if ((out.sendThreads as number) > 16) {
    fail("send-threads", "0 (one per core) to 16", String(out.sendThreads));
  }
  const publicIps = (out.publicIp as string[] | undefined) ?? [];
  for (const ip of publicIps) if (!IP_RE.test(ip)) fail("public-ip", "an IPv4 or IPv6 address", ip);
  const webhooks = (out.webhooks as string[] | undefined) ?? [];
  for (const url of webhooks) {
    if (!/^https?:\/\/[^/\s]+/i.test(url)) fail("webhook", "an http(s) URL", url);
  }
  const iceServers = ((out.iceServer as string[] | undefined) ?? []).map((s) =>
    parseIceServer(s) ?? fail("ice-server", "a stun:, stuns:, turn: or turns: URL", s)
  );
  const ports = out.udpPorts as string;
  let udpPortMin = 0;
  let udpPortMax = 0;
  if (ports !== "0") {
    const m = /^(\d+)-(\d+)$/.exec(ports);
    if (!m || Number(m[1]) < 1 || Number(m[2]) > 65535 || Number(m[1]) > Number(m[2])) {
      fail("udp-ports", "MIN-MAX within 1..65535, or 0", ports);
    }
    udpPortMin = Number(m[1]);
    udpPortMax = Number(m[2]);
  }
  delete out.publicIp;
  delete out.iceServer;
  delete out.udpPorts;
  return {
    ...out,
    publicIps,
    iceServers,
    udpPortMin,
    udpPortMax,
    webhooks,
    rtmpApp: "live",
  } as unknown as Config;
}

/** The defaults, as `startServer` uses them when given a partial Config. */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig([]), ...overrides };
}

/** The `--help` text: every option with its env twin and default. */
export function helpText(): string {
  const lines = [
    "Sluice: RTMP in, WebRTC out.",
    "",
    "Usage: sluice [options]",
    "",
    "Every option also reads SLUICE_<NAME> from the environment and a key of the same",
    "name in the --config JSON file. Precedence: flag, env, file, default.",
    "",
  ];
  for (const o of OPTIONS) {
    const left = `  --${o.flag}${o.kind === "list" ? " (repeatable)" : ""}`;
    const def = o.default !== undefined ? ` [default: ${o.default}]` : "";
    lines.push(`${left.padEnd(34)}${o.help}${def}`);
    lines.push(`${"".padEnd(34)}env ${envName(o.flag)}`);
  }
  lines.push("  --help                          this text");
  return lines.join("\n");
}
