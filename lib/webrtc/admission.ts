/**
 * Admission control: a new viewer is refused ("server full", retry later) rather
 * than let every viewer already watching degrade. Two limits: a configured number
 * of viewers, and a measured one — the share of one core the main thread (where
 * every packet of every viewer is sent) has been busy lately.
 *
 * @module
 */
import process from "node:process";

/** Limits of {@linkcode Admission}. */
export interface AdmissionOptions {
  /** Most viewers on the server at once; 0: no fixed cap. */
  readonly maxViewers: number;
  /** Main-thread busy share (0-1) at which new viewers are refused; 0: not measured. */
  readonly maxLoad: number;
}

/** Why a viewer is refused. */
export type Refusal = {
  readonly reason: "configured" | "capacity";
  readonly message: string;
  /** Seconds a client should wait before trying again. */
  readonly retryAfterS: number;
};

/** Seconds a refused client is told to wait. */
export const RETRY_AFTER_S = 10;

/**
 * CPU seconds the thread running this JavaScript has used so far (user + system,
 * `getrusage(RUSAGE_THREAD)` behind node's `process.threadCpuUsage()`; it needs no
 * permission, unlike /proc, which Deno opens only with --allow-all), or undefined
 * where the runtime lacks it.
 */
export function mainThreadCpuSeconds(): number | undefined {
  const usage = (process as unknown as {
    threadCpuUsage?: () => { user: number; system: number };
  }).threadCpuUsage?.();
  return usage ? (usage.user + usage.system) / 1e6 : undefined;
}

/** Decides whether one more viewer may join. */
export class Admission {
  readonly #options: AdmissionOptions;
  readonly #cpu: () => number | undefined;
  #load = 0;
  #last: { cpu: number; at: number } | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: AdmissionOptions, cpu: () => number | undefined = mainThreadCpuSeconds) {
    this.#options = options;
    this.#cpu = cpu;
  }

  /** Starts sampling the main thread's load (once a second). */
  start(): void {
    if (this.#timer !== undefined || this.#options.maxLoad <= 0) return;
    this.sample();
    this.#timer = setInterval(() => this.sample(), 1000);
    Deno.unrefTimer(this.#timer);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Takes one load sample (smoothed over a few seconds). */
  sample(now = performance.now()): void {
    const cpu = this.#cpu();
    if (cpu === undefined) return;
    if (this.#last && now > this.#last.at) {
      const busy = Math.min(1, (cpu - this.#last.cpu) / ((now - this.#last.at) / 1000));
      // Rise at once (protect the viewers watching), fall slowly (no flapping).
      this.#load = busy > this.#load ? busy : this.#load * 0.6 + busy * 0.4;
    }
    this.#last = { cpu, at: now };
  }

  /** The main thread's recent busy share of one core (0-1). */
  get load(): number {
    return this.#load;
  }

  /**
   * Viewers the server can hold by measurement: `viewers` scaled to the load limit
   * (meaningful once viewers make up most of the load); undefined before that.
   */
  capacity(viewers: number): number | undefined {
    const fixed = this.#options.maxViewers || Infinity;
    if (this.#options.maxLoad <= 0 || viewers < 10 || this.#load < 0.1) {
      return Number.isFinite(fixed) ? fixed : undefined;
    }
    return Math.min(fixed, Math.floor((viewers * this.#options.maxLoad) / this.#load));
  }

  /** Undefined when one more viewer may join; why not otherwise. */
  check(viewers: number): Refusal | undefined {
    const { maxViewers, maxLoad } = this.#options;
    if (maxViewers > 0 && viewers >= maxViewers) {
      return {
        reason: "configured",
        message: `server full: ${viewers} of ${maxViewers} viewers; try again later`,
        retryAfterS: RETRY_AFTER_S,
      };
    }
    if (maxLoad > 0 && this.#load >= maxLoad) {
      return {
        reason: "capacity",
        message: `server full: its send path is ${Math.round(this.#load * 100)} % busy ` +
          `(limit ${Math.round(maxLoad * 100)} %); try again later`,
        retryAfterS: RETRY_AFTER_S,
      };
    }
    return undefined;
  }
}
