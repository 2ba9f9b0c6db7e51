/**
 * A small Prometheus text-format writer: counters, gauges (also computed at scrape
 * time) and histograms with labels. Chosen over npm `prom-client` because that
 * package leans on Node's `process` and `cluster` internals; Sluice needs about a
 * hundred lines of it.
 *
 * @module
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  return "{" +
    keys.map((k) =>
      `${k}="${labels[k].replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"')}"`
    ).join(",") +
    "}";
}

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  render(): string[];
}

/** A monotonically increasing count, per label set. */
export class Counter implements Metric {
  readonly type = "counter";
  readonly #values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  /** Drops the series of one label set (a room that went away). */
  remove(labels: Labels): void {
    this.#values.delete(labelKey(labels));
  }
  render(): string[] {
    return [...this.#values].map(([k, v]) => `${this.name}${k} ${v}`);
  }
}

/** A value read when scraped. */
export class Gauge implements Metric {
  readonly type = "gauge";
  readonly #values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly collect?: () => Iterable<[Labels, number]>,
  ) {}
  set(value: number, labels: Labels = {}): void {
    this.#values.set(labelKey(labels), value);
  }
  render(): string[] {
    if (this.collect) {
      return [...this.collect()].map(([labels, v]) => `${this.name}${labelKey(labels)} ${v}`);
    }
    return [...this.#values].map(([k, v]) => `${this.name}${k} ${v}`);
  }
}

/** Observations in cumulative buckets. */
export class Histogram implements Metric {
  readonly type = "histogram";
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.#counts = new Array(buckets.length).fill(0);
  }
  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.#counts[i]++;
  }
  render(): string[] {
    const lines = this.buckets.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.#counts[i]}`);
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}`);
    lines.push(`${this.name}_sum ${this.#sum}`, `${this.name}_count ${this.#count}`);
    return lines;
  }
}

/** The set of metrics a server exposes at `/metrics`. */
export class MetricsRegistry {
  readonly #metrics: Metric[] = [];

  /** Registers and returns a metric. */
  add<M extends Metric>(metric: M): M {
    this.#metrics.push(metric);
    return metric;
  }

  /** The Prometheus text exposition (version 0.0.4). */
  render(): string {
    const out: string[] = [];
    for (const m of this.#metrics) {
      out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`, ...m.render());
    }
    return out.join("\n") + "\n";
  }
}

/** Measures event-loop lag: how late a 100 ms timer fires, as a gauge in seconds. */
export function startEventLoopLag(gauge: Gauge, intervalMs = 100): () => void {
  let expected = performance.now() + intervalMs;
  let worst = 0;
  let samples = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - expected);
    expected = now + intervalMs;
    if (++samples >= 10) {
      gauge.set(Math.max(0, worst) / 1000);
      worst = 0;
      samples = 0;
    }
  }, intervalMs);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
