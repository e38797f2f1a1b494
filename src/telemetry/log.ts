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
 * Redaction: a {@link SecretRegistry} (src/telemetry/secrets.ts; the process-wide
 * {@link secrets} by default) holds secret values (the API key, every running task's env_var
 * values). At write time every registered value, and its JSON-escaped and
 * URL-encoded forms, is replaced by `<redacted>` in the message and in all
 * fields, deeply (nested objects, arrays, Map/Set, Error message/stack/cause).
 * Redaction happens when a line is written, so a secret registered after a
 * child logger was bound is still redacted in that child's fields.
 */
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola/core";
import { secrets, type SecretRegistry } from "./secrets.ts";

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
