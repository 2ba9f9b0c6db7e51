/**
 * Deno side of tests/support/browser.mjs: a headless Chromium (playwright-core on
 * Node) the test drives with JSON lines.
 *
 * @module
 */
import { waitFor } from "./server.ts";

// deno-lint-ignore no-explicit-any
export type Json = any;

/** A running Chromium with named viewer pages. */
export interface Browser {
  open(base: string, room: string, viewer: string): Promise<void>;
  stats(viewer: string): Promise<Json>;
  screenshot(viewer: string, path: string): Promise<void>;
  pixels(viewer: string, points: [number, number][]): Promise<number[][]>;
  close(viewer: string): Promise<void>;
  /** Opens (or navigates) a named page to a URL. */
  goto(
    viewer: string,
    url: string,
    viewport?: { width: number; height: number },
  ): Promise<void>;
  /** Clicks the element matching a CSS selector. */
  click(viewer: string, selector: string): Promise<void>;
  /** Waits until a CSS selector matches. */
  waitFor(viewer: string, selector: string, timeoutMs?: number): Promise<void>;
  /** Screenshot of the whole page. */
  shot(viewer: string, path: string, fullPage?: boolean): Promise<void>;
  /** Evaluates an expression in a viewer's page. */
  eval(viewer: string, js: string): Promise<Json>;
  quit(): Promise<void>;
  /** What the pages logged. */
  log(): string;
}

/**
 * Waits until the demo player (`window.sluicePlayer`) on `page` has decoded more than
 * `frames` frames; returns the player's state (with its `stats`).
 */
export function playerDecoded(
  browser: Browser,
  page: string,
  frames: number,
  what: string,
  timeoutMs = 15_000,
): Promise<Json> {
  return waitFor(
    async () => {
      const p = await browser.eval(page, "window.sluicePlayer");
      return p?.stats?.framesDecoded > frames ? p : undefined;
    },
    timeoutMs,
    what,
  );
}

/** Starts Chromium; call quit() in a finally. */
export async function startBrowser(): Promise<Browser> {
  const dir = new URL(".", import.meta.url).pathname;
  const child = new Deno.Command("node", {
    args: [dir + "browser.mjs"],
    cwd: dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const pending = new Map<
    number,
    { resolve: (v: Json) => void; reject: (e: Error) => void }
  >();
  let nextId = 1;
  let errText = "";
  let ready: () => void = () => {};
  const readyP = new Promise<void>((r) => ready = r);
  (async () => {
    const d = new TextDecoder();
    for await (const c of child.stderr) {
      errText = (errText + d.decode(c)).slice(-4 * 1024 * 1024);
    }
  })();
  (async () => {
    const d = new TextDecoder();
    let buf = "";
    for await (const c of child.stdout) {
      buf += d.decode(c, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const m = JSON.parse(line);
        if (m.ready) ready();
        const p = pending.get(m.id);
        if (!p) continue;
        pending.delete(m.id);
        if (m.error) p.reject(new Error(m.error));
        else p.resolve(m.result);
      }
    }
    for (const p of pending.values()) {
      p.reject(new Error(`browser exited:\n${errText}`));
    }
  })();
  const status = child.status;
  await Promise.race([
    readyP,
    status.then(() => {
      throw new Error(`browser failed to start:\n${errText}`);
    }),
  ]);
  const call = (
    m: Record<string, unknown>,
    timeoutMs = 30_000,
  ): Promise<Json> => {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`browser ${m.cmd} timed out\n${errText}`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      writer.write(
        new TextEncoder().encode(JSON.stringify({ ...m, id }) + "\n"),
      ).catch(reject);
    });
  };
  return {
    open: (base, room, viewer) => call({ cmd: "open", base, room, viewer }),
    stats: (viewer) => call({ cmd: "stats", viewer }),
    screenshot: (viewer, path) => call({ cmd: "screenshot", viewer, path }),
    pixels: (viewer, points) => call({ cmd: "pixels", viewer, points }),
    close: (viewer) => call({ cmd: "close", viewer }),
    eval: (viewer, js) => call({ cmd: "eval", viewer, js }),
    goto: (viewer, url, viewport) => call({ cmd: "goto", viewer, url, viewport }),
    click: (viewer, selector) => call({ cmd: "click", viewer, selector }),
    waitFor: (viewer, selector, timeoutMs) =>
      call(
        { cmd: "waitFor", viewer, selector, timeout: timeoutMs },
        (timeoutMs ?? 15000) + 5000,
      ),
    shot: (viewer, path, fullPage) => call({ cmd: "shot", viewer, path, fullPage }),
    log: () => errText,
    async quit() {
      await call({ cmd: "quit" }, 10_000).catch(() => {});
      await writer.close().catch(() => {});
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      await status;
      clearTimeout(killer);
    },
  };
}
