// Percentiles for latency figures. Nearest-rank, so every reported percentile is
// a latency that was actually observed (no interpolation between two samples).

export interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/**
 * The nearest-rank percentile `p` (0 < p <= 100) of `values`: the smallest
 * value with at least p % of the samples at or below it. Undefined for no
 * samples. `values` need not be sorted.
 */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return undefined;
  const sorted = [...finite].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** p50 / p95 / p99 rounded to `digits` decimals; null where there are no samples. */
export function summarize(values: readonly number[], digits = 1): Percentiles {
  const at = (p: number) => {
    const v = percentile(values, p);
    return v === undefined ? null : round(v, digits);
  };
  return { p50: at(50), p95: at(95), p99: at(99) };
}

export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
