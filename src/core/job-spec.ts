// (worker config, task assignment) → the batch/v1 Job that runs the task, plus the
// per-task Secret that carries the assignment's env_vars. Pure and deterministic: the
// inputs are never mutated and equal inputs give equal output.
import { Buffer } from "node:buffer";
import { posix } from "node:path";
import type {
  V1Container,
  V1EnvVar,
  V1Job,
  V1Lifecycle,
  V1PodSpec,
  V1ResourceRequirements,
  V1Secret,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import type { AdditionalSidecar, TaskAssignment } from "../oz/protocol.ts";
import { buildAgentArgs } from "./agent-args.ts";
import {
  EXECUTION_ID_ANNOTATION,
  TASK_ID_ANNOTATION,
  effectiveExecutionId,
  taskJobName,
  taskLabels,
  taskSecretKeyFor,
  taskSecretNameFor,
} from "./naming.ts";
import type { WorkerConfig } from "./types.ts";

export { taskSecretKeyFor, taskSecretNameFor } from "./naming.ts";

export const TASK_CONTAINER_NAME = "task";
export const SETUP_CONTAINER_NAME = "setup";
export const WORKSPACE_VOLUME_NAME = "workspace";
export const WORKSPACE_MOUNT_PATH = "/workspace";
export const ENVIRONMENT_FILE = "/workspace/.oz-env";
export const AGENT_MOUNT_PATH = "/agent";
export const FALLBACK_IMAGE = "ubuntu:22.04";
export const BACKEND_NAME = "kubernetes";
/** Where a sidecar copy init container sees its emptyDir. */
export const SIDECAR_COPY_TARGET = "/target";
/** `$0` of the wrapper script; the agent arguments follow as `$@`. */
export const WRAPPER_ARG0 = "oz-task";

/** Sources $OZ_ENVIRONMENT_FILE (exporting its variables) when it exists, then hands
 * over to the agent entrypoint with the agent arguments. */
export const TASK_WRAPPER_SCRIPT = [
  'if [ -f "$OZ_ENVIRONMENT_FILE" ]; then',
  "  set -a",
  '  . "$OZ_ENVIRONMENT_FILE"',
  "  set +a",
  "fi",
  "",
  'exec /agent/entrypoint.sh "$@"',
].join("\n");

/** Copies the sidecar image's filesystem into the emptyDir mounted at /target, leaving
 * out the target itself, kernel filesystems, and mounted service-account secrets. */
export const SIDECAR_COPY_SCRIPT = [
  "tar \\",
  "  --exclude=./target \\",
  "  --exclude=./proc \\",
  "  --exclude=./sys \\",
  "  --exclude=./dev \\",
  "  --exclude=./.dockerenv \\",
  "  --exclude=./var/run/secrets \\",
  "  --exclude=./run/secrets \\",
  "  -C / -cf - . | tar --no-same-owner --no-same-permissions -C /target -xf -",
].join("\n");

/** A config or assignment that cannot become a valid Job (failure reason sidecar_prep
 * for sidecar problems). The message names the offending item. */
export class JobSpecError extends Error {
  override name = "JobSpecError";
  readonly kind: "sidecar" | "image" | "pod_template";
  constructor(
    message: string,
    kind: "sidecar" | "image" | "pod_template" = "sidecar",
  ) {
    super(message);
    this.kind = kind;
  }
}

export interface BuildTaskJobOptions {
  /** Reference env_vars from this Secret instead of inlining them (ignored when
   * `kubernetes.inlineTaskEnv` is on). */
  taskSecretName?: string;
}

/** One filesystem mounted into the task container, in Job order. */
export interface ResolvedSidecar {
  image: string;
  mountPath: string;
  readWrite: boolean;
  /** For error messages: where the sidecar came from. */
  origin: string;
}

// ---------------------------------------------------------------------------
// Small pure helpers

function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(o)) if (val !== undefined) out[k] = val;
  return out as T;
}

/** A plain JSON tree: no shared references (YAML would print anchors), no undefined. */
function plainTree<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function nonEmpty<T extends object>(o: T): T | undefined {
  return Object.keys(o).length > 0 ? o : undefined;
}

/** Merge env lists: later entries win by name and take the position of the first
 * occurrence, so the order is deterministic and each name appears once. */
export function mergeEnv(...lists: readonly (readonly V1EnvVar[])[]): V1EnvVar[] {
  const out: V1EnvVar[] = [];
  const index = new Map<string, number>();
  for (const list of lists) {
    for (const entry of list) {
      const at = index.get(entry.name);
      if (at === undefined) {
        index.set(entry.name, out.length);
        out.push(entry);
      } else {
        out[at] = entry;
      }
    }
  }
  return out;
}

// Whole numbers are written out in digits: String(1e21) is "1e+21", and "1e+21Gi" is not a
// quantity. An impossible shape then reaches the scheduler (unschedulable), as with the Go worker.
function quantityFromCpus(vcpus: number): string | undefined {
  if (!(vcpus > 0) || !Number.isFinite(vcpus)) return undefined;
  if (Number.isInteger(vcpus)) return BigInt(vcpus).toString();
  const milli = Math.round(vcpus * 1000);
  return milli > 0 ? `${milli}m` : undefined;
}

function quantityFromGiB(gib: number): string | undefined {
  if (!(gib > 0) || !Number.isFinite(gib)) return undefined;
  if (Number.isInteger(gib)) return `${BigInt(gib).toString()}Gi`;
  const mib = Math.round(gib * 1024);
  return mib > 0 ? `${mib}Mi` : undefined;
}

/** The task container's resources from the assignment's instance shape: cpu and memory
 * requests AND limits; a non-positive axis is left unset. Undefined when nothing is set. */
export function instanceShapeResources(
  assignment: TaskAssignment,
): V1ResourceRequirements | undefined {
  const shape = assignment.instance_shape;
  if (!shape) return undefined;
  const list: Record<string, string> = {};
  const cpu = shape.vcpus === undefined ? undefined : quantityFromCpus(shape.vcpus);
  const memory = shape.memory_gb === undefined ? undefined : quantityFromGiB(shape.memory_gb);
  if (cpu !== undefined) list.cpu = cpu;
  if (memory !== undefined) list.memory = memory;
  if (Object.keys(list).length === 0) return undefined;
  return { requests: { ...list }, limits: { ...list } };
}

/** Per resource name, the override wins; other entries of the base are kept. */
function mergeResources(
  base: V1ResourceRequirements | undefined,
  override: V1ResourceRequirements | undefined,
): V1ResourceRequirements | undefined {
  if (!override) return base;
  const merged: V1ResourceRequirements = { ...(base ?? {}) };
  if (override.requests) merged.requests = { ...(base?.requests ?? {}), ...override.requests };
  if (override.limits) merged.limits = { ...(base?.limits ?? {}), ...override.limits };
  return merged;
}

function checkImage(image: string, what: string): void {
  if (image.trim() === "") throw new JobSpecError(`${what}: image must not be empty`, "image");
  if (/\s/.test(image)) {
    throw new JobSpecError(`${what}: image ${JSON.stringify(image)} must not contain whitespace`, "image");
  }
}

// ---------------------------------------------------------------------------
// Image, sidecars, env

/** The assignment's docker_image, else the configured default_image, else ubuntu:22.04. */
export function resolveTaskImage(config: WorkerConfig, assignment: TaskAssignment): string {
  const fromAssignment = assignment.docker_image?.trim();
  if (fromAssignment) return fromAssignment;
  const fromConfig = config.kubernetes.defaultImage?.trim();
  if (fromConfig) return fromConfig;
  return FALLBACK_IMAGE;
}

/**
 * The sidecars in Job order:
 *  1. the agent sidecar at /agent: the configured sidecar_image, else the assignment's
 *     sidecar_image (none when neither is set);
 *  2. the assignment's additional_sidecars, in order;
 *  3. the configured coding CLI sidecar for the snapshot's harness, at
 *     /mnt/<harness>-cli-sidecar: it replaces the image of an entry already mounted
 *     there, else it is appended.
 */
export function resolveSidecars(config: WorkerConfig, assignment: TaskAssignment): ResolvedSidecar[] {
  const sidecars: ResolvedSidecar[] = [];
  const agentImage = config.kubernetes.sidecarImage?.trim() || assignment.sidecar_image?.trim();
  if (agentImage) {
    sidecars.push({
      image: agentImage,
      mountPath: AGENT_MOUNT_PATH,
      readWrite: false,
      origin: config.kubernetes.sidecarImage?.trim() ? "sidecar_image (config)" : "sidecar_image",
    });
  }
  assignment.additional_sidecars.forEach((s: AdditionalSidecar, i) => {
    sidecars.push({
      image: s.image,
      mountPath: s.mount_path,
      readWrite: s.read_write,
      origin: `additional_sidecars[${i}]`,
    });
  });
  const harness = assignment.task.agent_config_snapshot?.harness?.type?.trim();
  if (harness) {
    const image = Object.hasOwn(config.kubernetes.codingCliSidecars, harness)
      ? config.kubernetes.codingCliSidecars[harness]?.trim()
      : undefined;
    if (image) {
      const mountPath = `/mnt/${harness}-cli-sidecar`;
      const origin = `coding_cli_sidecars.${harness}`;
      const existing = sidecars.findIndex((s) => s.mountPath.startsWith("/") && normalizeMountPath(s.mountPath) === mountPath);
      if (existing >= 0) {
        const prev = sidecars[existing]!;
        sidecars[existing] = { ...prev, image, origin: `${prev.origin} (image from ${origin})` };
      } else {
        sidecars.push({ image, mountPath, readWrite: false, origin });
      }
    }
  }
  return sidecars;
}

/** The POSIX normal form ("//a/./b/../c/" → "/a/c"), so the reserved-path and duplicate
 * checks see the directory the container runtime would mount at. */
function normalizeMountPath(path: string): string {
  const normal = posix.normalize(path);
  return normal.length > 1 ? normal.replace(/\/+$/, "") : normal;
}

/** Throws JobSpecError naming the sidecar when the list cannot be mounted: empty image or
 * mount path, a relative path, the root or /workspace, duplicate mount paths, or a
 * read-write sidecar in image-volume mode. */
export function validateSidecars(sidecars: readonly ResolvedSidecar[], useImageVolumes: boolean): void {
  const seen = new Map<string, string>();
  sidecars.forEach((s, i) => {
    const what = `sidecar ${i} (${s.origin}${s.image ? `, image ${JSON.stringify(s.image)}` : ""})`;
    if (s.image.trim() === "") throw new JobSpecError(`${what}: image must not be empty`);
    if (/\s/.test(s.image)) throw new JobSpecError(`${what}: image must not contain whitespace`);
    if (s.mountPath.trim() === "") throw new JobSpecError(`${what}: mount path must not be empty`);
    if (!s.mountPath.startsWith("/")) {
      throw new JobSpecError(`${what}: mount path ${JSON.stringify(s.mountPath)} must be absolute`);
    }
    if (s.mountPath.includes(":")) {
      throw new JobSpecError(`${what}: mount path ${JSON.stringify(s.mountPath)} must not contain ':'`);
    }
    const path = normalizeMountPath(s.mountPath);
    if (path === "/") throw new JobSpecError(`${what}: cannot mount at the root directory`);
    if (path === WORKSPACE_MOUNT_PATH) {
      throw new JobSpecError(`${what}: cannot mount at the reserved path ${WORKSPACE_MOUNT_PATH}`);
    }
    const other = seen.get(path);
    if (other !== undefined) {
      throw new JobSpecError(`${what}: duplicate mount path ${path} (also used by ${other})`);
    }
    if (useImageVolumes && s.readWrite) {
      throw new JobSpecError(
        `${what}: cannot request a read-write mount: use_image_volumes is on and Kubernetes image volumes are read-only`,
      );
    }
    seen.set(path, `sidecar ${i} (${s.origin})`);
  });
}

/**
 * The worker's env for the task (and setup) container, in this order, later entries
 * winning by name (each name once, at its first position):
 *  TASK_ID, GIT_TERMINAL_PROMPT=0, GH_PROMPT_DISABLED=1, WARP_SERVER_ROOT_URL (when set),
 *  the assignment's env_vars (sorted by name; as secretKeyRefs when taskSecretName is
 *  given), the worker's -e overrides (in order), OZ_ENVIRONMENT_FILE, OZ_WORKSPACE_ROOT,
 *  OZ_WORKER_BACKEND, OZ_RUN_ID.
 * So -e overrides beat env_vars, and the OZ_* variables cannot be overridden.
 */
export function buildTaskEnv(
  config: WorkerConfig,
  assignment: TaskAssignment,
  taskSecretName?: string,
): V1EnvVar[] {
  const base: V1EnvVar[] = [
    { name: "TASK_ID", value: assignment.task.id },
    { name: "GIT_TERMINAL_PROMPT", value: "0" },
    { name: "GH_PROMPT_DISABLED", value: "1" },
  ];
  if (config.serverRootUrl !== "") base.push({ name: "WARP_SERVER_ROOT_URL", value: config.serverRootUrl });
  const names = Object.keys(assignment.env_vars).sort();
  const fromAssignment: V1EnvVar[] = names.map((name) =>
    taskSecretName === undefined
      ? { name, value: assignment.env_vars[name] ?? "" }
      : { name, valueFrom: { secretKeyRef: { name: taskSecretName, key: taskSecretKeyFor(name) } } },
  );
  const overrides: V1EnvVar[] = config.env.map((e) => ({ name: e.name, value: e.value }));
  const worker: V1EnvVar[] = [
    { name: "OZ_ENVIRONMENT_FILE", value: ENVIRONMENT_FILE },
    { name: "OZ_WORKSPACE_ROOT", value: WORKSPACE_MOUNT_PATH },
    { name: "OZ_WORKER_BACKEND", value: BACKEND_NAME },
    { name: "OZ_RUN_ID", value: assignment.task_id },
  ];
  return mergeEnv(base, fromAssignment, overrides, worker);
}

/** True when env_vars go into a per-task Secret (the default) rather than inline. */
export function usesTaskSecret(config: WorkerConfig, assignment: TaskAssignment): boolean {
  return !config.kubernetes.inlineTaskEnv && Object.keys(assignment.env_vars).length > 0;
}

// ---------------------------------------------------------------------------
// The Job

/** The task Job's name for an assignment. */
export function taskJobNameFor(assignment: TaskAssignment): string {
  return taskJobName(assignment.task_id, assignment.execution_id);
}

function labelsFor(config: WorkerConfig, assignment: TaskAssignment): Record<string, string> {
  // extra_labels first; the worker's identity labels win on a clash.
  return {
    ...config.kubernetes.extraLabels,
    ...taskLabels(config.workerId, assignment.task_id, assignment.execution_id),
  };
}

function rootSecurityContext() {
  return { runAsUser: 0, runAsGroup: 0 };
}

interface SidecarParts {
  volumes: V1Volume[];
  initContainers: V1Container[];
  mounts: V1VolumeMount[];
}

function sidecarParts(config: WorkerConfig, sidecars: readonly ResolvedSidecar[]): SidecarParts {
  const pullPolicy = config.kubernetes.imagePullPolicy;
  const parts: SidecarParts = { volumes: [], initContainers: [], mounts: [] };
  sidecars.forEach((s, i) => {
    if (config.kubernetes.useImageVolumes) {
      const name = `sidecar-${i}-image`;
      parts.volumes.push({ name, image: { reference: s.image, pullPolicy } });
      parts.mounts.push({ name, mountPath: normalizeMountPath(s.mountPath), readOnly: true });
      return;
    }
    const name = `sidecar-${i}-data`;
    parts.volumes.push({ name, emptyDir: {} });
    parts.initContainers.push({
      name: `copy-sidecar-${i}`,
      image: s.image,
      imagePullPolicy: pullPolicy,
      command: ["/bin/sh", "-c", SIDECAR_COPY_SCRIPT],
      securityContext: rootSecurityContext(),
      volumeMounts: [{ name, mountPath: SIDECAR_COPY_TARGET }],
    });
    parts.mounts.push({ name, mountPath: normalizeMountPath(s.mountPath), readOnly: !s.readWrite });
  });
  return parts;
}

function teardownLifecycle(command: string | undefined): V1Lifecycle | undefined {
  if (!command) return undefined;
  return { preStop: { exec: { command: ["/bin/sh", "-c", command] } } };
}

/** Overlay the worker's task container onto the pod template's `task` container. */
function overlayTaskContainer(template: V1Container, worker: V1Container): V1Container {
  const merged: V1Container = { ...template };
  merged.image = worker.image;
  if (!merged.imagePullPolicy) merged.imagePullPolicy = worker.imagePullPolicy;
  merged.command = worker.command;
  merged.args = worker.args;
  merged.workingDir = worker.workingDir;
  merged.volumeMounts = [...(template.volumeMounts ?? []), ...(worker.volumeMounts ?? [])];
  merged.env = mergeEnv(template.env ?? [], worker.env ?? []);
  if (worker.lifecycle) merged.lifecycle = { ...(template.lifecycle ?? {}), ...worker.lifecycle };
  const resources = mergeResources(template.resources, worker.resources);
  if (resources !== undefined) merged.resources = resources;
  return orderKeys(compact(merged), CONTAINER_KEY_ORDER);
}

const CONTAINER_KEY_ORDER = [
  "name",
  "image",
  "imagePullPolicy",
  "command",
  "args",
  "workingDir",
  "env",
  "envFrom",
  "volumeMounts",
  "lifecycle",
  "resources",
];

/** Same object with the listed keys first (in that order), then the rest as they were:
 * readable, deterministic output. */
function orderKeys<T extends object>(o: T, order: readonly string[]): T {
  const src = o as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of order) if (src[k] !== undefined) out[k] = src[k];
  for (const [k, val] of Object.entries(src)) if (!(k in out) && val !== undefined) out[k] = val;
  return out as T;
}

function checkUnique(names: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      throw new JobSpecError(
        `pod_template: ${what} name ${JSON.stringify(name)} is used twice (it clashes with one the worker adds)`,
        "pod_template",
      );
    }
    seen.add(name);
  }
}

/**
 * Build the task Job (see "The task Job" in the backend reference):
 * name and labels (Job and Pod, plus extra_labels / extra_annotations), backoffLimit 0,
 * restartPolicy Never, the configured deadline and TTL, the workspace emptyDir at
 * /workspace (the working directory), sidecars by root copy init containers or image
 * volumes, the optional `setup` init container and teardown preStop hook, the pod_template
 * merge and the instance shape. Throws JobSpecError for an unmountable sidecar or a
 * pod_template that clashes with the worker's names.
 */
export function buildTaskJob(
  config: WorkerConfig,
  assignment: TaskAssignment,
  opts: BuildTaskJobOptions = {},
): V1Job {
  const k8s = config.kubernetes;
  const name = taskJobNameFor(assignment);
  const image = resolveTaskImage(config, assignment);
  checkImage(image, "task image");
  const sidecars = resolveSidecars(config, assignment);
  validateSidecars(sidecars, k8s.useImageVolumes);

  const secretName = k8s.inlineTaskEnv ? undefined : opts.taskSecretName;
  const env = buildTaskEnv(config, assignment, secretName);
  const parts = sidecarParts(config, sidecars);

  const workspaceVolume: V1Volume = {
    name: WORKSPACE_VOLUME_NAME,
    emptyDir: k8s.workspaceSizeLimit ? { sizeLimit: k8s.workspaceSizeLimit } : {},
  };
  const mounts: V1VolumeMount[] = [
    { name: WORKSPACE_VOLUME_NAME, mountPath: WORKSPACE_MOUNT_PATH },
    ...parts.mounts,
  ];

  const workerInit: V1Container[] = [...parts.initContainers];
  if (k8s.setupCommand) {
    workerInit.push({
      name: SETUP_CONTAINER_NAME,
      image,
      imagePullPolicy: k8s.imagePullPolicy,
      command: ["/bin/sh", "-c", k8s.setupCommand],
      workingDir: WORKSPACE_MOUNT_PATH,
      env: structuredClone(env),
      volumeMounts: structuredClone(mounts),
    });
  }

  const taskContainer: V1Container = compact({
    name: TASK_CONTAINER_NAME,
    image,
    imagePullPolicy: k8s.imagePullPolicy,
    command: ["/bin/sh", "-c", TASK_WRAPPER_SCRIPT, WRAPPER_ARG0],
    args: buildAgentArgs(config, assignment),
    workingDir: WORKSPACE_MOUNT_PATH,
    env,
    volumeMounts: mounts,
    lifecycle: teardownLifecycle(k8s.teardownCommand),
    resources: instanceShapeResources(assignment),
  });

  const template: V1PodSpec = k8s.podTemplate ? structuredClone(k8s.podTemplate) : { containers: [] };
  const templateContainers = template.containers ?? [];
  const taskIndex = templateContainers.findIndex((c) => c.name === TASK_CONTAINER_NAME);
  const containers =
    taskIndex >= 0
      ? templateContainers.map((c, i) => (i === taskIndex ? overlayTaskContainer(c, taskContainer) : c))
      : [...templateContainers, taskContainer];
  const initContainers = [...workerInit, ...(template.initContainers ?? [])];
  const volumes = [...(template.volumes ?? []), workspaceVolume, ...parts.volumes];

  checkUnique(volumes.map((v) => v.name), "volume");
  checkUnique([...initContainers, ...containers].map((c) => c.name), "container");
  const finalTask = containers.find((c) => c.name === TASK_CONTAINER_NAME)!;
  const paths = (finalTask.volumeMounts ?? []).map((m) => normalizeMountPath(m.mountPath));
  const dup = paths.find((p, i) => paths.indexOf(p) !== i);
  if (dup !== undefined) {
    throw new JobSpecError(
      `pod_template: the task container mounts ${dup} twice (a template volumeMount clashes with a worker mount)`,
      "pod_template",
    );
  }

  const podSpec: V1PodSpec = orderKeys(
    {
      ...template,
      restartPolicy: "Never",
      initContainers: initContainers.length > 0 ? initContainers : undefined,
      containers,
      volumes,
    },
    ["restartPolicy", "initContainers", "containers", "volumes"],
  );

  const labels = labelsFor(config, assignment);
  const annotations = nonEmpty({ ...k8s.extraAnnotations });
  const jobAnnotations = {
    ...annotations,
    [TASK_ID_ANNOTATION]: assignment.task_id,
    [EXECUTION_ID_ANNOTATION]: effectiveExecutionId(assignment.task_id, assignment.execution_id),
  };
  return plainTree<V1Job>({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: compact({ name, namespace: k8s.namespace, labels, annotations: jobAnnotations }),
    spec: compact({
      backoffLimit: 0,
      activeDeadlineSeconds: k8s.activeDeadlineSeconds,
      ttlSecondsAfterFinished: k8s.ttlSecondsAfterFinished,
      template: {
        metadata: compact({ labels: { ...labels }, annotations: annotations ? { ...annotations } : undefined }),
        spec: podSpec,
      },
    }),
  });
}

// ---------------------------------------------------------------------------
// The per-task Secret

/**
 * The Secret holding the assignment's env_vars for a Job built with
 * `taskSecretName: taskSecretNameFor(job name)`. Undefined when env is inline
 * (`inlineTaskEnv`) or there is nothing to hold. Same labels as the Job; values
 * base64-encoded in `data` under `taskSecretKeyFor(name)` (env var names may hold
 * characters Secret keys may not); immutable. The owner reference to the Job is added with
 * `withOwner` once the Job exists (its uid is needed).
 */
export function buildTaskSecret(
  config: WorkerConfig,
  assignment: TaskAssignment,
  job: V1Job,
): V1Secret | undefined {
  if (!usesTaskSecret(config, assignment)) return undefined;
  const jobName = job.metadata?.name ?? taskJobNameFor(assignment);
  const data: Record<string, string> = {};
  for (const name of Object.keys(assignment.env_vars).sort()) {
    data[taskSecretKeyFor(name)] = Buffer.from(assignment.env_vars[name] ?? "", "utf8").toString("base64");
  }
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: compact({
      name: taskSecretNameFor(jobName),
      namespace: job.metadata?.namespace ?? config.kubernetes.namespace,
      labels: { ...(job.metadata?.labels ?? labelsFor(config, assignment)) },
    }),
    type: "Opaque",
    immutable: true,
    data,
  };
}

/** A copy of the Secret owned by the Job, so Kubernetes deletes it with the Job. */
export function withOwner(secret: V1Secret, job: { name: string; uid: string }): V1Secret {
  const copy = structuredClone(secret);
  copy.metadata = {
    ...(copy.metadata ?? {}),
    ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: job.name, uid: job.uid }],
  };
  return copy;
}

/** The Job and, unless env is inline, its Secret, consistently named. */
export function buildTaskObjects(
  config: WorkerConfig,
  assignment: TaskAssignment,
): { job: V1Job; secret?: V1Secret } {
  if (!usesTaskSecret(config, assignment)) return { job: buildTaskJob(config, assignment) };
  const taskSecretName = taskSecretNameFor(taskJobNameFor(assignment));
  const job = buildTaskJob(config, assignment, { taskSecretName });
  const secret = buildTaskSecret(config, assignment, job);
  return secret ? { job, secret } : { job };
}

/** A copy of the Job with every inline env value that came from the assignment's
 * env_vars replaced by the placeholder (for render-pod and logs). */
export function redactTaskEnv(job: V1Job, assignment: TaskAssignment, placeholder = "<redacted>"): V1Job {
  const copy = structuredClone(job);
  const redact = (containers: V1Container[] | undefined) => {
    for (const c of containers ?? []) {
      for (const e of c.env ?? []) {
        if (e.value !== undefined && Object.hasOwn(assignment.env_vars, e.name) && assignment.env_vars[e.name] === e.value) {
          e.value = placeholder;
        }
      }
    }
  };
  const spec = copy.spec?.template.spec;
  redact(spec?.initContainers);
  redact(spec?.containers);
  return copy;
}

/** A copy of the Secret with every value replaced by the placeholder (base64-encoded). */
export function redactTaskSecret(secret: V1Secret, placeholder = "<redacted>"): V1Secret {
  const copy = structuredClone(secret);
  const encoded = Buffer.from(placeholder, "utf8").toString("base64");
  if (copy.data) for (const k of Object.keys(copy.data)) copy.data[k] = encoded;
  if (copy.stringData) for (const k of Object.keys(copy.stringData)) copy.stringData[k] = placeholder;
  return copy;
}
