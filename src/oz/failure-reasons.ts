/** The failure reason catalog: bounded values for `task_failed.failure_reason` and metric labels. */
export const FAILURE_REASONS = [
  "unknown",
  "task_timeout",
  "task_cancelled",
  "graceful_shutdown",
  "image_pull",
  "sidecar_prep",
  "container_create",
  "container_start",
  "container_wait",
  "container_exit",
  "container_oom",
  "workspace_setup",
  "setup_command",
  "agent_invocation",
  "teardown_command",
  "job_create",
  "job_watch",
  "job_failed",
  "evicted",
  "pod_watch",
  "unschedulable",
  "volume_mount",
  "init_container",
  "invalid_image",
  "active_deadline",
  "cleanup",
] as const;

export type FailureReason = (typeof FAILURE_REASONS)[number];

const REASON_SET: ReadonlySet<string> = new Set(FAILURE_REASONS);

export function isFailureReason(value: unknown): value is FailureReason {
  return typeof value === "string" && REASON_SET.has(value);
}

/**
 * Where in a task's life a failure happened (the `phase` label of
 * `oz_worker_task_failures_total`):
 * - `create`: building and submitting the Job (spec, sidecars, API create)
 * - `run`: the Job/Pod ran and failed (image, containers, deadlines, ...)
 * - `watch`: the worker lost track of the Job/Pod
 * - `cleanup`: deleting the finished Job failed
 */
export const FAILURE_PHASES = ["create", "run", "watch", "cleanup", "unknown"] as const;
export type FailurePhase = (typeof FAILURE_PHASES)[number];

/** The phase each catalog reason belongs to. */
export const FAILURE_PHASE_OF: Readonly<Record<FailureReason, FailurePhase>> = {
  unknown: "unknown",
  job_create: "create",
  sidecar_prep: "create",
  job_watch: "watch",
  pod_watch: "watch",
  cleanup: "cleanup",
  task_timeout: "run",
  task_cancelled: "run",
  graceful_shutdown: "run",
  image_pull: "run",
  container_create: "run",
  container_start: "run",
  container_wait: "run",
  container_exit: "run",
  container_oom: "run",
  workspace_setup: "run",
  setup_command: "run",
  agent_invocation: "run",
  teardown_command: "run",
  job_failed: "run",
  evicted: "run",
  unschedulable: "run",
  volume_mount: "run",
  init_container: "run",
  invalid_image: "run",
  active_deadline: "run",
};

/** The metrics phase a failure reason belongs to. */
export function failurePhase(reason: FailureReason): FailurePhase {
  return FAILURE_PHASE_OF[reason] ?? "unknown";
}
