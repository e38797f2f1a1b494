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
 * metric-env.ts and the exporters in metric-exporters.ts. The exporter is
 * chosen from `OTEL_METRICS_EXPORTER` (see docs/observability.md).
 *
 * Nothing in here ever throws into the worker: every facade method swallows
 * its own errors, exporter failures are logged at most once per export
 * interval, and a failure to set up an exporter degrades to "no metrics"
 * with a warning.
 */
import { ValueType, type Attributes, type Counter, type Gauge, type Histogram, type UpDownCounter } from "@opentelemetry/api";
import { defaultResource, resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type IMetricReader,
  type PushMetricExporter,
} from "@opentelemetry/sdk-metrics";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { createLogger, type Logger } from "./log.ts";
import {
  DEFAULT_FAILURE_PHASE,
  FAILURE_REASONS,
  METER_SCOPE,
  METRIC_NAMES,
  RECONNECT_LABELS,
  REJECT_REASONS,
  SERVICE_NAME,
  TASK_DURATION_BUCKETS,
  TASK_RESULTS,
  normalizeFailurePhase,
  normalizeFailureReason,
  normalizeReconnectLabel,
  normalizeRejectReason,
  type FailurePhase,
  type FailureReason,
  type ReconnectLabel,
  type RejectReason,
  type TaskResult,
} from "./metric-contract.ts";
import { LOG_URL, resolveMetricsConfig, type Env, type MetricsConfig, type MetricsExporterKind } from "./metric-env.ts";
import {
  createOtlpExporter,
  GuardedExporter,
  JsonLinesConsoleExporter,
  startPrometheusEndpoint,
  type PrometheusEndpoint,
} from "./metric-exporters.ts";
import { redactUrl } from "../util/url.ts";

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

// ---------------------------------------------------------------------------
// createMetrics
// ---------------------------------------------------------------------------

interface Instruments {
  connected: Gauge;
  tasksActive: UpDownCounter;
  tasksMaxConcurrent: Gauge;
  tasksRejected: Counter;
  tasksCompleted: Counter;
  taskDuration: Histogram;
  taskFailures: Counter;
  websocketReconnects: Counter;
  info: Gauge;
}

/**
 * Builds the metrics pipeline and primes the known series. Never rejects:
 * a broken configuration yields a working facade that exports nothing (or
 * less) and a warning in the log.
 */
export async function createMetrics(options: MetricsOptions): Promise<WorkerMetrics> {
  const logger: Logger = options.logger ?? createLogger().child({ component: "metrics" });
  const env = options.env ?? process.env;
  const timeoutMs = options.shutdownTimeoutMs ?? 5_000;
  const backend = options.backend ?? "kubernetes";
  try {
    const config = resolveMetricsConfig(env, logger);
    if (config.exporters.includes("none")) {
      logger.debug("metrics export disabled (OTEL_METRICS_EXPORTER=none)");
      return noopMetrics();
    }

    const resource = buildResource(config.resourceAttributes, {
      version: options.version,
      workerId: options.workerId,
      backend,
    });

    const readers: IMetricReader[] = [];
    const running: MetricsExporterKind[] = [];
    let prometheus: PrometheusEndpoint | undefined;

    for (const kind of config.exporters) {
      try {
        if (kind === "prometheus") {
          prometheus = await startPrometheusEndpoint(config.prometheus, logger);
          readers.push(prometheus.reader);
        } else if (kind === "otlp") {
          const exporter = await createOtlpExporter(config.otlp);
          readers.push(
            periodicReader(
              new GuardedExporter(exporter, "otlp", config.exportIntervalMillis, logger, config.exportersDefaulted),
              config,
            ),
          );
          logger.info("metrics: pushing OTLP", {
            endpoint: redactUrl(config.otlp.url, LOG_URL),
            protocol: config.otlp.protocol,
            interval_ms: config.exportIntervalMillis,
          });
        } else if (kind === "console") {
          const exporter = new JsonLinesConsoleExporter();
          readers.push(periodicReader(new GuardedExporter(exporter, "console", config.exportIntervalMillis, logger, false), config));
        }
        running.push(kind);
      } catch (err) {
        logger.warn("metrics exporter could not be started; continuing without it", { exporter: kind, err });
      }
    }
    if (readers.length === 0) return noopMetrics();

    const provider = new MeterProvider({ resource, readers });
    const meter = provider.getMeter(METER_SCOPE);
    const ins: Instruments = {
      connected: meter.createGauge(METRIC_NAMES.connected, {
        description: "1 while the worker has an open WebSocket to the Oz control plane, 0 otherwise.",
        valueType: ValueType.INT,
      }),
      tasksActive: meter.createUpDownCounter(METRIC_NAMES.tasksActive, {
        description: "Tasks currently running on this worker.",
        valueType: ValueType.INT,
      }),
      tasksMaxConcurrent: meter.createGauge(METRIC_NAMES.tasksMaxConcurrent, {
        description: "Configured max_concurrent_tasks; 0 means unlimited.",
        valueType: ValueType.INT,
      }),
      tasksRejected: meter.createCounter(METRIC_NAMES.tasksRejected, {
        description: "Task assignments the worker declined, by reason.",
        valueType: ValueType.INT,
      }),
      tasksCompleted: meter.createCounter(METRIC_NAMES.tasksCompleted, {
        description: "Tasks that reached a terminal state, by result.",
        valueType: ValueType.INT,
      }),
      taskDuration: meter.createHistogram(METRIC_NAMES.taskDuration, {
        description: "Wall-clock task duration on the worker, by result.",
        unit: "s",
        advice: { explicitBucketBoundaries: [...TASK_DURATION_BUCKETS] },
      }),
      taskFailures: meter.createCounter(METRIC_NAMES.taskFailures, {
        description: "Failed tasks by phase and catalog failure reason.",
        valueType: ValueType.INT,
      }),
      websocketReconnects: meter.createCounter(METRIC_NAMES.websocketReconnects, {
        description: "WebSocket reconnect attempts, by reason.",
        valueType: ValueType.INT,
      }),
      info: meter.createGauge(METRIC_NAMES.info, {
        description: "Constant 1; build and runtime metadata as labels.",
        valueType: ValueType.INT,
      }),
    };

    prime(ins, {
      version: options.version,
      backend,
      workerId: options.workerId,
      maxConcurrentTasks: options.maxConcurrentTasks,
    });

    return new OtelWorkerMetrics(provider, ins, running, prometheus, logger, timeoutMs);
  } catch (err) {
    logger.warn("metrics setup failed; continuing without metrics", { err });
    return noopMetrics();
  }
}

function buildResource(
  fromEnv: Record<string, string>,
  w: { version: string; workerId: string; backend: string },
): Resource {
  return defaultResource().merge(
    resourceFromAttributes({
      ...fromEnv,
      [ATTR_SERVICE_NAME]: SERVICE_NAME,
      [ATTR_SERVICE_VERSION]: w.version,
      "worker.id": w.workerId,
      "worker.backend": w.backend,
    }),
  );
}

function prime(
  ins: Instruments,
  w: { version: string; backend: string; workerId: string; maxConcurrentTasks: number },
): void {
  ins.info.record(1, { version: w.version, backend: w.backend, worker_id: w.workerId });
  ins.connected.record(0);
  const max = Number.isFinite(w.maxConcurrentTasks) && w.maxConcurrentTasks > 0 ? Math.floor(w.maxConcurrentTasks) : 0;
  ins.tasksMaxConcurrent.record(max);
  ins.tasksActive.add(0);
  for (const result of TASK_RESULTS) ins.tasksCompleted.add(0, { result });
  for (const reason of REJECT_REASONS) ins.tasksRejected.add(0, { reason });
  for (const reason of RECONNECT_LABELS) ins.websocketReconnects.add(0, { reason });
  for (const reason of FAILURE_REASONS) {
    ins.taskFailures.add(0, { phase: DEFAULT_FAILURE_PHASE[reason], reason });
  }
  // The duration histogram is deliberately not primed: a synthetic
  // observation would skew quantiles.
}

class OtelWorkerMetrics implements WorkerMetrics {
  readonly exporters: readonly MetricsExporterKind[];
  #active = 0;
  #closed = false;
  #shutdownPromise: Promise<void> | undefined;

  private readonly provider: MeterProvider;
  private readonly ins: Instruments;
  private readonly prometheus: PrometheusEndpoint | undefined;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  constructor(
    provider: MeterProvider,
    ins: Instruments,
    exporters: MetricsExporterKind[],
    prometheus: PrometheusEndpoint | undefined,
    logger: Logger,
    timeoutMs: number,
  ) {
    this.provider = provider;
    this.ins = ins;
    this.prometheus = prometheus;
    this.logger = logger;
    this.timeoutMs = timeoutMs;
    this.exporters = Object.freeze([...exporters]);
  }

  get prometheusAddress(): { host: string; port: number } | undefined {
    return this.prometheus?.address();
  }

  setConnected(connected: boolean): void {
    this.#guard(() => this.ins.connected.record(connected ? 1 : 0));
  }

  taskStarted(): void {
    this.#guard(() => {
      this.#active++;
      this.ins.tasksActive.add(1);
    });
  }

  taskFinished(info: TaskFinished): void {
    this.#guard(() => {
      // Never let the gauge go negative (e.g. a finish for a task adopted
      // without a start).
      if (this.#active > 0) {
        this.#active--;
        this.ins.tasksActive.add(-1);
      }
      const result: TaskResult = (TASK_RESULTS as readonly string[]).includes(info.result) ? info.result : "failed";
      const attrs: Attributes = { result };
      this.ins.tasksCompleted.add(1, attrs);
      const d = Number(info.durationSeconds);
      if (Number.isFinite(d)) this.ins.taskDuration.record(Math.max(0, d), attrs);
      if (result === "failed") {
        const reason = normalizeFailureReason(info.failure?.reason);
        const phase = info.failure?.phase === undefined ? DEFAULT_FAILURE_PHASE[reason] : normalizeFailurePhase(info.failure.phase);
        this.ins.taskFailures.add(1, { phase, reason });
      }
    });
  }

  taskRejected(reason: string): void {
    this.#guard(() => this.ins.tasksRejected.add(1, { reason: normalizeRejectReason(reason) }));
  }

  websocketReconnect(reason: string): void {
    this.#guard(() => this.ins.websocketReconnects.add(1, { reason: normalizeReconnectLabel(reason) }));
  }

  async flush(): Promise<void> {
    if (this.#closed) return;
    await withTimeout(this.provider.forceFlush(), this.timeoutMs).catch((err: unknown) => {
      this.logger.debug("metrics flush failed", { err });
    });
  }

  shutdown(): Promise<void> {
    this.#shutdownPromise ??= this.#shutdown();
    return this.#shutdownPromise;
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    await Promise.all([
      withTimeout(this.provider.shutdown(), this.timeoutMs).catch((err: unknown) => {
        this.logger.debug("metrics shutdown did not complete cleanly", { err });
      }),
      this.prometheus?.close(),
    ]);
  }

  #guard(fn: () => void): void {
    if (this.#closed) return;
    try {
      fn();
    } catch (err) {
      this.logger.debug("metrics call failed", { err });
    }
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

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: unknown;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms);
    (timer as { unref?: () => void }).unref?.();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer as Parameters<typeof clearTimeout>[0]));
}

function periodicReader(exporter: PushMetricExporter, config: MetricsConfig): PeriodicExportingMetricReader {
  return new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: config.exportIntervalMillis,
    exportTimeoutMillis: config.exportTimeoutMillis,
  });
}
