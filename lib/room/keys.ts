/**
 * Stream keys: one secret for all rooms (`--publish-key`) and/or a JSON file of
 * per-room keys (`--keys-file`, re-read when it changes). Keys never reach logs.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** The outcome of a key check. */
export type KeyCheck = "ok" | "missing" | "wrong" | "unknown-room";

function digest(s: string): Uint8Array {
  return createHash("sha256").update(s).digest();
}

function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Checks publish keys; with neither option set every publish is allowed. */
export class PublishKeys {
  readonly #global?: string;
  readonly #file?: string;
  #fileKeys = new Map<string, string>();
  #fileStamp = "";

  constructor(options: { publishKey?: string; keysFile?: string }) {
    this.#global = options.publishKey;
    this.#file = options.keysFile;
    if (this.#file) this.#reload(true);
  }

  /** Whether keys are required at all. */
  get enabled(): boolean {
    return this.#global !== undefined || this.#file !== undefined;
  }

  /** Re-reads the keys file when its mtime or size changed; a bad file at start throws. */
  #reload(strict: boolean): void {
    const path = this.#file!;
    try {
      const info = Deno.statSync(path);
      const stamp = `${info.mtime?.getTime()}:${info.size}`;
      if (stamp === this.#fileStamp) return;
      const parsed = JSON.parse(Deno.readTextFileSync(path));
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error("expected a JSON object of room → key");
      }
      const keys = new Map<string, string>();
      for (const [room, key] of Object.entries(parsed)) {
        if (typeof key !== "string" || key === "") {
          throw new Error(`key of room "${room}" must be a non-empty string`);
        }
        keys.set(room, key);
      }
      this.#fileKeys = keys;
      this.#fileStamp = stamp;
    } catch (err) {
      if (strict) throw new Error(`--keys-file ${path}: ${(err as Error).message}`);
      // Keep the last good keys when an edit leaves the file broken for a moment.
    }
  }

  /** Checks the key presented for a room. */
  check(room: string, key: string | null): KeyCheck {
    if (!this.enabled) return "ok";
    if (this.#file) this.#reload(false);
    const expected = this.#fileKeys.get(room) ?? this.#global;
    if (expected === undefined) return "unknown-room";
    if (key === null || key === "") return "missing";
    return sameSecret(key, expected) ? "ok" : "wrong";
  }
}
