// Counters, gauges and histograms rendered in Prometheus' text exposition format (version 0.0.4):
// the few kinds the server needs, without a client library.

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return parts.length ? `{${parts.join(',')}}` : '';
}

function header(name: string, help: string, type: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();

  constructor(
    private readonly name: string,
    private readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  render(): string {
    const lines = [...this.values].map(([labels, v]) => `${this.name}${labels} ${v}\n`);
    return header(this.name, this.help, 'counter') + lines.join('');
  }
}

/** A gauge read when the metrics are rendered, one sample per label set. */
export class Gauge implements Metric {
  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly read: () => [Labels, number][],
  ) {}

  render(): string {
    const lines = this.read().map(([labels, v]) => `${this.name}${labelText(labels)} ${v}\n`);
    return header(this.name, this.help, 'gauge') + lines.join('');
  }
}

export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    private readonly name: string,
    private readonly help: string,
    /** Upper bounds, increasing; +Inf is implied. */
    private readonly buckets: number[],
  ) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }

  observe(value: number): void {
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  render(): string {
    let cumulative = 0;
    const lines = this.buckets.map((b, i) => {
      cumulative += this.counts[i];
      return `${this.name}_bucket{le="${b}"} ${cumulative}\n`;
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}\n`);
    lines.push(`${this.name}_sum ${this.sum}\n${this.name}_count ${this.count}\n`);
    return header(this.name, this.help, 'histogram') + lines.join('');
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }

  render(): string {
    return this.metrics.map((m) => m.render()).join('');
  }
}
