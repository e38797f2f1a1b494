/**
 * The secret registry: secret values (the API key, every running task's env_var values),
 * reference-counted, and their redaction. Every registered value, and its JSON-escaped and
 * URL-encoded forms, is replaced by `<redacted>` in text, and deeply in structured values
 * (nested objects, arrays, Map/Set, Error message/stack/cause). The logger
 * (src/telemetry/log.ts) redacts every line with a registry at write time.
 */

export const REDACTED = "<redacted>";
/**
 * Values shorter than this are not registered: replacing every "abc" or "1"
 * in every log line would mangle logs without protecting anything. The worker
 * must still never log such values directly.
 */
export const MIN_SECRET_LENGTH = 4;
/** Size of the table of two-character starts (a power of two; see {@link startSlot}). */
const START_SLOTS = 1 << 16;
/**
 * Up to this many forms (the API key's, a few tasks' env_vars), a search asks the runtime's
 * indexOf for each form, which runs natively; beyond it, one pass over the text with the index
 * of starts costs less than that many searches.
 */
const FEW_FORMS = 48;

const MAX_REDACT_DEPTH = 12;

/**
 * Reference-counted set of secret strings. The same value may be registered
 * by two concurrent tasks; it stays registered until both unregister it.
 */
export class SecretRegistry {
  readonly #counts = new Map<string, number>();
  /** Each registered value's forms (itself, JSON-escaped, URL-encoded), computed once. */
  readonly #forms = new Map<string, string[]>();
  /**
   * The forms by their first two characters (longest first), kept up to date on every register
   * and unregister. A task starts and ends all the time, so nothing is rebuilt for the whole set:
   * one regular expression of every form cost a compile per change and a try of every
   * alternative at every position of every logged string (milliseconds per task at 200 tasks).
   */
  readonly #byStart = new Map<number, string[]>();
  /** How many forms start with characters hashing to each slot: a scan skips a position in one lookup. */
  readonly #startCounts = new Uint32Array(START_SLOTS);
  /** Forms in the index (a form two values share counts twice). */
  #indexed = 0;
  /** While there are at most {@link FEW_FORMS}: all of them, longest first; undefined = to be listed again. */
  #fewForms: string[] | undefined;

  /**
   * Registers a secret. Returns false (and registers nothing) for
   * non-strings, values shorter than {@link MIN_SECRET_LENGTH}, and
   * whitespace-only values.
   */
  register(value: unknown): boolean {
    if (!isRegistrable(value)) return false;
    this.#counts.set(value, (this.#counts.get(value) ?? 0) + 1);
    if (!this.#forms.has(value)) {
      const forms = formsOf(value);
      this.#forms.set(value, forms);
      for (const form of forms) this.#index(form, +1);
    }
    return true;
  }

  /** Drops one registration of `value`; the value is forgotten at zero. */
  unregister(value: unknown): void {
    if (typeof value !== "string") return;
    const n = this.#counts.get(value);
    if (n === undefined) return;
    if (n <= 1) {
      this.#counts.delete(value);
      for (const form of this.#forms.get(value) ?? []) this.#index(form, -1);
      this.#forms.delete(value);
    } else this.#counts.set(value, n - 1);
  }

  /** Adds (+1) or removes (-1) one form in the index; two values may share a form (a JSON-escaped one may equal another value). */
  #index(form: string, delta: 1 | -1): void {
    if (form.length < MIN_SECRET_LENGTH) return;
    const key = form.charCodeAt(0) * 0x10000 + form.charCodeAt(1);
    const list = this.#byStart.get(key) ?? [];
    if (delta > 0) {
      // Longest first, so a secret that contains another is replaced whole. Values often share
      // their first characters (`sk-…`, `ghp_…`), so the place is found by halving.
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (list[mid]!.length >= form.length) lo = mid + 1;
        else hi = mid;
      }
      list.splice(lo, 0, form);
      this.#byStart.set(key, list);
    } else {
      const at = list.indexOf(form);
      if (at === -1) return;
      list.splice(at, 1);
      if (list.length === 0) this.#byStart.delete(key);
    }
    this.#startCounts[startSlot(form.charCodeAt(0), form.charCodeAt(1))]! += delta;
    this.#indexed += delta;
    this.#fewForms = undefined;
  }

  /** The leftmost registered form at or after `from` (the longest of those starting there), as [position, form]. */
  #nextMatch(text: string, from: number): [number, string] | undefined {
    if (this.#indexed <= FEW_FORMS) {
      const forms = (this.#fewForms ??= [...this.#byStart.values()].flat().sort((a, b) => b.length - a.length));
      let best: [number, string] | undefined;
      for (const form of forms) {
        const at = text.indexOf(form, from);
        // Longest first: at the same position the longer form was found first and stays.
        if (at !== -1 && (best === undefined || at < best[0])) best = [at, form];
      }
      return best;
    }
    for (let at = this.#nextCandidate(text, from); at !== -1; at = this.#nextCandidate(text, at + 1)) {
      const form = this.#formAt(text, at);
      if (form !== undefined) return [at, form];
    }
    return undefined;
  }

  /** The longest registered form at `text[at…]`, or undefined. */
  #formAt(text: string, at: number): string | undefined {
    const list = this.#byStart.get(text.charCodeAt(at) * 0x10000 + text.charCodeAt(at + 1));
    if (list) for (const form of list) if (text.startsWith(form, at)) return form;
    return undefined;
  }

  /** The first position from `from` where a registered form may start (its first two characters' slot is used), or -1. */
  #nextCandidate(text: string, from: number): number {
    const counts = this.#startCounts;
    const last = text.length - MIN_SECRET_LENGTH;
    let c0 = text.charCodeAt(from);
    for (let i = from; i <= last; i++) {
      const c1 = text.charCodeAt(i + 1);
      if (counts[startSlot(c0, c1)] !== 0) return i;
      c0 = c1;
    }
    return -1;
  }

  /**
   * Registers every value and returns a function that unregisters exactly
   * those registrations (call it when the task ends). Idempotent.
   */
  registerAll(values: Iterable<unknown>): () => void {
    const registered: string[] = [];
    for (const v of values) if (this.register(v)) registered.push(v as string);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const v of registered) this.unregister(v);
    };
  }

  has(value: string): boolean {
    return this.#counts.has(value);
  }

  /** Number of distinct registered values. */
  get size(): number {
    return this.#counts.size;
  }

  clear(): void {
    this.#counts.clear();
    this.#forms.clear();
    this.#byStart.clear();
    this.#startCounts.fill(0);
    this.#indexed = 0;
    this.#fewForms = undefined;
  }

  /** Replaces every registered secret (and its encoded forms) in `text`: at each position the longest, leftmost first. */
  redact(text: string): string {
    if (this.#indexed === 0) return text;
    let out = "";
    let copied = 0;
    for (let match = this.#nextMatch(text, 0); match !== undefined; match = this.#nextMatch(text, copied)) {
      out += text.slice(copied, match[0]) + REDACTED;
      copied = match[0] + match[1].length;
    }
    return copied === 0 ? text : out + text.slice(copied);
  }

  /**
   * For text that starts where a longer text was cut: a leading piece that is the end of a
   * registered secret (or of one of its encoded forms), which redact() cannot match, becomes
   * `<redacted>`. Pieces shorter than {@link MIN_SECRET_LENGTH} are left, as short values are.
   */
  redactCutStart(text: string): string {
    if (text.length < MIN_SECRET_LENGTH) return text;
    // Candidate suffixes of a form start where the text's first characters occur in it, so
    // the search is a few indexOf calls per form, not one comparison per suffix length.
    const head = text.slice(0, MIN_SECRET_LENGTH);
    let longest = 0;
    for (const forms of this.#forms.values()) {
      for (const form of forms) {
        for (let at = form.indexOf(head, 1); at !== -1; at = form.indexOf(head, at + 1)) {
          const k = form.length - at;
          if (k <= longest || k > text.length) continue;
          if (text.startsWith(form.slice(at))) {
            longest = k;
            break;
          }
        }
      }
    }
    return longest > 0 ? REDACTED + text.slice(longest) : text;
  }

  /** True when `text` contains a registered secret. */
  contains(text: string): boolean {
    return this.#indexed > 0 && this.#nextMatch(text, 0) !== undefined;
  }

  /**
   * A JSON-safe deep copy of `value` with secrets redacted: strings are
   * redacted, Errors become {name, message, stack, code?, cause?, ...},
   * Maps become objects, Sets and iterables arrays, binary data a
   * placeholder, cycles "[Circular]".
   */
  redactDeep(value: unknown): unknown {
    return this.#deep(value, 0, new WeakSet());
  }

  #deep(value: unknown, depth: number, seen: WeakSet<object>): unknown {
    switch (typeof value) {
      case "string":
        return this.redact(value);
      case "number":
      case "bigint": {
        const s = String(value);
        return this.contains(s) ? REDACTED : typeof value === "bigint" ? s : value;
      }
      case "boolean":
      case "undefined":
        return value;
      case "symbol":
        return this.redact(value.toString());
      case "function":
        return `[Function ${value.name || "anonymous"}]`;
    }
    if (value === null) return null;
    const obj = value as object;
    if (seen.has(obj)) return "[Circular]";
    if (depth >= MAX_REDACT_DEPTH) return "[Truncated]";
    seen.add(obj);
    try {
      if (obj instanceof Error) return this.#error(obj, depth, seen);
      if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? "Invalid Date" : obj.toISOString();
      if (ArrayBuffer.isView(obj)) return `[${obj.constructor.name} ${obj.byteLength} bytes]`;
      if (obj instanceof ArrayBuffer) return `[ArrayBuffer ${obj.byteLength} bytes]`;
      if (Array.isArray(obj)) return obj.map((v) => this.#deep(v, depth + 1, seen));
      if (obj instanceof Map) {
        const out: Record<string, unknown> = {};
        for (const [k, v] of obj) out[this.redact(String(k))] = this.#deep(v, depth + 1, seen);
        return out;
      }
      if (obj instanceof Set) return [...obj].map((v) => this.#deep(v, depth + 1, seen));
      if (obj instanceof URL) return this.redact(obj.href);
      const toJSON = (obj as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === "function") {
        return this.#deep(toJSON.call(obj), depth + 1, seen);
      }
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(obj)) {
        out[this.redact(k)] = this.#deep((obj as Record<string, unknown>)[k], depth + 1, seen);
      }
      return out;
    } catch {
      return "[Unserializable]";
    } finally {
      seen.delete(obj);
    }
  }

  #error(err: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
    const out: Record<string, unknown> = {
      name: this.redact(String(err.name)),
      message: this.redact(String(err.message)),
    };
    if (typeof err.stack === "string") out.stack = this.redact(err.stack);
    for (const k of Object.keys(err)) {
      if (k === "name" || k === "message" || k === "stack") continue;
      out[this.redact(k)] = this.#deep((err as unknown as Record<string, unknown>)[k], depth + 1, seen);
    }
    if (err.cause !== undefined && !("cause" in out)) out.cause = this.#deep(err.cause, depth + 1, seen);
    if (err instanceof AggregateError && !("errors" in out)) {
      out.errors = this.#deep(err.errors, depth + 1, seen);
    }
    return out;
  }
}

/** A secret as it may appear in a line: itself, JSON-escaped, URL-encoded. */
function formsOf(v: string): string[] {
  const forms = [v];
  const json = JSON.stringify(v).slice(1, -1);
  if (json !== v) forms.push(json);
  try {
    const uri = encodeURIComponent(v);
    if (uri !== v) forms.push(uri);
  } catch {
    // lone surrogate: no URL-encoded form
  }
  return forms;
}

function isRegistrable(value: unknown): value is string {
  return typeof value === "string" && value.length >= MIN_SECRET_LENGTH && value.trim() !== "";
}

/** The process-wide registry used by loggers unless one is passed in. */
export const secrets = new SecretRegistry();

/** Registers a secret in the process-wide registry; see {@link SecretRegistry.register}. */
export function registerSecret(value: unknown): boolean {
  return secrets.register(value);
}

/** Unregisters a secret from the process-wide registry. */
export function unregisterSecret(value: unknown): void {
  secrets.unregister(value);
}

/** The slot of a form's first two characters in the table of starts. */
function startSlot(c0: number, c1: number): number {
  return (c0 * 31 + c1) & (START_SLOTS - 1);
}
