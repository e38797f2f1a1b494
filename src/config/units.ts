// The two value grammars the config borrows from Go and Kubernetes: durations
// (Go's time.ParseDuration) and resource quantities (k8s.io/apimachinery's
// resource.Quantity). Pure.

const DURATION_UNITS_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  "µs": 1e3, // U+00B5 micro sign
  "μs": 1e3, // U+03BC Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const DURATION_SEGMENT = /([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/y;
/** Go's time.Duration is an int64 count of nanoseconds. */
const MAX_DURATION_NS = 2 ** 63 - 1;

/**
 * Parses a Go duration (`30s`, `2m`, `1h30m`, `1.5h`, `300ms`, `0`, `-5s`) into
 * milliseconds. Returns undefined when the text is not in the grammar or
 * overflows Go's int64 nanoseconds, exactly where time.ParseDuration fails.
 */
export function parseGoDuration(text: string): number | undefined {
  let s = text;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") return undefined;
  let totalNs = 0;
  DURATION_SEGMENT.lastIndex = 0;
  let pos = 0;
  while (pos < s.length) {
    DURATION_SEGMENT.lastIndex = pos;
    const m = DURATION_SEGMENT.exec(s);
    if (!m) return undefined;
    const [whole, num = "", unit = ""] = m;
    // At least one digit on either side of the point: "." and ".s" are not numbers.
    if (!/[0-9]/.test(num)) return undefined;
    totalNs += Number(num) * (DURATION_UNITS_NS[unit] ?? Number.NaN);
    if (!Number.isFinite(totalNs) || totalNs > MAX_DURATION_NS) return undefined;
    pos += whole.length;
  }
  return (sign * totalNs) / 1e6;
}

export function isGoDuration(text: string): boolean {
  return parseGoDuration(text) !== undefined;
}

/** The Kubernetes quantity grammar (resource.ParseQuantity). */
export const QUANTITY_PATTERN = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$/;

/** A quantity as Kubernetes accepts it: a string in the grammar, or a plain number. */
export function isQuantity(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  return typeof value === "string" && QUANTITY_PATTERN.test(value);
}

/** A quantity that is not negative (resource requests and limits, size limits). */
export function isNonNegativeQuantity(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0;
  return isQuantity(value) && !(value as string).startsWith("-");
}
