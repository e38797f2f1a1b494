// The Oz worker wire protocol: message types, parsing of untrusted server frames, and
// builders for the worker's own messages. Pure: no I/O.
//
// Parsing policy. Fields that shape the Kubernetes Job (ids, images, env_vars, sidecars,
// oz args, instance shape) are checked strictly: a wrong type or an out-of-bound size is
// an error naming the field path. Informational fields (title, prompt, timestamps) and
// the agent_config_snapshot are lenient like the Go worker: unknown keys are ignored and
// a snapshot field of the wrong type is dropped, but sizes are still bounded. Error
// messages name the path and the problem and never include values (env_vars hold secrets).
import * as v from "valibot";
import { FAILURE_REASONS, type FailureReason } from "../core/failure-reasons.ts";

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
  /** Field path and problem, e.g. `data.env_vars.1FOO: is not a valid environment variable name`. */
  error: string;
  /** The frame's task_id when it could be read (so the worker can report the failure). */
  task_id?: string;
};
export type ParseResult<T> = { ok: true; message: T } | ParseError;

// ---------------------------------------------------------------------------
// Bounds

export const LIMITS = {
  idLength: 256,
  imageLength: 1024,
  titleLength: 64 * 1024,
  promptLength: 4 * 1024 * 1024,
  shortStringLength: 4096,
  envVarCount: 1000,
  envVarNameLength: 256,
  /** Sum of names and values; keeps the per-task Secret well under the 1 MiB object limit. */
  envVarTotalBytes: 512 * 1024,
  sidecarCount: 32,
  mountPathLength: 4096,
  ozArgCount: 256,
  ozArgLength: 16 * 1024,
  /** Serialized size of mcp_servers / harness_auth_secrets. */
  jsonBlobBytes: 256 * 1024,
  jsonBlobDepth: 32,
  maxVcpus: 1024,
  maxMemoryGb: 65536,
  messageLength: 32 * 1024,
  typeNameLength: 64,
} as const;

// ---------------------------------------------------------------------------
// Schema building blocks

// biome-ignore lint: control characters are the point of this pattern.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const WHITESPACE = /\s/;
/** Kubernetes' C_IDENTIFIER rule for env var names. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

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

/** Lenient field: a value of the wrong type is dropped (undefined); a string of the right
 * type is still bounded. */
// Each lenient field is wrapped in optional() so a missing key is not an error.
function lenientString(max: number) {
  return v.optional(
    v.pipe(
      v.unknown(),
      v.transform((x): string | undefined => (typeof x === "string" ? x : undefined)),
      v.optional(v.pipe(v.string(), v.maxLength(max, `must be at most ${max} characters`))),
    ),
  );
}
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
 * objects are bounded in depth and serialized size. */
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
      v.check((o) => {
        try {
          return utf8Length(JSON.stringify(o)) <= LIMITS.jsonBlobBytes;
        } catch {
          return false;
        }
      }, `must serialize to at most ${LIMITS.jsonBlobBytes} bytes`),
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
  environment_id: lenientString(LIMITS.idLength),
  base_prompt: lenientString(LIMITS.promptLength),
  model_id: lenientString(LIMITS.shortStringLength),
  profile_id: lenientString(LIMITS.shortStringLength),
  skill_spec: lenientString(LIMITS.shortStringLength),
  mcp_servers: lenientJsonObject,
  computer_use_enabled: lenientBoolean,
  idle_timeout_minutes: lenientNumber,
  harness: lenientObject({ type: lenientString(LIMITS.shortStringLength) }),
  harness_auth_secrets: lenientJsonObject,
  inference_providers: lenientObject({
    aws: lenientObject({
      disabled: lenientBoolean,
      role_arn: lenientString(LIMITS.shortStringLength),
      region: lenientString(LIMITS.shortStringLength),
    }),
  }),
  session_sharing: lenientObject({ public_access: lenientString(LIMITS.shortStringLength) }),
  snapshot_disabled: lenientBoolean,
  snapshot_upload_timeout_secs: lenientNumber,
  snapshot_script_timeout_secs: lenientNumber,
});

const TaskOwnerSchema = strictObject({
  Type: v.pipe(v.string(), v.maxLength(64, "must be at most 64 characters")),
  Id: v.nullish(v.union([v.number(), v.pipe(v.string(), v.maxLength(LIMITS.idLength))])),
});

export const TaskSchema = strictObject({
  id: idString,
  title: lenientString(LIMITS.titleLength),
  task_definition: lenientObject({ prompt: lenientString(LIMITS.promptLength) }),
  created_at: lenientString(LIMITS.idLength),
  updated_at: lenientString(LIMITS.idLength),
  owner: v.nullish(TaskOwnerSchema),
  agent_config_snapshot: v.optional(
    v.pipe(
      v.unknown(),
      v.transform((x): Record<string, unknown> | undefined => (isPlainObject(x) ? x : undefined)),
      v.optional(AgentConfigSnapshotSchema),
    ),
  ),
  agent_conversation_id: lenientString(LIMITS.idLength),
});

const EnvVarsSchema = v.pipe(
  v.unknown(),
  requirePlainObject(),
  v.record(
    v.pipe(
      v.string(),
      v.maxLength(LIMITS.envVarNameLength, `must be at most ${LIMITS.envVarNameLength} characters`),
      v.regex(
        ENV_NAME_PATTERN,
        "is not a valid environment variable name (letters, digits and '_', not starting with a digit)",
      ),
    ),
    v.pipe(
      v.string("value must be a string"),
      v.check((s) => !s.includes("\u0000"), "value must not contain NUL characters"),
    ),
  ),
  v.check(
    (o) => Object.keys(o).length <= LIMITS.envVarCount,
    `must have at most ${LIMITS.envVarCount} entries`,
  ),
  v.check((o) => {
    let total = 0;
    for (const [k, val] of Object.entries(o)) total += utf8Length(k) + utf8Length(val);
    return total <= LIMITS.envVarTotalBytes;
  }, `names and values must total at most ${LIMITS.envVarTotalBytes} bytes`),
);

const SidecarSchema = strictObject({
  image: v.pipe(
    v.nullish(v.string(), ""),
    v.maxLength(LIMITS.imageLength, `must be at most ${LIMITS.imageLength} characters`),
  ),
  mount_path: v.pipe(
    v.nullish(v.string(), ""),
    v.maxLength(LIMITS.mountPathLength, `must be at most ${LIMITS.mountPathLength} characters`),
  ),
  read_write: v.nullish(v.boolean(), false),
});

const shapeAxis = (max: number) =>
  v.nullish(
    v.pipe(
      v.number(),
      v.check((n) => Number.isFinite(n), "must be a finite number"),
      v.maxValue(max, `must be at most ${max}`),
    ),
  );

export const TaskAssignmentSchema = v.object({
  task_id: idString,
  execution_id: optionalId,
  task: TaskSchema,
  docker_image: imageRef,
  sidecar_image: imageRef,
  env_vars: v.nullish(EnvVarsSchema),
  additional_sidecars: v.nullish(
    v.pipe(
      v.array(SidecarSchema),
      v.maxLength(LIMITS.sidecarCount, `must have at most ${LIMITS.sidecarCount} entries`),
    ),
  ),
  additional_oz_args: v.nullish(
    v.pipe(
      v.array(
        v.pipe(
          v.string(),
          v.maxLength(LIMITS.ozArgLength, `must be at most ${LIMITS.ozArgLength} characters`),
          v.check((s) => !s.includes("\u0000"), "must not contain NUL characters"),
        ),
      ),
      v.maxLength(LIMITS.ozArgCount, `must have at most ${LIMITS.ozArgCount} entries`),
    ),
  ),
  instance_shape: v.nullish(
    strictObject({
      vcpus: shapeAxis(LIMITS.maxVcpus),
      memory_gb: shapeAxis(LIMITS.maxMemoryGb),
    }),
  ),
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
    else if (issue.type === "string" && issue.message === "value must be a string") {
      problem = `value must be a string, got ${describeType(issue.input)}`;
    } else problem = `expected ${expected}, got ${describeType(issue.input)}`;
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

const RESERVED_KEYS = ["__proto__", "constructor", "prototype"];

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
  // valibot's record() silently skips these keys; refuse them explicitly instead.
  const env = data.env_vars;
  if (isPlainObject(env)) {
    for (const key of RESERVED_KEYS) {
      if (Object.prototype.hasOwnProperty.call(env, key)) {
        return fail(`${pathPrefix}.env_vars.${key}: is a reserved name`);
      }
    }
  }
  const result = v.safeParse(TaskAssignmentSchema, data);
  if (!result.success) return fail(formatIssues(pathPrefix, result.issues));
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

/** Parse one raw text frame (`{"type": ..., "data": ...}`). Never throws. */
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
