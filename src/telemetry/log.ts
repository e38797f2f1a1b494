/**
 * Logging for oz-worker: a small structured logger on top of consola, with
 * secret redaction applied to every line before it is written.
 *
 * Streams: every log line goes to **stderr** by default, in both formats.
 * stdout is kept for command output (`oz-worker preflight`, `--help`, ...),
 * so a subcommand's result is never interleaved with log lines; container
 * runtimes collect both streams, so nothing is lost in a pod. `stream` in
 * {@link LoggerOptions} overrides the destination.
 *
 * Formats:
 *  - `json`: one JSON object per line: `{"time","level","msg",...fields}`.
 *  - `pretty`: `HH:MM:SS.mmm LEVEL message key=value ...` (coloured on a
 *    terminal unless NO_COLOR is set); error stacks on the following lines.
 *  - `auto` (default): `pretty` when stdout is a terminal, else `json`.
 *
 * Redaction: a {@link SecretRegistry} (the process-wide {@link secrets} by
 * default) holds secret values (the API key, every running task's env_var
 * values). At write time every registered value, and its JSON-escaped and
 * URL-encoded forms, is replaced by `<redacted>` in the message and in all
 * fields, deeply (nested objects, arrays, Map/Set, Error message/stack/cause).
 * Redaction happens when a line is written, so a secret registered after a
 * child logger was bound is still redacted in that child's fields.
 */
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola/core";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "pretty" | "json" | "auto";
export type LogFields = Record<string, unknown>;

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export const LOG_FORMATS: readonly LogFormat[] = ["pretty", "json", "auto"];

/** The small logger interface the whole worker uses. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose every line carries `fields` (line fields win on conflict). */
  child(fields: LogFields): Logger;
  /** A child for one task execution: every line carries task_id and execution_id (see serverText). */
  withTask(ids: TaskLogIds): Logger;
}

export interface TaskLogIds {
  task_id: string;
  /** Falls back to task_id when empty, as the protocol does. */
  execution_id?: string | undefined;
}

/** Where lines are written; process.stderr by default. */
export interface LogSink {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface LoggerOptions {
  /** Minimum level written; default "info". */
  level?: LogLevel;
  /** Default "auto": pretty when stdout is a TTY, json otherwise. */
  format?: LogFormat;
  /** Secret registry consulted at write time; default the process-wide {@link secrets}. */
  secrets?: SecretRegistry;
  /** Destination; default process.stderr. */
  stream?: LogSink;
  /** Fields bound to every line of this logger and its children. */
  fields?: LogFields;
  /** Clock for the `time` field (tests). */
  clock?: () => Date;
}

// ---------------------------------------------------------------------------
// Secret registry and redaction
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Strings from the server
// ---------------------------------------------------------------------------

/** Characters of a server-supplied string a log line keeps. */
export const MAX_SERVER_TEXT = 200;

// C0 and C1 controls, DEL, line/paragraph separators, bidi controls, BOM, lone surrogates.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * A string the Oz server sent (ids, image names, message types), ready for a log line: at
 * most `max` code points, with the full length noted when cut, and every control, line
 * separator or bidi character as a `\uXXXX` escape, so a pretty log on a terminal shows
 * the text and never runs it (`\u001b]0;…` retitles a terminal).
 */
export function serverText(value: string, max: number = MAX_SERVER_TEXT): string {
  if (value.length <= max) return escapeUnsafe(value);
  const points = Array.from(value);
  if (points.length <= max) return escapeUnsafe(value);
  return `${escapeUnsafe(points.slice(0, max).join(""))}…(${points.length} chars)`;
}

function escapeUnsafe(text: string): string {
  return text.replace(UNSAFE_CHARS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

// ---------------------------------------------------------------------------
// Logger
// ---------------------------------------------------------------------------

const CONSOLA_LEVEL: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4 };
const RESERVED_KEYS = new Set(["time", "level", "msg"]);

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && (LOG_LEVELS as readonly string[]).includes(value);
}

export function isLogFormat(value: unknown): value is LogFormat {
  return typeof value === "string" && (LOG_FORMATS as readonly string[]).includes(value);
}

/** "auto" → json unless stdout is a terminal. */
export function resolveLogFormat(
  format: LogFormat,
  stdoutIsTTY: boolean = Boolean(process.stdout?.isTTY),
): "pretty" | "json" {
  if (format === "auto") return stdoutIsTTY ? "pretty" : "json";
  return format;
}

interface LineContext {
  registry: SecretRegistry;
  clock: () => Date;
  sink: LogSink;
}

/** Marker carried in consola args so reporters get the structured record. */
interface LineRecord {
  msg: string;
  fields: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const format = resolveLogFormat(options.format ?? "auto");
  const sink: LogSink = options.stream ?? process.stderr;
  const ctx: LineContext = {
    registry: options.secrets ?? secrets,
    clock: options.clock ?? (() => new Date()),
    sink,
  };
  const reporter = format === "json" ? jsonReporter(ctx) : prettyReporter(ctx);
  // consola/core: level filtering and dispatch only, no environment-driven
  // defaults (CONSOLA_LEVEL, CI detection) and no built-in reporters.
  const consola = createConsola({
    level: CONSOLA_LEVEL[level],
    reporters: [reporter],
    // Never collapse repeated lines: each line is an event for operators.
    throttle: 0,
  });
  return new ConsolaLogger(consola, ctx, options.fields ?? {});
}

class ConsolaLogger implements Logger {
  readonly #consola: ConsolaInstance;
  readonly #ctx: LineContext;
  readonly #bindings: LogFields;

  constructor(consola: ConsolaInstance, ctx: LineContext, bindings: LogFields) {
    this.#consola = consola;
    this.#ctx = ctx;
    this.#bindings = bindings;
  }

  debug(msg: string, fields?: LogFields): void {
    this.#write("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#write("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#write("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.#write("error", msg, fields);
  }

  child(fields: LogFields): Logger {
    return new ConsolaLogger(this.#consola, this.#ctx, { ...this.#bindings, ...fields });
  }

  withTask(ids: TaskLogIds): Logger {
    // The ids come from the Oz server: on every line of the task, bounded and escaped.
    const execution_id = ids.execution_id ? ids.execution_id : ids.task_id;
    return this.child({ task_id: serverText(ids.task_id), execution_id: serverText(execution_id) });
  }

  #write(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    // Logging must never throw into the worker.
    try {
      if (CONSOLA_LEVEL[level] > this.#consola.level) return;
      const { registry } = this.#ctx;
      const merged = fields ? { ...this.#bindings, ...fields } : this.#bindings;
      const record: LineRecord = {
        msg: registry.redact(typeof msg === "string" ? msg : String(msg)),
        fields: registry.redactDeep(merged) as Record<string, unknown>,
      };
      this.#consola[level](record);
    } catch {
      // dropped: a broken sink or an exotic value must not break a task
    }
  }
}

function recordOf(logObj: LogObject): LineRecord | undefined {
  // consola moves a single object argument with no `message`/`args` key into args.
  const first = logObj.args[0] as unknown;
  if (first && typeof first === "object" && "msg" in first && "fields" in first) {
    return first as LineRecord;
  }
  return undefined;
}

function levelName(logObj: LogObject): LogLevel {
  if (logObj.level <= 0) return "error";
  if (logObj.level === 1) return "warn";
  if (logObj.level >= 4) return "debug";
  return "info";
}

function jsonReporter(ctx: LineContext): ConsolaReporter {
  return {
    log(logObj) {
      const rec = recordOf(logObj);
      const line: Record<string, unknown> = {
        time: ctx.clock().toISOString(),
        level: levelName(logObj),
        msg: rec ? rec.msg : ctx.registry.redact(logObj.args.map(String).join(" ")),
      };
      if (rec) {
        for (const [k, v] of Object.entries(rec.fields)) {
          if (v === undefined) continue;
          line[RESERVED_KEYS.has(k) ? `${k}_` : k] = v;
        }
      }
      try {
        ctx.sink.write(`${JSON.stringify(line)}\n`);
      } catch {
        // EPIPE and friends: drop the line
      }
    },
  };
}

const PRETTY_BADGE: Record<LogLevel, { text: string; color: string }> = {
  debug: { text: "DEBUG", color: "\x1b[90m" },
  info: { text: "INFO ", color: "\x1b[36m" },
  warn: { text: "WARN ", color: "\x1b[33m" },
  error: { text: "ERROR", color: "\x1b[31m" },
};

function prettyReporter(ctx: LineContext): ConsolaReporter {
  const colors = Boolean(ctx.sink.isTTY) && !process.env.NO_COLOR;
  return {
    log(logObj) {
      const rec = recordOf(logObj);
      const level = levelName(logObj);
      const text = rec ? formatPretty(rec) : ctx.registry.redact(logObj.args.map(String).join(" "));
      const time = ctx.clock().toISOString().slice(11, 23);
      const badge = PRETTY_BADGE[level];
      const line = colors
        ? `\x1b[2m${time}\x1b[0m ${badge.color}${badge.text}\x1b[0m ${text}`
        : `${time} ${badge.text} ${text}`;
      try {
        ctx.sink.write(`${line}\n`);
      } catch {
        // EPIPE and friends: drop the line
      }
    },
  };
}

function formatPretty(rec: LineRecord): string {
  let line = rec.msg;
  const stacks: string[] = [];
  for (const [k, v] of Object.entries(rec.fields)) {
    if (v === undefined) continue;
    if (isSerializedError(v)) {
      line += ` ${k}=${quoteIfNeeded(String(v.message))}`;
      if (typeof v.stack === "string") stacks.push(v.stack);
      continue;
    }
    line += ` ${k}=${typeof v === "string" ? quoteIfNeeded(v) : JSON.stringify(v)}`;
  }
  return stacks.length > 0 ? `${line}\n${stacks.join("\n")}` : line;
}

function isSerializedError(v: unknown): v is { message: unknown; stack?: unknown } {
  return typeof v === "object" && v !== null && "message" in v && "name" in v && "stack" in v;
}

function quoteIfNeeded(s: string): string {
  return s === "" || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** A logger that drops everything (tests, library defaults). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
  withTask() {
    return silentLogger;
  },
};
