/**
 * The RTMP listener: accepts connections up to a bound and runs one
 * {@linkcode RtmpSession} per connection.
 *
 * @module
 */
import { type PublishEndReason, RtmpSession, type RtmpSessionOptions } from "./session.ts";
import type { Logger } from "../log.ts";

/** Options of {@linkcode startRtmpServer}. */
export interface RtmpServerOptions extends RtmpSessionOptions {
  readonly hostname: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly maxConnections: number;
  readonly log: Logger;
}

/** A running RTMP listener. */
export interface RtmpServer {
  /** The bound port (the chosen one when 0 was asked). */
  readonly port: number;
  /** Open connections. */
  readonly connections: number;
  /** Stops accepting, closes every connection with `reason`, and waits for them. */
  close(reason?: PublishEndReason): Promise<void>;
}

/** Binds the RTMP port and starts accepting. */
export function startRtmpServer(options: RtmpServerOptions): RtmpServer {
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
    transport: "tcp",
  });
  const sessions = new Set<RtmpSession>();
  const running = new Set<Promise<void>>();
  let nextId = 1;
  let closing = false;

  const acceptLoop = (async () => {
    while (!closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (closing || err instanceof Deno.errors.BadResource) return;
        options.log.error("rtmp accept failed: {error}", { error: String(err) });
        continue;
      }
      if (sessions.size >= options.maxConnections) {
        const addr = conn.remoteAddr as Deno.NetAddr;
        options.log.warn("rtmp connection from {remote} refused: {max} connections open", {
          remote: addr.hostname,
          max: options.maxConnections,
        });
        conn.close();
        continue;
      }
      try {
        conn.setNoDelay(true);
      } catch { /* not fatal */ }
      const session = new RtmpSession(conn, nextId++, options, options.log);
      sessions.add(session);
      const done = session.run().finally(() => {
        sessions.delete(session);
        running.delete(done);
      });
      running.add(done);
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return sessions.size;
    },
    async close(reason: PublishEndReason = "shutdown") {
      closing = true;
      listener.close();
      await acceptLoop;
      for (const session of sessions) session.close(reason);
      await Promise.all([...running]);
    },
  };
}
