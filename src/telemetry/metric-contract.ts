/**
 * The metric contract shared with the Go worker (`oz-agent-worker`): exposed
 * names, instrumentation scope, label values and histogram buckets.
 * Dashboards and alerts written for one worker must work for the other, so
 * every value here is public output.
 */
import {
  FAILURE_PHASES,
  FAILURE_PHASE_OF,
  FAILURE_REASONS,
  type FailurePhase,
  type FailureReason,
} from "../oz/failure-reasons.ts";

/** Exact exposed names (Prometheus and OTLP alike). */
export const METRIC_NAMES = {
  connected: "oz_worker_connected",
  tasksActive: "oz_worker_tasks_active",
  tasksMaxConcurrent: "oz_worker_tasks_max_concurrent",
  tasksRejected: "oz_worker_tasks_rejected_total",
  tasksCompleted: "oz_worker_tasks_completed_total",
  taskDuration: "oz_worker_task_duration_seconds",
  taskFailures: "oz_worker_task_failures_total",
  websocketReconnects: "oz_worker_websocket_reconnects_total",
  info: "oz_worker_info",
} as const;

/**
 * Instrumentation scope. Prometheus renders it as the `otel_scope_name`
 * label on every series; it matches the Go worker's so that label is stable
 * across implementations.
 */
export const METER_SCOPE = "github.com/warpdotdev/oz-agent-worker";
export const SERVICE_NAME = "oz-agent-worker";

export const TASK_RESULTS = ["succeeded", "failed", "cancelled"] as const;
export type TaskResult = (typeof TASK_RESULTS)[number];

/**
 * Why a task assignment was turned down. `at_capacity` is the Go worker's
 * value for "max_concurrent_tasks reached" and is kept for dashboard
 * compatibility.
 */
export const REJECT_REASONS = [
  "at_capacity", // max_concurrent_tasks reached
  "shutting_down", // SIGTERM received, draining
  "not_ready", // preflight not passed / caches not synced yet
  "invalid_assignment", // the assignment failed validation
  "unknown",
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * The `reason` label of oz_worker_websocket_reconnects_total: why the
 * WebSocket was re-dialled. `dial_failed` and `remote_close` are the Go
 * worker's values; the others split out causes the Go worker folds into
 * `remote_close`. These are public label values, not the connection's own
 * causes (`ReconnectReason` in src/oz/connection.ts); the worker maps one to
 * the other, so neither telemetry nor oz depends on the other.
 */
export const RECONNECT_LABELS = [
  "dial_failed", // the upgrade request failed (network, TLS, 401/403, 5xx)
  "remote_close", // the server closed the connection
  "keepalive_timeout", // nothing received for the keepalive window (60 s)
  "read_error", // the socket errored while reading
  "write_error", // a write failed or missed its deadline
  "unknown",
] as const;
export type ReconnectLabel = (typeof RECONNECT_LABELS)[number];

export { FAILURE_REASONS, FAILURE_PHASES, type FailureReason, type FailurePhase };
/** The phase each catalog reason normally belongs to; these pairs are primed at start. */
export const DEFAULT_FAILURE_PHASE = FAILURE_PHASE_OF;

/**
 * Histogram buckets (seconds) for tasks that last from seconds to the
 * chart's default 8 h active deadline and beyond.
 */
export const TASK_DURATION_BUCKETS: readonly number[] = [
  1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600, 28800, 43200, 86400,
];

/** Normalizes to a known value; anything else becomes "unknown". */
function bounded<T extends string>(known: readonly T[], value: unknown): T | "unknown" {
  return typeof value === "string" && (known as readonly string[]).includes(value) ? (value as T) : "unknown";
}

export function normalizeRejectReason(reason: unknown): RejectReason {
  return bounded(REJECT_REASONS, reason);
}
export function normalizeReconnectLabel(reason: unknown): ReconnectLabel {
  return bounded(RECONNECT_LABELS, reason);
}
export function normalizeFailureReason(reason: unknown): FailureReason {
  return bounded(FAILURE_REASONS, reason);
}
export function normalizeFailurePhase(phase: unknown): FailurePhase {
  return bounded(FAILURE_PHASES, phase);
}
/** The default phase of a catalog reason ("unknown" for values outside the catalog). */
export function failurePhaseFor(reason: unknown): FailurePhase {
  return DEFAULT_FAILURE_PHASE[normalizeFailureReason(reason)];
}
