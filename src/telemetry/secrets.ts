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
/**
 * Forms longer than this are found with indexOf instead of the regular expression: a
 * task's env_vars may hold values of megabytes (the API server allows 1 MiB per Secret),
 * and JavaScriptCore refuses (or takes seconds to compile) a pattern that large.
 */
const MAX_PATTERN_FORM_LENGTH = 1024;
/** Alternatives per compiled pattern: one pattern of tens of thousands is "too large". */
const MAX_PATTERN_ALTERNATIVES = 1000;

const MAX_REDACT_DEPTH = 12;

/**
 * Reference-counted set of secret strings. The same value may be registered
 * by two concurrent tasks; it stays registered until both unregister it.
 */
export class SecretRegistry {
  readonly #counts = new Map<string, number>();
  /** Each registered value's forms (itself, JSON-escaped, URL-encoded), computed once. */
  readonly #forms = new Map<string, string[]>();
  /** Longest first: long forms (indexOf), then patterns of the shorter ones; undefined = stale. */
  #matchers: { long: string[]; patterns: RegExp[] } | null | undefined = null;

  /**
   * Registers a secret. Returns false (and registers nothing) for
   * non-strings, values shorter than {@link MIN_SECRET_LENGTH}, and
   * whitespace-only values.
   */
  register(value: unknown): boolean {
    if (!isRegistrable(value)) return false;
    this.#counts.set(value, (this.#counts.get(value) ?? 0) + 1);
    if (!this.#forms.has(value)) this.#forms.set(value, formsOf(value));
    this.#matchers = undefined;
    return true;
  }

  /** Drops one registration of `value`; the value is forgotten at zero. */
  unregister(value: unknown): void {
    if (typeof value !== "string") return;
    const n = this.#counts.get(value);
    if (n === undefined) return;
    if (n <= 1) {
      this.#counts.delete(value);
      this.#forms.delete(value);
    } else this.#counts.set(value, n - 1);
    this.#matchers = undefined;
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
    this.#matchers = null;
  }

  /** Replaces every registered secret (and its encoded forms) in `text`. */
  redact(text: string): string {
    const m = this.#compile();
    if (m === null || text.length < MIN_SECRET_LENGTH) return text;
    let out = text;
    for (const form of m.long) {
      if (out.length >= form.length && out.includes(form)) out = out.split(form).join(REDACTED);
    }
    for (const re of m.patterns) {
      re.lastIndex = 0;
      out = out.replace(re, REDACTED);
    }
    return out;
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
    const m = this.#compile();
    if (m === null) return false;
    if (m.long.some((form) => text.length >= form.length && text.includes(form))) return true;
    return m.patterns.some((re) => {
      re.lastIndex = 0;
      return re.test(text);
    });
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

  #compile(): { long: string[]; patterns: RegExp[] } | null {
    if (this.#matchers !== undefined) return this.#matchers;
    if (this.#counts.size === 0) {
      this.#matchers = null;
      return null;
    }
    const forms = new Set<string>();
    for (const list of this.#forms.values()) for (const f of list) forms.add(f);
    // Longest first, so a secret that contains another is replaced whole.
    const sorted = [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
    const long = sorted.filter((f) => f.length > MAX_PATTERN_FORM_LENGTH);
    const short = sorted.filter((f) => f.length <= MAX_PATTERN_FORM_LENGTH).map(escapeRegExp);
    const patterns: RegExp[] = [];
    for (let i = 0; i < short.length; i += MAX_PATTERN_ALTERNATIVES) {
      patterns.push(new RegExp(short.slice(i, i + MAX_PATTERN_ALTERNATIVES).join("|"), "g"));
    }
    this.#matchers = long.length + patterns.length === 0 ? null : { long, patterns };
    return this.#matchers;
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

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
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
