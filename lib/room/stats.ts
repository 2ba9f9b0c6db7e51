/**
 * Small measuring tools for a room's stream: a sliding-window byte rate and a
 * frame rate from decode timestamps.
 *
 * @module
 */

/** Bits per second over a sliding window of one-second buckets (wall clock). */
export class RateMeter {
  readonly #buckets: Float64Array;
  #second = -1;
  readonly #now: () => number;

  constructor(windowSeconds = 5, now: () => number = () => performance.now()) {
    this.#buckets = new Float64Array(windowSeconds);
    this.#now = now;
  }

  #advance(): number {
    const second = Math.floor(this.#now() / 1000);
    if (this.#second < 0) this.#second = second;
    const gap = second - this.#second;
    if (gap > 0) {
      for (let i = 1; i <= Math.min(gap, this.#buckets.length); i++) {
        this.#buckets[(this.#second + i) % this.#buckets.length] = 0;
      }
      this.#second = second;
    }
    return second;
  }

  /** Counts `bytes` now. */
  add(bytes: number): void {
    const second = this.#advance();
    this.#buckets[second % this.#buckets.length] += bytes;
  }

  /** Bits per second over the completed buckets of the window (0 before one completes). */
  bitsPerSecond(): number {
    const second = this.#advance();
    let total = 0;
    let n = 0;
    for (let i = 1; i < this.#buckets.length; i++) {
      const s = second - i;
      if (s < 0) break;
      total += this.#buckets[s % this.#buckets.length];
      n++;
    }
    return n === 0 ? 0 : Math.round((total * 8) / n);
  }
}

/** Frames per second from the decode timestamps of the last N frames. */
export class FrameRateMeter {
  readonly #dts: number[] = [];
  readonly #size: number;

  constructor(size = 61) {
    this.#size = size;
  }

  /** Records one frame's decode timestamp in milliseconds. */
  add(dts: number): void {
    const last = this.#dts[this.#dts.length - 1];
    // A timestamp jump backwards (publisher restart, wrap) starts the window again.
    if (last !== undefined && dts < last) this.#dts.length = 0;
    this.#dts.push(dts);
    if (this.#dts.length > this.#size) this.#dts.shift();
  }

  /** Frames per second, rounded to two decimals; undefined until measurable. */
  fps(): number | undefined {
    const n = this.#dts.length;
    if (n < 2) return undefined;
    const span = this.#dts[n - 1] - this.#dts[0];
    if (span <= 0) return undefined;
    return Math.round(((n - 1) * 1000 / span) * 100) / 100;
  }
}
