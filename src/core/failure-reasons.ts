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
