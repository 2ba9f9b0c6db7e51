/**
 * CLI entry: flags / `SLUICE_*` env / `--config` file → Config → startServer();
 * SIGINT and SIGTERM stop it gracefully.
 *
 * @module
 */
import { ConfigError, helpText, loadConfig, setupLogging, startServer } from "./mod.ts";

if (import.meta.main) {
  const args = Deno.args;
  if (args[0] === "healthcheck") {
    // For container HEALTHCHECKs (the runtime image has no shell or curl).
    const port = Deno.env.get("SLUICE_HTTP_PORT") || "8080";
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
        signal: AbortSignal.timeout(2000),
      });
      await res.body?.cancel();
      Deno.exit(res.ok ? 0 : 1);
    } catch {
      Deno.exit(1);
    }
  }
  if (args.includes("--help") || args.includes("-h")) {
    console.log(helpText());
    Deno.exit(0);
  }
  let config;
  try {
    config = loadConfig(args, (name) => Deno.env.get(name));
  } catch (err) {
    const message = err instanceof ConfigError ? err.message : (err as Error).message;
    console.error(`sluice: ${message}`);
    Deno.exit(2);
  }
  await setupLogging({ level: config.logLevel, format: config.logFormat });
  let server;
  try {
    server = await startServer(config);
  } catch (err) {
    console.error(`sluice: cannot start: ${(err as Error).message}`);
    Deno.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`sluice: ${signal}: stopping`);
    const force = setTimeout(() => Deno.exit(1), 10_000);
    await server.close();
    clearTimeout(force);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}
