// Drives Debian's Chromium through playwright-core for the Deno tests: a line-based
// JSON protocol on stdin/stdout so a Deno test can open viewers, read their stats,
// take screenshots and sample pixels while it controls publishers.
//   → {"id":1,"cmd":"open","base":"http://127.0.0.1:8080","room":"r","viewer":"a"}
//   → {"id":2,"cmd":"stats","viewer":"a"}       ← {"id":2,"result":{...}}
//   → {"id":3,"cmd":"screenshot","viewer":"a","path":"/tmp/x.png"}
//   → {"id":4,"cmd":"pixels","viewer":"a","points":[[x,y],...]}  (in video pixels)
//   → {"id":5,"cmd":"eval","viewer":"a","js":"..."} / {"cmd":"close","viewer":"a"} / {"cmd":"quit"}
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const viewerJs = fs.readFileSync(path.join(here, "ws_viewer.js"), "utf8");
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sluice-chromium-"));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    ...(process.env.CHROMIUM_EXTRA_ARGS ? process.env.CHROMIUM_EXTRA_ARGS.split(" ") : []),
  ],
  viewport: { width: 800, height: 600 },
});
const pages = new Map();
const reply = (m) => process.stdout.write(JSON.stringify(m) + "\n");

async function run(m) {
  switch (m.cmd) {
    case "open": {
      const page = await ctx.newPage();
      page.on(
        "console",
        (msg) => process.stderr.write(`[page ${m.viewer}] ${msg.text()}\n`),
      );
      await page.goto(m.base + "/healthz");
      await page.setContent(
        `<!doctype html><html><body style="margin:0;background:#000">
        <video id="v" autoplay muted playsinline style="width:640px;height:360px"></video></body></html>`,
      );
      await page.addScriptTag({ content: viewerJs });
      await page.evaluate(([base, room]) => {
        globalThis.viewer = globalThis.sluiceViewer(
          base,
          room,
          document.getElementById("v"),
        );
      }, [m.base, m.room]);
      pages.set(m.viewer, page);
      return true;
    }
    case "goto": {
      let page = pages.get(m.viewer);
      if (!page) {
        page = await ctx.newPage();
        page.on(
          "console",
          (msg) => process.stderr.write(`[page ${m.viewer}] ${msg.text()}\n`),
        );
        if (m.viewport) await page.setViewportSize(m.viewport);
        pages.set(m.viewer, page);
      }
      await page.goto(m.url);
      return true;
    }
    case "click":
      await pages.get(m.viewer).click(m.selector, { timeout: 10000 });
      return true;
    case "waitFor":
      await pages.get(m.viewer).waitForSelector(m.selector, {
        timeout: m.timeout ?? 15000,
      });
      return true;
    case "shot":
      await pages.get(m.viewer).screenshot({
        path: m.path,
        fullPage: !!m.fullPage,
      });
      return m.path;
    case "stats": {
      const page = pages.get(m.viewer);
      return await page.evaluate(async () => ({
        ...(await globalThis.viewer.stats()),
        states: globalThis.viewer.states,
        errors: globalThis.viewer.errors,
        closed: globalThis.viewer.closed,
        firstFrameMs: globalThis.viewer.firstFrameMs,
        answerMs: globalThis.viewer.answerMs,
        videoWidth: document.getElementById("v").videoWidth,
        videoHeight: document.getElementById("v").videoHeight,
        currentTime: document.getElementById("v").currentTime,
      }));
    }
    case "screenshot": {
      await pages.get(m.viewer).locator("#v").screenshot({ path: m.path });
      return m.path;
    }
    case "pixels": {
      return await pages.get(m.viewer).evaluate((points) => {
        const v = document.getElementById("v");
        const c = document.createElement("canvas");
        c.width = v.videoWidth;
        c.height = v.videoHeight;
        const g = c.getContext("2d");
        g.drawImage(v, 0, 0);
        return points.map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
      }, m.points);
    }
    case "eval":
      return await pages.get(m.viewer).evaluate(m.js);
    case "close": {
      const page = pages.get(m.viewer);
      await page.evaluate(() => globalThis.viewer && globalThis.viewer.close())
        .catch(() => {});
      await page.close();
      pages.delete(m.viewer);
      return true;
    }
    case "quit":
      await ctx.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
      reply({ id: m.id, result: true });
      process.exit(0);
  }
  throw new Error(`unknown command ${m.cmd}`);
}

reply({ ready: true });
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let m;
  try {
    m = JSON.parse(line);
    reply({ id: m.id, result: await run(m) });
  } catch (err) {
    reply({ id: m?.id, error: String(err?.stack ?? err) });
  }
});
rl.on("close", async () => {
  await ctx.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(0);
});
