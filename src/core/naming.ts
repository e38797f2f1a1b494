// Names, labels and hashes of the objects the worker creates. Pure and total:
// every function returns a valid Kubernetes name / label value for any input.
import { createHash } from "node:crypto";

/** Longest DNS-1123 label; also the longest label value. The Job controller copies
 * the Job name into the `job-name` label of its Pods, so Job names stay within it. */
export const MAX_LABEL_LENGTH = 63;
/** Longest DNS-1123 subdomain (Secret names). */
export const MAX_SUBDOMAIN_LENGTH = 253;

export const WORKER_ID_LABEL = "oz-worker-id";
export const WORKER_HASH_LABEL = "oz-worker-hash";
export const TASK_ID_LABEL = "oz-task-id";
export const TASK_HASH_LABEL = "oz-task-hash";
export const EXECUTION_ID_LABEL = "oz-execution-id";
export const EXECUTION_HASH_LABEL = "oz-execution-hash";
/** Marks the short-lived preflight Job and its Pod. */
export const PREFLIGHT_LABEL = "oz-preflight";

/** Annotation patched onto a task Job once its outcome has been reported to Oz, so a
 * restarted worker never reports it twice. */
export const REPORTED_OUTCOME_ANNOTATION = "oz.warp.dev/reported-outcome";
/** The exact task and execution ids on the task Job (labels hold sanitized, possibly cut
 * values), so a restarted worker can report a re-adopted Job's outcome under the right id. */
export const TASK_ID_ANNOTATION = "oz.warp.dev/task-id";
export const EXECUTION_ID_ANNOTATION = "oz.warp.dev/execution-id";

const TASK_JOB_PREFIX = "oz-task-";
const TASK_JOB_EXEC_SEPARATOR = "-exec-";
const EXEC_SUFFIX_LENGTH = 8;
/** Hex characters of the execution part when the readable form would lose information. */
const LOSSY_EXEC_HASH_LENGTH = 10;
const PREFLIGHT_JOB_PREFIX = "oz-preflight-";

/** First 8 bytes of SHA-256 of the UTF-8 string, as 16 lowercase hex characters. */
export function shortHash(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex").slice(0, 16);
}

// The worker's own hash goes on every task Job: computed once per worker id.
let workerHashMemo: { workerId: string; hash: string } | undefined;
function workerHash(workerId: string): string {
  if (workerHashMemo?.workerId !== workerId) workerHashMemo = { workerId, hash: shortHash(workerId) };
  return workerHashMemo.hash;
}

/** Lowercase one code point the way Go's unicode.ToLower does for a single rune
 * (JS may expand a code point into several; the first is the simple mapping). */
function lowerCodePoint(ch: string): string {
  const lower = ch.toLowerCase();
  const first = lower.codePointAt(0);
  return first === undefined ? ch : String.fromCodePoint(first);
}

/**
 * Each code point lowercased, kept when `keep` says so, else '-'. A value made only of
 * characters in `unchanged` (which the mapping leaves alone) is returned as is: ids from
 * Oz are lowercase UUIDs, and the per-code-point walk is most of a task Job's build time.
 */
function mapCodePoints(value: string, keep: (c: string) => boolean, unchanged: RegExp): string {
  if (unchanged.test(value)) return value;
  let out = "";
  for (const ch of value) {
    const c = lowerCodePoint(ch);
    out += keep(c) ? c : "-";
  }
  return out;
}

const isAlnum = (c: string): boolean => (c >= "a" && c <= "z") || (c >= "0" && c <= "9");
const isLabelChar = (c: string): boolean => isAlnum(c) || c === "-" || c === "_" || c === ".";
// What mapCodePoints leaves unchanged with each `keep` (a '-' that is not kept becomes '-').
const NAME_UNCHANGED = /^[a-z0-9-]*$/;
const LABEL_UNCHANGED = /^[a-z0-9._-]*$/;

function trimChars(value: string, chars: string, side: "both" | "end" = "both"): string {
  let start = 0;
  let end = value.length;
  if (side === "both") while (start < end && chars.includes(value[start]!)) start++;
  while (end > start && chars.includes(value[end - 1]!)) end--;
  return value.slice(start, end);
}

/** Lowercase, every character outside [a-z0-9] becomes '-', leading/trailing '-' trimmed.
 * May return "" when nothing usable is left. */
export function sanitizeNameFragment(value: string): string {
  return trimChars(mapCodePoints(value, isAlnum, NAME_UNCHANGED), "-");
}

/** A valid label value (≤ 63, [a-z0-9._-], alphanumeric at both ends) for any input;
 * "unknown" when nothing usable is left. Lowercases like the Go worker. */
export function sanitizeLabelValue(value: string): string {
  let sanitized = trimChars(mapCodePoints(value, isLabelChar, LABEL_UNCHANGED), "-_.");
  if (sanitized.length > MAX_LABEL_LENGTH) {
    sanitized = trimChars(sanitized.slice(0, MAX_LABEL_LENGTH), "-_.", "end");
  }
  return sanitized === "" ? "unknown" : sanitized;
}

/** The execution this assignment launches: execution_id, or task_id when blank. */
export function effectiveExecutionId(taskId: string, executionId: string | undefined): string {
  return executionId !== undefined && executionId.trim() !== "" ? executionId : taskId;
}

/**
 * `oz-task-<run>-exec-<last 8 of execution id>`, when that form loses nothing that tells
 * executions apart: the run part is the whole task id unchanged (already lowercase
 * [a-z0-9-], not cut) and the execution part the last 8 characters of the execution id
 * unchanged, without '-' (so the name splits back into the two at its last '-').
 * Executions of one task are then told apart by the last 8 characters of their ids; Oz's
 * are UUIDs, whose tail is random hex.
 *
 * Otherwise (sanitizing "Run_42" and "run-42" gives the same fragment, and the second Job of
 * that name would fail with a 409) the execution part is 10 hex characters of SHA-256 over
 * both exact ids, which no kept form can equal (its execution part has at most 8), and the
 * run part is the sanitized task id (lowercase, non [a-z0-9] → '-', '-' trimmed) cut to fit
 * and trimmed again ("run" when empty). Always a DNS-1123 label of at most 63 characters.
 */
export function taskJobName(taskId: string, executionId: string): string {
  const effective = effectiveExecutionId(taskId, executionId);
  const run = sanitizeNameFragment(taskId);
  const tail = effective.slice(-EXEC_SUFFIX_LENGTH);
  if (run !== "" && run === taskId && run.length <= maxRunLength(tail.length) && /^[a-z0-9]+$/.test(tail)) {
    return `${TASK_JOB_PREFIX}${run}${TASK_JOB_EXEC_SEPARATOR}${tail}`;
  }
  const exec = shortHash(JSON.stringify([taskId, effective])).slice(0, LOSSY_EXEC_HASH_LENGTH);
  const cut = trimChars(run.slice(0, maxRunLength(exec.length)), "-") || "run";
  return `${TASK_JOB_PREFIX}${cut}${TASK_JOB_EXEC_SEPARATOR}${exec}`;
}

function maxRunLength(execLength: number): number {
  return MAX_LABEL_LENGTH - TASK_JOB_PREFIX.length - TASK_JOB_EXEC_SEPARATOR.length - execLength;
}

/** `oz-preflight-<worker hash>-<nanos>`; nanos is the caller's clock reading (ns). */
export function preflightJobName(workerId: string, nanos: bigint | number): string {
  const digits =
    typeof nanos === "bigint"
      ? (nanos < 0n ? -nanos : nanos).toString()
      : Number.isFinite(nanos)
        ? BigInt(Math.trunc(Math.abs(nanos))).toString()
        : "0";
  const prefix = `${PREFLIGHT_JOB_PREFIX}${shortHash(workerId)}-`;
  return prefix + digits.slice(0, MAX_LABEL_LENGTH - prefix.length);
}

/** The six identity labels of a task Job and its Pod. */
export function taskLabels(
  workerId: string,
  taskId: string,
  executionId: string,
): Record<string, string> {
  const exec = effectiveExecutionId(taskId, executionId);
  return {
    [WORKER_ID_LABEL]: sanitizeLabelValue(workerId),
    [WORKER_HASH_LABEL]: workerHash(workerId),
    [TASK_ID_LABEL]: sanitizeLabelValue(taskId),
    [TASK_HASH_LABEL]: shortHash(taskId),
    [EXECUTION_ID_LABEL]: sanitizeLabelValue(exec),
    [EXECUTION_HASH_LABEL]: shortHash(exec),
  };
}

/** The worker's identity labels (used by the preflight Job). */
export function workerLabels(workerId: string): Record<string, string> {
  return {
    [WORKER_ID_LABEL]: sanitizeLabelValue(workerId),
    [WORKER_HASH_LABEL]: shortHash(workerId),
  };
}

/** Label selector for every object of this worker: `oz-worker-hash=<hash>`. */
export function workerHashSelector(workerId: string): string {
  return `${WORKER_HASH_LABEL}=${shortHash(workerId)}`;
}

/** Label selector for the Pods of one execution: `oz-execution-hash=<hash>`. */
export function executionHashSelector(executionId: string): string {
  return `${EXECUTION_HASH_LABEL}=${shortHash(executionId)}`;
}

/** Label selector for task Jobs only (excludes the preflight Job). */
export function workerTaskJobsSelector(workerId: string): string {
  return `${workerHashSelector(workerId)},!${PREFLIGHT_LABEL}`;
}

/** Name of the per-task Secret holding the assignment's env_vars: `<job name>-env`. */
export function taskSecretNameFor(jobName: string): string {
  const suffix = "-env";
  return jobName.slice(0, MAX_SUBDOMAIN_LENGTH - suffix.length) + suffix;
}

/** Longest Secret data key (the API server's limit for ConfigMap and Secret keys). */
export const MAX_SECRET_KEY_LENGTH = 253;
/** How much of an escaped env var name a cut key keeps before `..<sha-256>`. */
const SECRET_KEY_PREFIX_LENGTH = 150;

/**
 * The key under which the per-task Secret holds an env var. Env var names may use any
 * printable ASCII but '=' (`MY-TOKEN`, `my.dotted`, `with space`); Secret keys only
 * `[-._a-zA-Z0-9]`, at most 253, never starting with "..". A name made of `[-_a-zA-Z0-9]`
 * is its own key (so keys of earlier Jobs stay valid); in any other name each UTF-8 byte
 * outside that set becomes `.XX` (hex), so `my.dotted` → `my.2edotted`. Injective: '.'
 * only ever starts an escape. A key longer than 253 keeps its first 150 characters and
 * ends in `..` plus the name's SHA-256, a form no escaped name has (it never holds "..").
 */
export function taskSecretKeyFor(envName: string): string {
  let key = "";
  for (const byte of new TextEncoder().encode(envName)) {
    const c = String.fromCharCode(byte);
    key += /[-_a-zA-Z0-9]/.test(c) ? c : `.${byte.toString(16).padStart(2, "0")}`;
  }
  if (key.length <= MAX_SECRET_KEY_LENGTH) return key;
  return `${key.slice(0, SECRET_KEY_PREFIX_LENGTH)}..${createHash("sha256").update(envName, "utf8").digest("hex")}`;
}
