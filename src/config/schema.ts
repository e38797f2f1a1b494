// The config FILE, as one valibot schema: the single source of its validation,
// its defaults and its documentation (the README's config table and
// docs/config.schema.json are generated from it by scripts/gen-config-docs).
//
// Keys and defaults are those of the published Go worker's config file, plus
// `backend.kubernetes.inline_task_env`, which is ours. Values a Go `string`
// field would take (`goString`) accept any YAML scalar as its text and treat an
// empty value as unset, as yaml.v3 does; see load.ts for that pre-pass and for
// unknown keys, which are refused everywhere.
import * as v from "valibot";
import { PodSpecSchema, ResourceRequirementsSchema, quantity } from "./pod-spec.ts";
import { documented, expected, goBool, goString, show } from "./schema-kit.ts";
import { isGoDuration, parseGoDuration } from "./units.ts";

export const IMAGE_PULL_POLICIES = ["Always", "Never", "IfNotPresent"] as const;
export const DEFAULT_NAMESPACE = "default";
export const DEFAULT_TASK_IMAGE = "ubuntu:22.04";
export const DEFAULT_PREFLIGHT_IMAGE = "busybox:1.36";
export const DEFAULT_UNSCHEDULABLE_TIMEOUT = "30s";
/** TTL of finished task Jobs when cleanup is on and the file sets none. */
export const DEFAULT_TTL_SECONDS_AFTER_FINISHED = 86_400;
export const DEFAULT_PREFLIGHT_RESOURCES = {
  requests: { cpu: "10m", memory: "16Mi" },
  limits: { cpu: "100m", memory: "64Mi" },
} as const;
/** Worker ids with this prefix belong to Warp. */
export const RESERVED_WORKER_ID_PREFIX = "warp";

const DURATION_JSON_SCHEMA = {
  type: "string",
  pattern: "^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$",
};

/** A non-negative Go duration string (`30s`, `2m`, `1h30m`, `0s`). */
const duration = v.pipe(
  goString(v.string()),
  v.check(isGoDuration, expected("a duration such as 30s, 2m or 1h30m (units ns, us, ms, s, m, h)")),
  v.check((s) => (parseGoDuration(s) ?? 0) >= 0, expected("a duration that is not negative")),
);

const nonNegativeInt = v.pipe(v.number(), v.integer(expected("an integer")), v.minValue(0, expected("an integer >= 0")));
const stringMap = v.record(v.string(), goString(v.string()));
const noWhitespace = (what: string) => v.check((s: string) => !/\s/.test(s), expected(`${what} without whitespace`));

/** A backend key oz-worker knows of but does not run. */
const unsupportedBackend = (name: string) =>
  v.custom(
    () => false,
    () =>
      `oz-worker runs tasks only as Kubernetes Jobs; the ${name} backend is not supported ` +
      `(configure backend.kubernetes instead; at most one backend may be configured)`,
  );

export const WorkerIdSchema = v.pipe(
  goString(v.string()),
  v.check((s) => s.trim() !== "", expected("a non-empty worker id")),
  v.check(
    (s) => !s.toLowerCase().startsWith(RESERVED_WORKER_ID_PREFIX),
    (issue) => `worker ids beginning with "${RESERVED_WORKER_ID_PREFIX}" are reserved by Warp; got ${show(issue.input)}`,
  ),
);

export const KubernetesBackendSchema = v.strictObject({
  kubeconfig: documented(
    v.optional(goString(v.string())),
    "Path of a kubeconfig file. Unset: the in-cluster service account when running in a pod, else the default loading rules (KUBECONFIG, ~/.kube/config) with the current context.",
    { type: "string", default: "in-cluster, else default rules" },
  ),
  namespace: documented(
    v.optional(goString(v.string()), DEFAULT_NAMESPACE),
    "Namespace the task Jobs (and their Secrets) are created in. The Helm chart sets the release namespace.",
    { type: "string" },
  ),
  default_image: documented(
    v.optional(v.pipe(goString(v.string()), noWhitespace("an image reference"))),
    `Task image when the run's environment names none. Unset: ${DEFAULT_TASK_IMAGE}.`,
    { type: "string", default: `unset: ${DEFAULT_TASK_IMAGE}` },
  ),
  image_pull_policy: documented(
    v.optional(goString(v.picklist(IMAGE_PULL_POLICIES)), "IfNotPresent"),
    "Pull policy of the task, setup and sidecar containers (a pod_template `task` container's own policy wins).",
    { type: IMAGE_PULL_POLICIES.join(" | ") },
  ),
  use_image_volumes: documented(
    v.optional(goBool(v.boolean()), false),
    "Mount sidecars as read-only Kubernetes image volumes instead of copying them in with root init containers. Needs a cluster with image volume support; read-write sidecars are then refused.",
    { type: "boolean" },
  ),
  preflight_image: documented(
    v.optional(v.pipe(goString(v.string()), noWhitespace("an image reference")), DEFAULT_PREFLIGHT_IMAGE),
    "Image of the startup preflight Job. Point it at an allowlisted registry if the cluster restricts images; pod_template.imagePullSecrets apply to it.",
    { type: "string" },
  ),
  preflight_resources: documented(
    v.optional(ResourceRequirementsSchema, () => structuredClone(DEFAULT_PREFLIGHT_RESOURCES) as never),
    "Resources of the preflight Job's containers (a ResourceRequirements: requests, limits). Replaces the default as a whole.",
    { type: "resources", default: "requests cpu 10m, memory 16Mi; limits cpu 100m, memory 64Mi" },
  ),
  sidecar_image: documented(
    v.optional(v.pipe(goString(v.string()), noWhitespace("an image reference"))),
    "Overrides the agent sidecar image the server sends (mounted at /agent).",
    { type: "string", default: "the server's" },
  ),
  coding_cli_sidecars: documented(
    v.optional(v.record(v.string(), v.pipe(goString(v.string()), noWhitespace("an image reference"))), {}),
    "Harness name → image of its coding CLI sidecar, mounted at /mnt/<harness>-cli-sidecar; replaces the server's sidecar at that path or adds one.",
    { type: "map string → string" },
  ),
  setup_command: documented(
    v.optional(goString(v.string())),
    "Shell command run before each task by an init container named `setup` on the task image (/bin/sh -c, in /workspace, with the task's env and mounts).",
    { type: "string" },
  ),
  teardown_command: documented(
    v.optional(goString(v.string())),
    "Shell command run after each task, as a preStop hook of the task container.",
    { type: "string" },
  ),
  extra_labels: documented(v.optional(stringMap, {}), "Labels added to every task Job and its Pod.", {
    type: "map string → string",
  }),
  extra_annotations: documented(v.optional(stringMap, {}), "Annotations added to every task Job and its Pod.", {
    type: "map string → string",
  }),
  active_deadline_seconds: documented(
    v.optional(v.pipe(v.number(), v.integer(expected("an integer")), v.minValue(1, expected("a positive integer")))),
    "activeDeadlineSeconds of task Jobs: the longest a task may run. The Helm chart defaults it to 28800.",
    { type: "integer > 0", default: "unset" },
  ),
  ttl_seconds_after_finished: documented(
    v.optional(nonNegativeInt),
    "ttlSecondsAfterFinished of task Jobs, which bounds how long a failed Job (left for inspection) is kept. Ignored when cleanup is off: Jobs are then kept.",
    { type: "integer ≥ 0", default: `${DEFAULT_TTL_SECONDS_AFTER_FINISHED} when cleanup is on; none when off` },
  ),
  workspace_size_limit: documented(
    v.optional(quantity),
    "sizeLimit of the /workspace emptyDir, as a Kubernetes quantity (e.g. 20Gi).",
    { type: "quantity", default: "unset" },
  ),
  unschedulable_timeout: documented(
    v.optional(duration, DEFAULT_UNSCHEDULABLE_TIMEOUT),
    "How long a task pod may stay Unschedulable before the task fails; 0s turns the fail-fast off.",
    { type: "duration", jsonSchema: DURATION_JSON_SCHEMA },
  ),
  inline_task_env: documented(
    v.optional(goBool(v.boolean()), false),
    "oz-worker only. false: the task's env_vars go into a per-task Secret that the Job references (secretKeyRef). true: they are written inline into the Job like the Go worker does, for clusters where the worker may not create Secrets; then anyone who can read Jobs or Pods in the namespace can read the task's secrets.",
    { type: "boolean" },
  ),
  pod_template: documented(
    v.optional(PodSpecSchema),
    "A Kubernetes PodSpec the task pod is built on (service account, scheduling, resources, env, volumes...). A container named `task` is customized in place; otherwise the worker appends its own. Checked like the API server does: unknown fields are errors.",
    { type: "PodSpec", default: "unset" },
  ),
});

export const BackendSchema = v.strictObject({
  kubernetes: documented(v.optional(KubernetesBackendSchema, {}), "The Kubernetes backend: how task Jobs are built.", {
    type: "mapping",
  }),
  docker: v.optional(unsupportedBackend("docker")),
  direct: v.optional(unsupportedBackend("direct")),
  command: v.optional(unsupportedBackend("command")),
});

export const ConfigFileSchema = v.strictObject({
  worker_id: documented(
    v.optional(WorkerIdSchema),
    `This worker's id: runs are routed to it with --host. Required here or with --worker-id; ids beginning with "${RESERVED_WORKER_ID_PREFIX}" are reserved.`,
    { type: "string", default: "required" },
  ),
  cleanup: documented(
    v.optional(goBool(v.boolean()), true),
    "Delete a task's Job when it succeeds (failed ones are kept for their TTL). false (or --no-cleanup) keeps every Job and sets no TTL.",
    { type: "boolean" },
  ),
  max_concurrent_tasks: documented(
    v.optional(nonNegativeInt, 0),
    "Most tasks run at once; further assignments are rejected back to the queue. 0 means unlimited.",
    { type: "integer ≥ 0" },
  ),
  idle_on_complete: documented(
    v.optional(duration),
    "How long the agent stays alive after its task's conversation ends, for follow-ups (passed as --idle-on-complete). Unset: the agent's default (45m).",
    { type: "duration", default: "unset", jsonSchema: DURATION_JSON_SCHEMA },
  ),
  backend: documented(v.optional(BackendSchema, {}), "Backend selection; oz-worker runs the kubernetes backend only.", {
    type: "mapping",
  }),
});

export type ConfigFile = v.InferOutput<typeof ConfigFileSchema>;
export type KubernetesBackendFile = v.InferOutput<typeof KubernetesBackendSchema>;
