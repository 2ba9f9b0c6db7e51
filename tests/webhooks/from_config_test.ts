/**
 * Webhooks from the config: the flags, `--webhooks-file`, stable ids across restarts,
 * the shared secret kept in the data dir, and errors that name the option.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../lib/config.ts";
import { configSubscriptions, openWebhooks, type WebhookConfig } from "../../lib/webhooks/mod.ts";
import { quietLog } from "./fakes.ts";

const noEnv = () => undefined;

Deno.test("config: webhook flags and their defaults", () => {
  const d = loadConfig([], noEnv);
  assert.deepEqual(d.webhooks, []);
  assert.equal(d.webhooksFile, undefined);
  assert.equal(d.webhookSecret, undefined);
  assert.equal(d.webhookTimeoutMs, 10_000);
  assert.equal(d.webhookRetryBaseMs, 1000);
  assert.equal(d.webhookRetryMaxMs, 600_000);
  assert.equal(d.webhookRetryHorizonMs, 86_400_000);
  const c = loadConfig([
    "--webhook",
    "http://a.test/x",
    "--webhook",
    "https://b.test/y",
    "--webhooks-file",
    "hooks.json",
    "--webhook-timeout",
    "2s",
    "--webhook-retry-base",
    "200ms",
    "--webhook-retry-max",
    "1s",
    "--webhook-retry-horizon",
    "1h",
  ], noEnv);
  assert.deepEqual(c.webhooks, ["http://a.test/x", "https://b.test/y"]);
  assert.equal(c.webhooksFile, "hooks.json");
  assert.equal(c.webhookTimeoutMs, 2000);
  assert.equal(c.webhookRetryBaseMs, 200);
  assert.equal(c.webhookRetryMaxMs, 1000);
  assert.equal(c.webhookRetryHorizonMs, 3_600_000);
  assert.deepEqual(
    loadConfig([], (n) => n === "SLUICE_WEBHOOK" ? "http://a.test/,http://b.test/" : undefined)
      .webhooks,
    ["http://a.test/", "http://b.test/"],
  );
  assert.throws(() => loadConfig(["--webhook", "ftp://x"], noEnv), (e: Error) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /^--webhook: expected an http\(s\) URL/);
    return true;
  });
  assert.throws(
    () => loadConfig(["--webhook-retry-horizon", "forever"], noEnv),
    /^ConfigError: --webhook-retry-horizon/,
  );
});

function cfg(dataDir: string, more: Partial<WebhookConfig> = {}): WebhookConfig {
  return {
    dataDir,
    webhooks: [],
    webhookTimeoutMs: 1000,
    webhookRetryBaseMs: 1000,
    webhookRetryMaxMs: 600_000,
    webhookRetryHorizonMs: 86_400_000,
    ...more,
  };
}

Deno.test("config: --webhook and --webhooks-file become subscriptions with stable ids", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-webhooks-cfg-" });
  try {
    const files: Record<string, string> = {
      "hooks.json": JSON.stringify({
        webhooks: [
          {
            id: "billing",
            url: "https://bill.test/",
            events: ["stream.stopped"],
            secret: "billing-secret-0123456789",
          },
          { url: "https://badge.test/", rooms: ["main"] },
        ],
      }),
    };
    const read = (p: string) => files[p];
    const config = cfg(dir, {
      webhooks: ["http://a.test/", "http://a.test/"],
      webhooksFile: "hooks.json",
    });
    const subs = await configSubscriptions(config, quietLog, read);
    assert.equal(subs.length, 4);
    assert.equal(subs[2].id, "cfg_billing");
    assert.deepEqual(subs[2].events, ["stream.stopped"]);
    assert.equal(subs[2].secret, "billing-secret-0123456789");
    assert.deepEqual(subs[3].rooms, ["main"]);
    // The same URL twice gets two ids; ids stay the same on the next start.
    assert.notEqual(subs[0].id, subs[1].id);
    const again = await configSubscriptions(config, quietLog, read);
    assert.deepEqual(again.map((s) => s.id), subs.map((s) => s.id));
    // Without --webhook-secret, one generated secret in the data dir, kept across starts.
    const secret = (await Deno.readTextFile(`${dir}/webhook-secret`)).trim();
    assert.match(secret, /^whsec_/);
    assert.equal(subs[0].secret, secret);
    assert.equal(subs[3].secret, secret);
    assert.equal(again[0].secret, secret);
    assert.equal((await Deno.stat(`${dir}/webhook-secret`)).mode! & 0o777, 0o600);
    // --webhook-secret wins.
    const given = await configSubscriptions(
      cfg(dir, { webhooks: ["http://a.test/"], webhookSecret: "operator-secret-0123456789" }),
      quietLog,
    );
    assert.equal(given[0].secret, "operator-secret-0123456789");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: bad webhook files name the file, the entry and the field", async () => {
  const bad = async (content: string, pattern: RegExp) => {
    await assert.rejects(
      () =>
        configSubscriptions(
          cfg("/nonexistent", { webhooksFile: "h.json" }),
          quietLog,
          () => content,
        ),
      (e: Error) => {
        assert.match(e.message, pattern);
        return true;
      },
    );
  };
  await bad("{", /^--webhooks-file h\.json: .*JSON/);
  await bad('{"a": 1}', /^--webhooks-file h\.json: expected a JSON array of webhooks/);
  await bad('[{"url": "ftp://x"}]', /^--webhooks-file h\.json: webhook 1: url: expected an http/);
  await bad(
    '[{"url": "http://x/", "secret": "s3cret-0123456789"}, 5]',
    /webhook 2: expected a JSON object/,
  );
  await bad('[{"url": "http://x/", "id": "a b"}]', /webhook 1: id: expected/);
  await bad(
    '[{"url": "http://x/", "id": "a", "secret": "0123456789abcdef"}, {"url": "http://y/", "id": "a", "secret": "0123456789abcdef"}]',
    /duplicate id cfg_a/,
  );
});

Deno.test("config: subscriptions follow the config across restarts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-webhooks-cfg-" });
  try {
    const first = await openWebhooks(
      cfg(dir, { webhooks: ["http://a.test/", "http://b.test/"] }),
      quietLog,
    );
    const ids = first.list().map((w) => w.id);
    assert.equal(ids.length, 2);
    assert.ok(first.list().every((w) => w.source === "config"));
    first.create({
      url: "http://api.test/",
      rooms: null,
      events: ["stream.started"],
      description: "",
      enabled: true,
    });
    await first.close();
    const second = await openWebhooks(cfg(dir, { webhooks: ["http://b.test/"] }), quietLog);
    const after = second.list();
    assert.deepEqual(after.map((w) => w.url).sort(), ["http://api.test/", "http://b.test/"]);
    assert.ok(after.some((w) => w.id === ids[1]), "b keeps its id");
    await second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
