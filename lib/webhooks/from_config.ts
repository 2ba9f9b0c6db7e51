/**
 * From the server's Config to a running {@linkcode WebhookService}: the database
 * under `--data-dir`, the retry policy, and the subscriptions of `--webhook` and
 * `--webhooks-file`.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { DEFAULT_RETRY_POLICY } from "./policy.ts";
import { type ConfigSubscription, WebhookService } from "./service.ts";
import { generateSecret } from "./signature.ts";
import { parseSubscriptionInput, validateSecret, ValidationError } from "./validate.ts";

/** The webhook options of the Config. */
export type WebhookConfig = Pick<
  Config,
  | "dataDir"
  | "webhooks"
  | "webhooksFile"
  | "webhookSecret"
  | "webhookTimeoutMs"
  | "webhookRetryBaseMs"
  | "webhookRetryMaxMs"
  | "webhookRetryHorizonMs"
>;

const ID_RE = /^[A-Za-z0-9_-]{1,48}$/;

async function sha256Hex(s: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The secret of config subscriptions that name none: `--webhook-secret`, else one
 * generated once and kept in `<data-dir>/webhook-secret` (mode 600) for the operator
 * to copy to receivers. Its value never reaches the log, only its path.
 */
function sharedSecret(config: WebhookConfig, log: Logger): string {
  if (config.webhookSecret) return validateSecret(config.webhookSecret, "--webhook-secret");
  const path = `${config.dataDir}/webhook-secret`;
  let secret: string;
  try {
    secret = Deno.readTextFileSync(path).trim();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    secret = generateSecret();
    Deno.writeTextFileSync(path, secret + "\n", { mode: 0o600, createNew: true });
  }
  log.info("webhooks from the config without a secret are signed with the secret in {path}", {
    path,
  });
  return secret;
}

/** Reads `--webhook` and `--webhooks-file` into subscriptions; errors name the option. */
export async function configSubscriptions(
  config: WebhookConfig,
  log: Logger,
  readFile: (path: string) => string = (p) => Deno.readTextFileSync(p),
): Promise<ConfigSubscription[]> {
  type Entry = { input: Record<string, unknown>; origin: string; id?: string };
  const entries: Entry[] = (config.webhooks ?? []).map((url) => ({
    input: { url },
    origin: "--webhook",
  }));
  if (config.webhooksFile) {
    const path = config.webhooksFile;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFile(path));
    } catch (err) {
      throw new Error(`--webhooks-file ${path}: ${(err as Error).message}`);
    }
    const list = Array.isArray(parsed) ? parsed : (parsed && typeof parsed === "object" &&
        Array.isArray((parsed as { webhooks?: unknown }).webhooks))
      ? (parsed as { webhooks: unknown[] }).webhooks
      : undefined;
    if (!list) {
      throw new Error(
        `--webhooks-file ${path}: expected a JSON array of webhooks or {"webhooks": [...]}`,
      );
    }
    list.forEach((item, i) => {
      const origin = `--webhooks-file ${path}: webhook ${i + 1}`;
      if (!item || typeof item !== "object" || Array.isArray(item)) {
        throw new Error(`${origin}: expected a JSON object, got ${JSON.stringify(item)}`);
      }
      const { id, ...input } = item as Record<string, unknown>;
      if (id !== undefined && (typeof id !== "string" || !ID_RE.test(id))) {
        throw new Error(`${origin}: id: expected 1-48 characters of A-Z a-z 0-9 _ -`);
      }
      entries.push({ input, origin, id: id as string | undefined });
    });
  }

  const out: ConfigSubscription[] = [];
  const seen = new Map<string, number>();
  let shared: string | undefined;
  for (const e of entries) {
    let input;
    try {
      input = parseSubscriptionInput(e.input);
    } catch (err) {
      if (err instanceof ValidationError) throw new Error(`${e.origin}: ${err.message}`);
      throw err;
    }
    // A stable id, so a restart keeps the subscription's queue and deliveries log.
    const n = (seen.get(input.url) ?? 0) + 1;
    seen.set(input.url, n);
    const id = e.id ? `cfg_${e.id}` : `cfg_${(await sha256Hex(`${input.url}#${n}`)).slice(0, 16)}`;
    if (out.some((o) => o.id === id)) throw new Error(`${e.origin}: duplicate id ${id}`);
    const secret = input.secret ?? (shared ??= sharedSecret(config, log));
    out.push({ ...input, id, secret });
  }
  return out;
}

/** Opens the webhook service of a server: `<data-dir>/webhooks.db`, config subscriptions. */
export async function openWebhooks(
  config: WebhookConfig,
  log: Logger,
  onOutcome?: (outcome: string) => void,
): Promise<WebhookService> {
  Deno.mkdirSync(config.dataDir, { recursive: true });
  return WebhookService.open({
    databasePath: `${config.dataDir}/webhooks.db`,
    timeoutMs: config.webhookTimeoutMs,
    retry: {
      ...DEFAULT_RETRY_POLICY,
      baseMs: config.webhookRetryBaseMs,
      maxDelayMs: Math.max(config.webhookRetryMaxMs, config.webhookRetryBaseMs),
      horizonMs: config.webhookRetryHorizonMs,
    },
    configSubscriptions: await configSubscriptions(config, log),
    log,
    onSettled: onOutcome && ((_delivery, outcome) => onOutcome(outcome)),
  });
}
