/**
 * @module Prometheus metrics in the text exposition format (0.0.4), with no client library:
 * request counts and latency histograms by route, plus gauges and whole families (counters,
 * gauges, histograms) read at scrape time.
 */

const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function esc(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll(
    '"',
    '\\"',
  );
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

/** A gauge family whose samples are computed when scraped. */
export interface GaugeSource {
  name: string;
  help: string;
  collect(): Promise<{ labels: Record<string, string>; value: number }[]>;
}

/** One sample of a counter or gauge. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** One labelled histogram: `counts[i]` observations were `<= bounds[i]` (cumulative). */
export interface HistogramSample {
  labels: Record<string, string>;
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A metric family. Counters are named with their `_total` suffix, as the 0.0.4 text format
 * writes them (OpenMetrics would name the family without it: the series are the same).
 */
export type Family =
  | { type: "counter" | "gauge"; name: string; help: string; samples: Sample[] }
  | {
    type: "histogram";
    name: string;
    help: string;
    bounds: readonly number[];
    samples: HistogramSample[];
  };

/** Families computed when scraped, e.g. from the database. */
export interface FamilySource {
  collect(): Promise<Family[]>;
}

function renderFamily(f: Family): string[] {
  const out = [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`];
  if (f.type !== "histogram") {
    for (const s of f.samples) {
      out.push(`${f.name}${labels(s.labels)} ${s.value}`);
    }
    return out;
  }
  for (const s of f.samples) {
    f.bounds.forEach((b, i) => {
      out.push(
        `${f.name}_bucket${labels({ ...s.labels, le: String(b) })} ${
          s.counts[i] ?? 0
        }`,
      );
    });
    out.push(
      `${f.name}_bucket${labels({ ...s.labels, le: "+Inf" })} ${s.count}`,
      `${f.name}_sum${labels(s.labels)} ${s.sum}`,
      `${f.name}_count${labels(s.labels)} ${s.count}`,
    );
  }
  return out;
}

interface RequestCount {
  labels: Record<string, string>;
  n: number;
}

interface Duration {
  labels: Record<string, string>;
  /** Per bucket, the requests that fell in it and in no smaller one. */
  counts: number[];
  sum: number;
  n: number;
}

interface RouteSeries {
  duration: Duration;
  byStatus: Map<number, RequestCount>;
}

/** Holds the process's metrics. */
export class Metrics {
  // Series in the order they were first seen (the exposition order), and reached on each
  // request through route, method and status without building a key string.
  private requests: RequestCount[] = [];
  private durations: Duration[] = [];
  #byRoute = new Map<string, Map<string, RouteSeries>>();
  private gauges: GaugeSource[] = [];
  private sources = new Map<string, FamilySource>();

  /** Counts one HTTP request. `route` is the matched pattern, never the raw path (cardinality). */
  observeRequest(
    method: string,
    route: string,
    status: number,
    seconds: number,
  ): void {
    // This runs for every request, each repository file of a pull included.
    let methods = this.#byRoute.get(route);
    if (!methods) this.#byRoute.set(route, methods = new Map());
    let series = methods.get(method);
    if (!series) {
      const duration: Duration = {
        labels: { method, route },
        counts: buckets.map(() => 0),
        sum: 0,
        n: 0,
      };
      this.durations.push(duration);
      methods.set(method, series = { duration, byStatus: new Map() });
    }
    let count = series.byStatus.get(status);
    if (!count) {
      count = { labels: { method, route, status: String(status) }, n: 0 };
      this.requests.push(count);
      series.byStatus.set(status, count);
    }
    count.n++;
    const d = series.duration;
    // One count in the first bucket that holds it; made cumulative when rendered.
    let i = 0;
    while (i < buckets.length && seconds > buckets[i]!) i++;
    if (i < buckets.length) d.counts[i]!++;
    d.sum += seconds;
    d.n++;
  }

  addGauge(source: GaugeSource): void {
    this.gauges.push(source);
  }

  /** Adds (or, under the same `key`, replaces) families computed at scrape time. */
  addFamilies(key: string, source: FamilySource): void {
    this.sources.set(key, source);
  }

  /** The exposition text. */
  async render(): Promise<string> {
    const out: string[] = [
      "# HELP flatyard_http_requests_total HTTP requests by method, route and status.",
      "# TYPE flatyard_http_requests_total counter",
    ];
    for (const r of this.requests) {
      out.push(`flatyard_http_requests_total${labels(r.labels)} ${r.n}`);
    }
    out.push(
      "# HELP flatyard_http_request_duration_seconds HTTP request latency by method and route.",
      "# TYPE flatyard_http_request_duration_seconds histogram",
    );
    for (const d of this.durations) {
      let below = 0;
      buckets.forEach((b, i) => {
        below += d.counts[i]!;
        out.push(
          `flatyard_http_request_duration_seconds_bucket${
            labels({ ...d.labels, le: String(b) })
          } ${below}`,
        );
      });
      out.push(
        `flatyard_http_request_duration_seconds_bucket${
          labels({ ...d.labels, le: "+Inf" })
        } ${d.n}`,
      );
      out.push(
        `flatyard_http_request_duration_seconds_sum${
          labels(d.labels)
        } ${d.sum}`,
      );
      out.push(
        `flatyard_http_request_duration_seconds_count${
          labels(d.labels)
        } ${d.n}`,
      );
    }
    for (const g of this.gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const s of await g.collect()) {
        out.push(`${g.name}${labels(s.labels)} ${s.value}`);
      }
    }
    for (const source of this.sources.values()) {
      for (const f of await source.collect()) out.push(...renderFamily(f));
    }
    return out.join("\n") + "\n";
  }
}
