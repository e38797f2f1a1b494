// The Oz worker wire protocol: message types, parsing of untrusted server frames, and
// builders for the worker's own messages. Pure: no I/O.
//
// Parsing policy. Fields that shape the Kubernetes Job (ids, images, env_vars, sidecars,
// oz args, instance shape) are checked strictly: a wrong type is an error naming the
// field path. Informational fields (title, prompt, timestamps) and the
// agent_config_snapshot are lenient like the Go worker: unknown keys are ignored and a
// snapshot field of the wrong type is dropped. Sizes are the API server's to judge, but
// for the few LIMITS below. Error messages name the path and the problem and never
// include values (env_vars hold secrets).
import * as v from "valibot";
import { FAILURE_REASONS, type FailureReason } from "./failure-reasons.ts";

// ---------------------------------------------------------------------------
// Types

export interface TaskOwner {
  /** "USER" or "TEAM" (other values are kept but never treated as TEAM). */
  Type: string;
  Id?: number | string;
}

export interface AwsInferenceProvider {
  disabled?: boolean;
  role_arn?: string;
  region?: string;
}

export interface AgentConfigSnapshot {
  environment_id?: string;
  base_prompt?: string;
  model_id?: string;
  profile_id?: string;
  skill_spec?: string;
  mcp_servers?: Record<string, unknown>;
  computer_use_enabled?: boolean;
  idle_timeout_minutes?: number;
  harness?: { type?: string };
  harness_auth_secrets?: Record<string, unknown>;
  inference_providers?: { aws?: AwsInferenceProvider };
  session_sharing?: { public_access?: string };
  snapshot_disabled?: boolean;
  snapshot_upload_timeout_secs?: number;
  snapshot_script_timeout_secs?: number;
}

export interface Task {
  id: string;
  title?: string;
  task_definition?: { prompt?: string };
  created_at?: string;
  updated_at?: string;
  owner?: TaskOwner;
  agent_config_snapshot?: AgentConfigSnapshot;
  agent_conversation_id?: string;
}

export interface AdditionalSidecar {
  image: string;
  mount_path: string;
  read_write: boolean;
}

export interface InstanceShape {
  vcpus?: number;
  memory_gb?: number;
}

/** A parsed, normalized `task_assignment`. */
export interface TaskAssignment {
  task_id: string;
  /** Always set after parsing: the wire execution_id, or task_id when blank. */
  execution_id: string;
  task: Task;
  docker_image?: string;
  sidecar_image?: string;
  env_vars: Record<string, string>;
  additional_sidecars: AdditionalSidecar[];
  additional_oz_args: string[];
  instance_shape?: InstanceShape;
}

export interface TaskCancellation {
  task_id: string;
}

export type TaskAssignmentMessage = { type: "task_assignment"; data: TaskAssignment };
export type TaskCancellationMessage = { type: "task_cancellation"; data: TaskCancellation };
export type UnknownMessage = { type: "unknown"; type_name: string };
export type ServerMessage = TaskAssignmentMessage | TaskCancellationMessage | UnknownMessage;

export type ParseError = {
  ok: false;
  /** Field path and problem, e.g. `data.instance_shape.vcpus: expected number, got string`. */
  error: string;
  /** The frame's task_id when it could be read (so the worker can report the failure). */
  task_id?: string;
  /** With task_id: the failure reason to report (see invalidAssignmentReason). */
  failure_reason?: FailureReason;
};
export type ParseResult<T> = { ok: true; message: T } | ParseError;

// ---------------------------------------------------------------------------
// Bounds
//
// The rule: an assignment the Go worker would run, oz-worker runs too; the API server is
// the judge of what a Job or Secret may hold (names, sizes, counts), and its refusal
// fails the task with `job_create` and the server's message. The few bounds below refuse
// what the cluster would accept, each for the reason given (docs/reliability.md lists
// them as deliberate differences from the Go worker).

export const LIMITS = {
  /** task_id and execution_id (which also must not be blank or hold control characters):
   * Oz issues 36-character UUIDs; each id is repeated on every log line of its task, in the
   * Job's annotations and in every message about the task, so a multi-megabyte id would
   * multiply into the logs, and a control character would reach every one of those lines. */
  idLength: 256,
  /** docker_image, sidecar_image and sidecar images: no image reference is longer (name
   * ≤ 255, tag ≤ 128, digest ≤ 135 characters), so the kubelet would answer
   * InvalidImageName; the task fails with the same reason, `invalid_image`, before any
   * Job exists. */
  imageLength: 1024,
  /** Nesting of mcp_servers / harness_auth_secrets: Go's encoding/json refuses JSON nested
   * deeper than 10,000 levels (so the Go worker never runs such a frame), and the bound
   * keeps recursive serialisation (JSON.stringify into `--mcp`) off a stack overflow. */
  jsonBlobDepth: 10_000,
  /** Text the worker sends (task_failed and task_completed messages). */
  messageLength: 32 * 1024,
  /** An unknown message type as logged. */
  typeNameLength: 64,
} as const;

// ---------------------------------------------------------------------------
// Schema building blocks

// biome-ignore lint: control characters are the point of this pattern.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const WHITESPACE = /\s/;

const idString = v.pipe(
  v.string(),
  v.minLength(1, "must not be empty"),
  v.maxLength(LIMITS.idLength, `must be at most ${LIMITS.idLength} characters`),
  v.check((s) => s.trim() !== "", "must not be blank"),
  v.check((s) => !CONTROL_CHARS.test(s), "must not contain control characters"),
);

const optionalId = v.nullish(
  v.pipe(
    v.string(),
    v.maxLength(LIMITS.idLength, `must be at most ${LIMITS.idLength} characters`),
    v.check((s) => !CONTROL_CHARS.test(s), "must not contain control characters"),
  ),
);

const imageRef = v.nullish(
  v.pipe(
    v.string(),
    v.maxLength(LIMITS.imageLength, `must be at most ${LIMITS.imageLength} characters`),
    v.check((s) => !WHITESPACE.test(s) && !CONTROL_CHARS.test(s), "must not contain whitespace"),
  ),
);

/** Lenient field: a value of the wrong type is dropped (undefined). */
// Each lenient field is wrapped in optional() so a missing key is not an error.
const lenientString = v.optional(
  v.pipe(
    v.unknown(),
    v.transform((x): string | undefined => (typeof x === "string" ? x : undefined)),
  ),
);
const lenientBoolean = v.optional(
  v.pipe(
    v.unknown(),
    v.transform((x): boolean | undefined => (typeof x === "boolean" ? x : undefined)),
  ),
);
const lenientNumber = v.optional(
  v.pipe(
    v.unknown(),
    v.transform((x): number | undefined =>
      typeof x === "number" && Number.isFinite(x) ? x : undefined,
    ),
  ),
);

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Depth of a JSON value, computed iteratively (no recursion on hostile input). */
function jsonDepthExceeds(value: unknown, maxDepth: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== "object" || node === null) continue;
    if (depth > maxDepth) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** Lenient JSON object blob (mcp_servers, harness_auth_secrets): non-objects are dropped;
 * objects are bounded in depth (LIMITS.jsonBlobDepth). */
const lenientJsonObject = v.optional(v.pipe(
  v.unknown(),
  v.transform((x): Record<string, unknown> | undefined => (isPlainObject(x) ? x : undefined)),
  v.optional(
    v.pipe(
      v.record(v.string(), v.unknown()),
      v.check(
        (o) => !jsonDepthExceeds(o, LIMITS.jsonBlobDepth),
        `must be nested at most ${LIMITS.jsonBlobDepth} levels deep`,
      ),
    ),
  ),
));

/** Arrays are not objects here (valibot's object() and record() accept them). */
function requirePlainObject() {
  return v.rawCheck<unknown>(({ dataset, addIssue }) => {
    if (dataset.typed && !isPlainObject(dataset.value)) {
      addIssue({
        message:
          dataset.value === undefined
            ? "is required"
            : `expected object, got ${describeType(dataset.value)}`,
      });
    }
  });
}

function strictObject<const E extends v.ObjectEntries>(entries: E) {
  return v.pipe(v.unknown(), requirePlainObject(), v.object(entries));
}

function lenientObject<const E extends v.ObjectEntries>(entries: E) {
  return v.optional(
    v.pipe(
      v.unknown(),
      v.transform((x): Record<string, unknown> | undefined => (isPlainObject(x) ? x : undefined)),
      v.optional(v.object(entries)),
    ),
  );
}

export const AgentConfigSnapshotSchema = v.object({
  environment_id: lenientString,
  base_prompt: lenientString,
  model_id: lenientString,
  profile_id: lenientString,
  skill_spec: lenientString,
  mcp_servers: lenientJsonObject,
  computer_use_enabled: lenientBoolean,
  idle_timeout_minutes: lenientNumber,
  harness: lenientObject({ type: lenientString }),
  harness_auth_secrets: lenientJsonObject,
  inference_providers: lenientObject({
    aws: lenientObject({
      disabled: lenientBoolean,
      role_arn: lenientString,
      region: lenientString,
    }),
  }),
  session_sharing: lenientObject({ public_access: lenientString }),
  snapshot_disabled: lenientBoolean,
  snapshot_upload_timeout_secs: lenientNumber,
  snapshot_script_timeout_secs: lenientNumber,
});

const TaskOwnerSchema = strictObject({
  Type: v.string(),
  Id: v.nullish(v.union([v.number(), v.string()])),
});

export const TaskSchema = strictObject({
  // The agent's --task-id: required, any other string is passed on.
  id: v.pipe(v.string(), v.minLength(1, "must not be empty")),
  title: lenientString,
  task_definition: lenientObject({ prompt: lenientString }),
  created_at: lenientString,
  updated_at: lenientString,
  owner: v.nullish(TaskOwnerSchema),
  agent_config_snapshot: v.optional(
    v.pipe(
      v.unknown(),
      v.transform((x): Record<string, unknown> | undefined => (isPlainObject(x) ? x : undefined)),
      v.optional(AgentConfigSnapshotSchema),
    ),
  ),
  agent_conversation_id: lenientString,
});

/** JavaScript keys that would not be plain data properties (prototype pollution). */
const RESERVED_KEYS = ["__proto__"];

/**
 * env_vars: any names (the API server judges them: since Kubernetes 1.34 every printable
 * ASCII character but '=' is allowed, so `MY-TOKEN`, `my.dotted` or `1START` run), string
 * values. Only `__proto__` is refused: it cannot be a plain key of a JavaScript object, and
 * the Kubernetes client copies maps by assignment. Parsed by hand because valibot's
 * record() silently skips `__proto__`, `constructor` and `prototype`.
 */
const EnvVarsSchema = v.pipe(
  v.unknown(),
  requirePlainObject(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const input = dataset.value as Record<string, unknown>;
    const out: Record<string, string> = {};
    let failed = false;
    for (const [name, value] of Object.entries(input)) {
      const path: [v.ObjectPathItem] = [{ type: "object", origin: "value", input, key: name, value }];
      if (RESERVED_KEYS.includes(name)) {
        addIssue({ message: "is a reserved name", path });
        failed = true;
      } else if (typeof value !== "string") {
        addIssue({ message: `value must be a string, got ${describeType(value)}`, path });
        failed = true;
      } else {
        Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
      }
    }
    return failed ? NEVER : out;
  }),
);

const SidecarSchema = strictObject({
  image: v.pipe(
    v.nullish(v.string(), ""),
    v.maxLength(LIMITS.imageLength, `must be at most ${LIMITS.imageLength} characters`),
  ),
  mount_path: v.nullish(v.string(), ""),
  read_write: v.nullish(v.boolean(), false),
});

const shapeAxis = v.nullish(
  v.pipe(
    v.number(),
    v.check((n) => Number.isFinite(n), "must be a finite number"),
  ),
);

export const TaskAssignmentSchema = v.object({
  task_id: idString,
  execution_id: optionalId,
  task: TaskSchema,
  docker_image: imageRef,
  sidecar_image: imageRef,
  env_vars: v.nullish(EnvVarsSchema),
  additional_sidecars: v.nullish(v.array(SidecarSchema)),
  additional_oz_args: v.nullish(v.array(v.string())),
  instance_shape: v.nullish(strictObject({ vcpus: shapeAxis, memory_gb: shapeAxis })),
});

export const TaskCancellationSchema = strictObject({ task_id: idString });

// ---------------------------------------------------------------------------
// Error formatting (never prints values)

function describeType(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "array";
  return typeof x;
}

function formatPathKey(key: unknown): string {
  const s = typeof key === "number" ? `[${key}]` : String(key);
  const clipped = s.length > 64 ? `${s.slice(0, 64)}…` : s;
  // Keep paths printable even for hostile keys.
  return clipped.replace(/[\u0000-\u001f\u007f]/g, "?");
}

function formatIssue(prefix: string, issue: v.BaseIssue<unknown>): string {
  let path = prefix;
  for (const item of issue.path ?? []) {
    const key = (item as { key?: unknown }).key;
    const seg = formatPathKey(key);
    path += typeof key === "number" ? seg : `.${seg}`;
  }
  let problem: string;
  if (issue.kind === "schema") {
    const expected = (issue.expected ?? issue.type).toLowerCase();
    if (issue.input === undefined) problem = "is required";
    else problem = `expected ${expected}, got ${describeType(issue.input)}`;
  } else {
    // Every validation action above carries a custom, value-free message.
    problem = issue.message;
  }
  return `${path}: ${problem}`;
}

function formatIssues(prefix: string, issues: readonly v.BaseIssue<unknown>[]): string {
  const shown = issues.slice(0, 5).map((i) => formatIssue(prefix, i));
  if (issues.length > 5) shown.push(`(and ${issues.length - 5} more)`);
  return shown.join("; ");
}

function readTaskId(data: unknown): string | undefined {
  if (!isPlainObject(data)) return undefined;
  const id = data.task_id;
  return v.is(idString, id) ? id : undefined;
}

// ---------------------------------------------------------------------------
// Parsing

/** Parse and normalize untrusted `task_assignment` data (also used for `render-pod --task`). */
export function parseTaskAssignment(
  data: unknown,
  pathPrefix = "data",
): ParseResult<TaskAssignmentMessage> {
  const taskId = readTaskId(data);
  const fail = (error: string): ParseError =>
    taskId === undefined ? { ok: false, error } : { ok: false, error, task_id: taskId };
  if (!isPlainObject(data)) return fail(`${pathPrefix}: expected object, got ${describeType(data)}`);
  const result = v.safeParse(TaskAssignmentSchema, data);
  if (!result.success) {
    const error = formatIssues(pathPrefix, result.issues);
    if (taskId === undefined) return { ok: false, error };
    return { ok: false, error, task_id: taskId, failure_reason: invalidAssignmentReason(result.issues[0]) };
  }
  const d = result.output;
  const assignment: TaskAssignment = {
    task_id: d.task_id,
    execution_id:
      d.execution_id !== undefined && d.execution_id !== null && d.execution_id.trim() !== ""
        ? d.execution_id
        : d.task_id,
    task: normalizeTask(d.task),
    env_vars: Object.fromEntries(Object.entries(d.env_vars ?? {})),
    additional_sidecars: (d.additional_sidecars ?? []).map((s) => ({
      image: s.image,
      mount_path: s.mount_path,
      read_write: s.read_write,
    })),
    additional_oz_args: [...(d.additional_oz_args ?? [])],
  };
  if (d.docker_image) assignment.docker_image = d.docker_image;
  if (d.sidecar_image) assignment.sidecar_image = d.sidecar_image;
  if (d.instance_shape) {
    const shape: InstanceShape = {};
    if (typeof d.instance_shape.vcpus === "number") shape.vcpus = d.instance_shape.vcpus;
    if (typeof d.instance_shape.memory_gb === "number") shape.memory_gb = d.instance_shape.memory_gb;
    assignment.instance_shape = shape;
  }
  return { ok: true, message: { type: "task_assignment", data: assignment } };
}

/**
 * The failure reason for an assignment that cannot be run, from the field of its first
 * problem: an image field → `invalid_image` (what the kubelet's InvalidImageName gives the
 * Go worker), a sidecar → `sidecar_prep` (like the Job spec's own sidecar checks), anything
 * else → `job_create` (no Job can be built from it).
 */
function invalidAssignmentReason(issue: v.BaseIssue<unknown>): FailureReason {
  const field = (issue.path?.[0] as { key?: unknown } | undefined)?.key;
  if (field === "docker_image" || field === "sidecar_image") return "invalid_image";
  if (field === "additional_sidecars") return "sidecar_prep";
  return "job_create";
}

/** Drop undefined members so parsed objects compare and serialize cleanly. */
function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(o)) if (val !== undefined) out[k] = val;
  return out as T;
}

function normalizeTask(t: v.InferOutput<typeof TaskSchema>): Task {
  const task: Task = compact({
    id: t.id,
    title: t.title,
    task_definition: t.task_definition ? compact({ prompt: t.task_definition.prompt }) : undefined,
    created_at: t.created_at,
    updated_at: t.updated_at,
    owner: t.owner
      ? compact({ Type: t.owner.Type, Id: t.owner.Id === null ? undefined : t.owner.Id })
      : undefined,
    agent_config_snapshot: t.agent_config_snapshot
      ? normalizeSnapshot(t.agent_config_snapshot)
      : undefined,
    agent_conversation_id: t.agent_conversation_id,
  });
  return task;
}

function normalizeSnapshot(s: v.InferOutput<typeof AgentConfigSnapshotSchema>): AgentConfigSnapshot {
  const aws = s.inference_providers?.aws;
  return compact({
    environment_id: s.environment_id,
    base_prompt: s.base_prompt,
    model_id: s.model_id,
    profile_id: s.profile_id,
    skill_spec: s.skill_spec,
    mcp_servers: s.mcp_servers,
    computer_use_enabled: s.computer_use_enabled,
    idle_timeout_minutes: s.idle_timeout_minutes,
    harness: s.harness ? compact({ type: s.harness.type }) : undefined,
    harness_auth_secrets: s.harness_auth_secrets,
    inference_providers: s.inference_providers
      ? compact({
          aws: aws
            ? compact({ disabled: aws.disabled, role_arn: aws.role_arn, region: aws.region })
            : undefined,
        })
      : undefined,
    session_sharing: s.session_sharing
      ? compact({ public_access: s.session_sharing.public_access })
      : undefined,
    snapshot_disabled: s.snapshot_disabled,
    snapshot_upload_timeout_secs: s.snapshot_upload_timeout_secs,
    snapshot_script_timeout_secs: s.snapshot_script_timeout_secs,
  });
}

export function parseTaskCancellation(
  data: unknown,
  pathPrefix = "data",
): ParseResult<TaskCancellationMessage> {
  const result = v.safeParse(TaskCancellationSchema, data);
  if (!result.success) {
    return { ok: false, error: formatIssues(pathPrefix, result.issues) };
  }
  return { ok: true, message: { type: "task_cancellation", data: { task_id: result.output.task_id } } };
}

/** Parse the `data` of a server frame by its `type`. Unknown types are not errors. */
export function parseServerMessage(type: string, data: unknown): ParseResult<ServerMessage> {
  switch (type) {
    case "task_assignment":
      return parseTaskAssignment(data);
    case "task_cancellation":
      return parseTaskCancellation(data);
    default: {
      const name = String(type).replace(/[\u0000-\u001f\u007f]/g, "?");
      return {
        ok: true,
        message: {
          type: "unknown",
          type_name: name.length > LIMITS.typeNameLength ? `${name.slice(0, LIMITS.typeNameLength)}…` : name,
        },
      };
    }
  }
}

/** Parse one raw text frame (`{"type": ..., "data": ...}`). Never throws. Not on the worker's
 * path (OzConnection decodes frames itself, bounded only by the WebSocket runtime), so
 * `maxBytes` is a caller's memory bound, not a limit on what the worker runs. */
export function parseFrame(text: string, maxBytes = 16 * 1024 * 1024): ParseResult<ServerMessage> {
  if (text.length > maxBytes) return { ok: false, error: `frame: larger than ${maxBytes} bytes` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: "frame: not valid JSON" };
  }
  if (!isPlainObject(parsed)) {
    return { ok: false, error: `frame: expected object, got ${describeType(parsed)}` };
  }
  if (typeof parsed.type !== "string") {
    return { ok: false, error: `type: expected string, got ${describeType(parsed.type)}` };
  }
  return parseServerMessage(parsed.type, parsed.data);
}

// ---------------------------------------------------------------------------
// Worker → server

export interface TaskClaimedData {
  task_id: string;
  worker_id: string;
}
export interface TaskRejectedData {
  task_id: string;
  reason: string;
}
export interface TaskCompletedData {
  task_id: string;
  message: string;
  task_state?: "CANCELLED";
}
export interface TaskFailedData {
  task_id: string;
  message: string;
  failure_reason: FailureReason;
  exit_code?: number;
}

export type WorkerMessage =
  | { type: "task_claimed"; data: TaskClaimedData }
  | { type: "task_rejected"; data: TaskRejectedData }
  | { type: "task_completed"; data: TaskCompletedData }
  | { type: "task_failed"; data: TaskFailedData };

/** Bound human-readable text sent to the server. */
export function clipMessage(message: string, max: number = LIMITS.messageLength): string {
  if (message.length <= max) return message;
  const marker = `… [truncated ${message.length - max} characters]`;
  return message.slice(0, Math.max(0, max - marker.length)) + marker;
}

export function taskClaimed(taskId: string, workerId: string) {
  return { type: "task_claimed", data: { task_id: taskId, worker_id: workerId } } as const satisfies WorkerMessage;
}

export function taskRejected(taskId: string, reason: string) {
  return {
    type: "task_rejected",
    data: { task_id: taskId, reason: clipMessage(reason) },
  } as const satisfies WorkerMessage;
}

export function taskCompleted(taskId: string, message: string): { type: "task_completed"; data: TaskCompletedData } {
  return { type: "task_completed", data: { task_id: taskId, message: clipMessage(message) } };
}

export function taskCancelled(taskId: string, message: string): { type: "task_completed"; data: TaskCompletedData } {
  return {
    type: "task_completed",
    data: { task_id: taskId, message: clipMessage(message), task_state: "CANCELLED" },
  };
}

export function taskFailed(
  taskId: string,
  message: string,
  failureReason: FailureReason,
  exitCode?: number,
): { type: "task_failed"; data: TaskFailedData } {
  const reason: FailureReason = (FAILURE_REASONS as readonly string[]).includes(failureReason)
    ? failureReason
    : "unknown";
  const data: TaskFailedData = { task_id: taskId, message: clipMessage(message), failure_reason: reason };
  if (exitCode !== undefined && Number.isInteger(exitCode)) data.exit_code = exitCode;
  return { type: "task_failed", data };
}

export type { FailureReason };
