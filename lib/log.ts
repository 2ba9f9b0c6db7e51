/**
 * Structured logging: logtape, one line per record on stderr, as text for a terminal
 * or JSON lines for a collector. Quiet by default (info and above; per-packet
 * detail only at debug).
 *
 * @module
 */
import {
  configure,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
/** A `--log-level` value. */
export type LogLevel = typeof LOG_LEVELS[number];
/** Output formats accepted by `--log-format`. */
export const LOG_FORMATS = ["text", "json"] as const;
/** A `--log-format` value. */
export type LogFormat = typeof LOG_FORMATS[number];

const encoder = new TextEncoder();

function writeAllSync(bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stderr.writeSync(bytes.subarray(offset));
}

/** A sink writing each formatted record synchronously to stderr, so no line is lost on exit. */
function stderrSink(format: (record: LogRecord) => string): Sink {
  return (record) => writeAllSync(encoder.encode(format(record)));
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Configures the `sluice` logger hierarchy; call once at start (again to change it). */
export async function setupLogging(options: { level: LogLevel; format: LogFormat }): Promise<void> {
  const formatter = options.format === "json" ? getJsonLinesFormatter() : getTextFormatter({
    timestamp: "time",
    level: "ABBR",
    category: ".",
    // Plain strings read better in a terminal without quotes; the rest as JSON.
    value: (v) => typeof v === "string" ? v : safeJson(v),
  });
  await configure({
    reset: true,
    sinks: { stderr: stderrSink(formatter) },
    loggers: [
      { category: ["sluice"], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Removes the logging configuration (tests, embedding). */
export async function teardownLogging(): Promise<void> {
  await reset();
}

/** The logger of one stage, e.g. `logger("rtmp")` → category `sluice.rtmp`. */
export function logger(...category: string[]): Logger {
  return getLogger(["sluice", ...category]);
}

export type { Logger };
