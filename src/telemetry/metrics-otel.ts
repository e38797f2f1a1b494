/**
 * The OpenTelemetry side of the metrics facade (metrics.ts): the MeterProvider, its
 * readers and the instruments of the metric contract. metrics.ts imports this module only
 * when an exporter is configured, so a worker without metrics never loads the SDK.
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
import type { Logger } from "./log.ts";
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
import { LOG_URL, type MetricsConfig, type MetricsExporterKind } from "./metric-env.ts";
import type { MetricsOptions, TaskFinished, WorkerMetrics } from "./metrics.ts";
import {
  createOtlpExporter,
  GuardedExporter,
  JsonLinesConsoleExporter,
  startPrometheusEndpoint,
  type PrometheusEndpoint,
} from "./metric-exporters.ts";
import { redactUrl } from "../util/url.ts";

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
 * The OpenTelemetry pipeline for `config` (whose exporters are not "none"): starts each
 * exporter, creates the instruments and primes the known series. Undefined when no exporter
 * could be started. An exporter that fails to start is logged and left out.
 */
export async function startOtelMetrics(config: MetricsConfig, options: MetricsOptions, logger: Logger): Promise<WorkerMetrics | undefined> {
  const timeoutMs = options.shutdownTimeoutMs ?? 5_000;
  const backend = options.backend ?? "kubernetes";
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
  if (readers.length === 0) return undefined;

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
