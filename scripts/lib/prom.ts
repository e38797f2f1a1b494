// Prometheus text exposition format: parsing, counter diffs and the selections
// the benchmark needs from kube-apiserver's /metrics.

export type Labels = Record<string, string>;

export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

/**
 * Parses the text format (version 0.0.4). Comment and blank lines are skipped;
 * a malformed line throws with its line number, since a silently dropped series
 * would skew a diff. `only` keeps just the samples of those metric names.
 */
export function parsePromText(text: string, only?: readonly string[]): Sample[] {
  const out: Sample[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    // Cheap pre-filter by metric name (kube-apiserver exposes megabytes).
    if (only !== undefined && !only.some((name) => line.startsWith(name) && (line[name.length] === "{" || line[name.length] === " "))) continue;
    const sample = parseLine(line);
    if (sample === undefined) throw new Error(`metrics line ${i + 1} is not a sample: ${line.slice(0, 200)}`);
    out.push(sample);
  }
  return out;
}

function parseLine(line: string): Sample | undefined {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) return undefined;
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Labels = {};
  if (line[pos] === "{") {
    pos++;
    for (;;) {
      while (line[pos] === " " || line[pos] === ",") pos++;
      if (line[pos] === "}") {
        pos++;
        break;
      }
      const keyMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos));
      if (!keyMatch) return undefined;
      const key = keyMatch[0];
      pos += key.length;
      while (line[pos] === " ") pos++;
      if (line[pos] !== "=") return undefined;
      pos++;
      while (line[pos] === " ") pos++;
      if (line[pos] !== '"') return undefined;
      pos++;
      let value = "";
      for (;;) {
        const ch = line[pos];
        if (ch === undefined) return undefined;
        pos++;
        if (ch === '"') break;
        if (ch === "\\") {
          const next = line[pos++];
          value += next === "n" ? "\n" : (next ?? "");
        } else {
          value += ch;
        }
      }
      labels[key] = value;
    }
  }
  const rest = line.slice(pos).trim().split(/\s+/);
  const raw = rest[0];
  if (raw === undefined || raw === "") return undefined;
  const value = parseValue(raw);
  if (value === undefined) return undefined;
  return { name, labels, value };
}

function parseValue(raw: string): number | undefined {
  switch (raw) {
    case "+Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
    case "NaN":
      return NaN;
  }
  const n = Number(raw);
  return Number.isNaN(n) ? undefined : n;
}

/** A stable identity of a series: its name and sorted labels. */
export function seriesKey(name: string, labels: Labels): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${parts.join(",")}}`;
}

export function select(samples: readonly Sample[], name: string, filter: (labels: Labels) => boolean = () => true): Sample[] {
  return samples.filter((s) => s.name === name && filter(s.labels));
}

/**
 * Per-series increase of counter `name` from `before` to `after`. A series
 * absent before counts from 0; a counter that went down (process restart) is
 * taken as restarted from 0. Series without an increase are left out.
 */
export function counterIncrease(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
  filter: (labels: Labels) => boolean = () => true,
): Sample[] {
  const old = new Map<string, number>();
  for (const s of select(before, name, filter)) old.set(seriesKey(s.name, s.labels), s.value);
  const out: Sample[] = [];
  for (const s of select(after, name, filter)) {
    const prev = old.get(seriesKey(s.name, s.labels)) ?? 0;
    const delta = s.value >= prev ? s.value - prev : s.value;
    if (delta > 0) out.push({ name, labels: s.labels, value: delta });
  }
  return out;
}

/**
 * Gauge `name` summed over series, each taken relative to its value in
 * `baseline` (never below 0): what was added since the baseline.
 */
export function gaugeAboveBaseline(
  baseline: readonly Sample[],
  current: readonly Sample[],
  name: string,
  filter: (labels: Labels) => boolean = () => true,
): number {
  const base = new Map<string, number>();
  for (const s of select(baseline, name, filter)) base.set(seriesKey(s.name, s.labels), s.value);
  let total = 0;
  for (const s of select(current, name, filter)) total += Math.max(0, s.value - (base.get(seriesKey(s.name, s.labels)) ?? 0));
  return total;
}

/** Sums sample values by a key derived from their labels. */
export function sumBy(samples: readonly Sample[], key: (labels: Labels) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    const k = key(s.labels);
    out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

/** `"<VERB> <resource>[/<subresource>]"`, the key used for API request counts. */
export function verbResourceKey(labels: Labels): string {
  const resource = labels.resource ?? "";
  const sub = labels.subresource ?? "";
  return `${labels.verb ?? "?"} ${resource}${sub ? `/${sub}` : ""}`;
}

/**
 * The q-quantile (0..1) of a histogram from the increases of its `_bucket` series (cumulative
 * counts by `le`), interpolating linearly within the bucket as Prometheus' histogram_quantile
 * does. Undefined without observations; the largest finite bound when it falls in +Inf.
 */
export function histogramQuantile(q: number, buckets: readonly { le: number; count: number }[]): number | undefined {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket <= 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
