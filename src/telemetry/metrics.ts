/**
 * OpenTelemetry metrics for oz-worker.
 *
 * The metric names, types and labels are a public contract shared with the Go
 * worker (`oz-agent-worker`): dashboards and alerts written for one must work
 * for the other. Counters are created with their `_total` suffix already in
 * the OTel name (as the Go worker does), so OTLP receivers see
 * `oz_worker_tasks_rejected_total` and the Prometheus exporter, which only
 * appends `_total` when it is missing and never appends unit suffixes,
 * exposes exactly the same names.
 *
 * This module is the facade the worker calls. The contract (names, label
 * values, buckets) is in metric-contract.ts, the OTEL_* configuration in
 * metric-env.ts, the OpenTelemetry pipeline in metrics-otel.ts and the
 * exporters in metric-exporters.ts. The exporter is chosen from
 * `OTEL_METRICS_EXPORTER` (see docs/observability.md). The OpenTelemetry SDK
 * is loaded only when an exporter is: with `OTEL_METRICS_EXPORTER=none` the
 * worker never initialises it (about 8 MB of RSS in the compiled binary).
 *
 * Nothing in here ever throws into the worker: every facade method swallows
 * its own errors, exporter failures are logged at most once per export
 * interval, and a failure to set up an exporter degrades to "no metrics"
 * with a warning.
 */
import { createLogger, type Logger } from "./log.ts";
import type { FailurePhase, FailureReason, RejectReason, ReconnectLabel, TaskResult } from "./metric-contract.ts";
import { resolveMetricsConfig, type Env, type MetricsExporterKind } from "./metric-env.ts";

export interface MetricsOptions {
  version: string;
  workerId: string;
  backend?: "kubernetes";
  /** 0 = unlimited. */
  maxConcurrentTasks: number;
  /** Defaults to process.env. */
  env?: Env;
  logger?: Logger;
  /** Upper bound for shutdown() and flush(); default 5000 ms. */
  shutdownTimeoutMs?: number;
}

export interface TaskFinished {
  result: TaskResult;
  durationSeconds: number;
  /** Counted in oz_worker_task_failures_total when result is "failed". */
  failure?: {
    /** Defaults to the reason's usual phase ({@link failurePhaseFor}). */
    phase?: FailurePhase | (string & {});
    reason: FailureReason | (string & {});
  };
}

export interface WorkerMetrics {
  /** The exporters actually running (["none"] when metrics are off). */
  readonly exporters: readonly MetricsExporterKind[];
  /** Where /metrics is served when the prometheus exporter is listening. */
  readonly prometheusAddress: { host: string; port: number } | undefined;
  setConnected(connected: boolean): void;
  taskStarted(): void;
  taskFinished(info: TaskFinished): void;
  taskRejected(reason: RejectReason | (string & {})): void;
  websocketReconnect(reason: ReconnectLabel | (string & {})): void;
  /** Pushes now (OTLP/console); bounded by shutdownTimeoutMs; never rejects. */
  flush(): Promise<void>;
  /** Flushes and stops exporters and the /metrics listener; bounded; never rejects; idempotent. */
  shutdown(): Promise<void>;
}

/**
 * Builds the metrics pipeline and primes the known series. Never rejects:
 * a broken configuration yields a working facade that exports nothing (or
 * less) and a warning in the log.
 */
export async function createMetrics(options: MetricsOptions): Promise<WorkerMetrics> {
  const logger: Logger = options.logger ?? createLogger().child({ component: "metrics" });
  const env = options.env ?? process.env;
  try {
    const config = resolveMetricsConfig(env, logger);
    if (config.exporters.includes("none")) {
      logger.debug("metrics export disabled (OTEL_METRICS_EXPORTER=none)");
      return noopMetrics();
    }
    const { startOtelMetrics } = await import("./metrics-otel.ts");
    return (await startOtelMetrics(config, options, logger)) ?? noopMetrics();
  } catch (err) {
    logger.warn("metrics setup failed; continuing without metrics", { err });
    return noopMetrics();
  }
}

function noopMetrics(): WorkerMetrics {
  const done = Promise.resolve();
  return {
    exporters: Object.freeze(["none"] as MetricsExporterKind[]),
    prometheusAddress: undefined,
    setConnected() {},
    taskStarted() {},
    taskFinished() {},
    taskRejected() {},
    websocketReconnect() {},
    flush: () => done,
    shutdown: () => done,
  };
}
