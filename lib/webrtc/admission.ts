/**
 * Admission control: a new viewer is refused ("server full", retry later) rather
 * than let every viewer already watching degrade. Two limits: a configured number
 * of viewers, and a measured one — the share of one core the busiest send thread
 * has been busy lately: the main thread (audio, werift viewers, RTCP) or one of the
 * native send threads (each sends the video of its share of the viewers).
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
  readonly #lanes: (() => number[]) | undefined;
  #load = 0;
  #last: { cpu: number; lanes: number[]; at: number } | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param cpu CPU seconds of the main thread so far.
   * @param lanes CPU seconds of each native send thread so far (they send the video):
   *   the load is the busiest of the main thread and these.
   */
  constructor(
    options: AdmissionOptions,
    cpu: () => number | undefined = mainThreadCpuSeconds,
    lanes?: () => number[],
  ) {
    this.#options = options;
    this.#cpu = cpu;
    this.#lanes = lanes;
  }

  /** Starts sampling the send threads' load (once a second). */
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
    const lanes = this.#lanes?.() ?? [];
    if (this.#last && now > this.#last.at) {
      const seconds = (now - this.#last.at) / 1000;
      const last = this.#last;
      const busiest = Math.max(
        cpu - last.cpu,
        ...lanes.map((lane, i) => lane - (last.lanes[i] ?? lane)),
      );
      const busy = Math.min(1, busiest / seconds);
      // Rise at once (protect the viewers watching), fall slowly (no flapping).
      this.#load = busy > this.#load ? busy : this.#load * 0.6 + busy * 0.4;
    }
    this.#last = { cpu, lanes, at: now };
  }

  /** The recent busy share of one core (0-1) of the busiest send thread (main or native lane). */
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
