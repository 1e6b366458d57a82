/**
 * A small Prometheus registry (text exposition format 0.0.4): counters, gauges read at scrape
 * time, and histograms. Small enough not to need prom-client; services register what they count.
 */

type Labels = Record<string, string>;

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (labels: Labels) => {
  const keys = Object.keys(labels);
  return keys.length === 0 ? '' : `{${keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(',')}}`;
};

interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

/** One metric family as rendered: what another process of the appliance sends to be exposed with the main's. */
export interface MetricFamily {
  name: string;
  help: string;
  type: Metric['type'];
  samples: string[];
}

/** A sample line with one more label: `name{a="b"} 1` -> `name{process="p",a="b"} 1`. */
export function withLabel(sample: string, key: string, value: string): string {
  const label = `${key}="${escapeLabel(value)}"`;
  const brace = sample.indexOf('{');
  const space = sample.indexOf(' ');
  if (brace !== -1 && brace < space) return `${sample.slice(0, brace + 1)}${label},${sample.slice(brace + 1)}`;
  return `${sample.slice(0, space)}{${label}}${sample.slice(space)}`;
}

export class Counter {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value += by;
    else this.#values.set(key, { labels, value: by });
  }
  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }
  render(name: string): string[] {
    return [...this.#values.values()].map((e) => `${name}${labelText(e.labels)} ${e.value}`);
  }
}

export class Histogram {
  readonly buckets: number[];
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(buckets: number[]) {
    this.buckets = [...buckets].sort((a, b) => a - b);
  }
  observe(labels: Labels, value: number): void {
    const key = labelText(labels);
    let s = this.#series.get(key);
    if (!s) {
      s = { labels, counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.#series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  render(name: string): string[] {
    const out: string[] = [];
    for (const s of this.#series.values()) {
      this.buckets.forEach((b, i) => out.push(`${name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      out.push(`${name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${name}_sum${labelText(s.labels)} ${s.sum}`);
      out.push(`${name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class MetricsRegistry {
  readonly #metrics: Metric[] = [];
  readonly #sources: Array<() => MetricFamily[]> = [];

  /** Families read at scrape time from elsewhere (the public processes), merged into this registry's by name. */
  include(source: () => MetricFamily[]): void {
    this.#sources.push(source);
  }

  counter(name: string, help: string): Counter {
    const c = new Counter();
    this.#metrics.push({ name, help, type: 'counter', render: () => c.render(name) });
    return c;
  }

  histogram(name: string, help: string, buckets: number[]): Histogram {
    const h = new Histogram(buckets);
    this.#metrics.push({ name, help, type: 'histogram', render: () => h.render(name) });
    return h;
  }

  /** A value read at scrape time: one sample, or several with labels. */
  gauge(name: string, help: string, read: () => number | Array<{ labels: Labels; value: number }>): void {
    this.#metrics.push({
      name, help, type: 'gauge',
      render: () => {
        const v = read();
        return typeof v === 'number' ? [`${name} ${v}`] : v.map((s) => `${name}${labelText(s.labels)} ${s.value}`);
      },
    });
  }

  /** Same as gauge, for monotonically increasing values kept elsewhere (e.g. HSM sign count). */
  counterFrom(name: string, help: string, read: () => number | Array<{ labels: Labels; value: number }>): void {
    this.gauge(name, help, read);
    this.#metrics[this.#metrics.length - 1].type = 'counter';
  }

  families(): MetricFamily[] {
    const out: MetricFamily[] = [];
    for (const m of this.#metrics) {
      try {
        out.push({ name: m.name, help: m.help, type: m.type, samples: m.render() });
      } catch {
        // a failing reader must not break the whole scrape
      }
    }
    return out;
  }

  render(): string {
    // Prometheus wants each family's samples together under one HELP/TYPE.
    const byName = new Map<string, MetricFamily>();
    for (const f of [...this.families(), ...this.#sources.flatMap((read) => read())]) {
      const known = byName.get(f.name);
      if (known) known.samples.push(...f.samples);
      else byName.set(f.name, { ...f, samples: [...f.samples] });
    }
    const lines: string[] = [];
    for (const f of byName.values()) lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.samples);
    return `${lines.join('\n')}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
