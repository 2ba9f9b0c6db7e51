/**
 * Recording TCP proxy for RTMP fixtures: listens on a port, forwards one client
 * connection to the real server both ways, and writes what the client sent (the
 * handshake included) to a file. It serves a single connection, then exits.
 *
 * ```sh
 * deno run -A tests/support/record_rtmp.ts --target 127.0.0.1:1935 \
 *   --out tests/fixtures/ffmpeg-publish-session.bin [--port 0]
 * ```
 *
 * It prints `proxy listening port=<port>` on stdout once it accepts connections.
 *
 * @module
 */

/** Options of {@linkcode recordOneSession}. */
export interface RecordOptions {
  /** Port to listen on; 0 picks a free one. */
  readonly port: number;
  readonly targetHost: string;
  readonly targetPort: number;
  /** Called with the bound port once listening. */
  readonly onListen?: (port: number) => void;
}

/** Copies `from` to `to`, handing each read to `tap`; half-closes `to` at the end. */
async function pipe(
  from: Deno.Conn,
  to: Deno.TcpConn,
  tap?: (bytes: Uint8Array) => void,
): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) break;
      const bytes = buf.slice(0, n);
      tap?.(bytes);
      let offset = 0;
      while (offset < n) offset += await to.write(bytes.subarray(offset));
    }
  } catch {
    // Either side went away: the session is over.
  }
  try {
    await to.closeWrite();
  } catch { /* already closed */ }
}

/**
 * Accepts one connection, proxies it to the target until both directions end, and
 * returns every byte the client sent, in order.
 */
export async function recordOneSession(
  options: RecordOptions,
): Promise<Uint8Array> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: options.port });
  options.onListen?.((listener.addr as Deno.NetAddr).port);
  const client = await listener.accept();
  listener.close();
  const server = await Deno.connect({
    hostname: options.targetHost,
    port: options.targetPort,
  });
  const parts: Uint8Array[] = [];
  await Promise.all([
    pipe(client, server, (bytes) => parts.push(bytes)),
    pipe(server, client),
  ]);
  client.close();
  server.close();
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

if (import.meta.main) {
  const target = flag(Deno.args, "target");
  const out = flag(Deno.args, "out");
  if (!target || !out) {
    console.error(
      "usage: record_rtmp.ts --target HOST:PORT --out FILE [--port N]",
    );
    Deno.exit(2);
  }
  const colon = target.lastIndexOf(":");
  const bytes = await recordOneSession({
    port: Number(flag(Deno.args, "port") ?? "0"),
    targetHost: target.slice(0, colon),
    targetPort: Number(target.slice(colon + 1)),
    onListen: (port) => console.log(`proxy listening port=${port}`),
  });
  await Deno.writeFile(out, bytes);
  console.log(`recorded ${bytes.length} client bytes to ${out}`);
}
