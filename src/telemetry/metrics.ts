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
 * The exporter is chosen from `OTEL_METRICS_EXPORTER` (see
 * docs/observability.md). Nothing in here ever throws into the worker: every
 * facade method swallows its own errors, exporter failures are logged at most
 * once per export interval, and a failure to set up an exporter degrades to
 * "no metrics" with a warning.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ValueType, type Attributes, type Counter, type Gauge, type Histogram, type UpDownCounter } from "@opentelemetry/api";
import { defaultResource, resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type IMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { createLogger, type Logger } from "./log.ts";
import {
  FAILURE_PHASES,
  FAILURE_PHASE_OF,
  FAILURE_REASONS,
  type FailurePhase,
  type FailureReason,
} from "../oz/failure-reasons.ts";
import { describeError } from "../util/errors.ts";
import { redactUrl, safeDecode, type RedactUrlOptions } from "../util/url.ts";

// ---------------------------------------------------------------------------
// The contract: names, label values, buckets
// ---------------------------------------------------------------------------

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
 * Why the WebSocket was re-dialled. `dial_failed` and `remote_close` are the
 * Go worker's values; the others split out causes the Go worker folds into
 * `remote_close`.
 */
export const RECONNECT_REASONS = [
  "dial_failed", // the upgrade request failed (network, TLS, 401/403, 5xx)
  "remote_close", // the server closed the connection
  "keepalive_timeout", // nothing received for the keepalive window (60 s)
  "read_error", // the socket errored while reading
  "write_error", // a write failed or missed its deadline
  "unknown",
] as const;
export type ReconnectReason = (typeof RECONNECT_REASONS)[number];

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
export function normalizeReconnectReason(reason: unknown): ReconnectReason {
  return bounded(RECONNECT_REASONS, reason);
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

// ---------------------------------------------------------------------------
// Facade
// ---------------------------------------------------------------------------

export type MetricsExporterKind = "prometheus" | "otlp" | "console" | "none";
/** For log lines: no credentials, no query. */
const LOG_URL: RedactUrlOptions = { dropQuery: true, invalid: "<unparseable>" };

export type MetricsLogger = Pick<Logger, "debug" | "info" | "warn" | "error">;
export type Env = Record<string, string | undefined>;

export interface MetricsOptions {
  version: string;
  workerId: string;
  backend?: "kubernetes";
  /** 0 = unlimited. */
  maxConcurrentTasks: number;
  /** Defaults to process.env. */
  env?: Env;
  logger?: MetricsLogger;
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
  websocketReconnect(reason: ReconnectReason | (string & {})): void;
  /** Pushes now (OTLP/console); bounded by shutdownTimeoutMs; never rejects. */
  flush(): Promise<void>;
  /** Flushes and stops exporters and the /metrics listener; bounded; never rejects; idempotent. */
  shutdown(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Configuration from the environment
// ---------------------------------------------------------------------------

export type OtlpProtocol = "http/protobuf" | "http/json";

export interface OtlpConfig {
  url: string;
  protocol: OtlpProtocol;
  headers: Record<string, string>;
  timeoutMillis: number;
  compression: "gzip" | "none";
  temporality: "cumulative" | "delta";
}

export interface MetricsConfig {
  exporters: MetricsExporterKind[];
  /** True when OTEL_METRICS_EXPORTER was unset and otlp was chosen by default. */
  exportersDefaulted: boolean;
  prometheus: { host: string; port: number };
  otlp: OtlpConfig;
  exportIntervalMillis: number;
  exportTimeoutMillis: number;
  resourceAttributes: Record<string, string>;
}

const DEFAULT_OTLP_BASE = "http://localhost:4318";

/**
 * Reads the OTEL_* variables. Problems are warned about and replaced by
 * defaults; this never throws.
 */
export function resolveMetricsConfig(env: Env, logger: MetricsLogger): MetricsConfig {
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };

  // Exporters. Unset means otlp (the OTel default, and the contract's).
  let exporters: MetricsExporterKind[] = [];
  const exportersDefaulted = get("OTEL_METRICS_EXPORTER") === undefined;
  if (get("OTEL_SDK_DISABLED")?.toLowerCase() === "true") {
    exporters = ["none"];
  } else {
    const raw = get("OTEL_METRICS_EXPORTER") ?? "otlp";
    for (const part of raw.split(",")) {
      const name = part.trim().toLowerCase();
      if (name === "") continue;
      if (name === "prometheus" || name === "otlp" || name === "console" || name === "none") {
        if (!exporters.includes(name)) exporters.push(name);
      } else {
        logger.warn("unknown OTEL_METRICS_EXPORTER value ignored; metrics export disabled for it", {
          value: name,
          supported: "prometheus, otlp, console, none",
        });
      }
    }
    if (exporters.includes("none") || exporters.length === 0) exporters = ["none"];
  }

  // Prometheus listener.
  const promHost = get("OTEL_EXPORTER_PROMETHEUS_HOST") ?? "localhost";
  let promPort = 9464;
  const rawPort = get("OTEL_EXPORTER_PROMETHEUS_PORT");
  if (rawPort !== undefined) {
    const n = Number(rawPort);
    if (Number.isInteger(n) && n >= 0 && n <= 65535) promPort = n;
    else logger.warn("invalid OTEL_EXPORTER_PROMETHEUS_PORT; using 9464", { value: rawPort });
  }

  // OTLP.
  let protocol: OtlpProtocol = "http/protobuf";
  const rawProtocol = get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") ?? get("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (rawProtocol !== undefined) {
    if (rawProtocol === "http/protobuf" || rawProtocol === "http/json") protocol = rawProtocol;
    else if (exporters.includes("otlp")) {
      logger.warn("unsupported OTLP protocol; using http/protobuf (point the endpoint at the collector's OTLP/HTTP port, usually 4318)", {
        value: rawProtocol,
      });
    }
  }

  let url = `${DEFAULT_OTLP_BASE}/v1/metrics`;
  const specific = get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
  const general = get("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (specific !== undefined) {
    if (isHttpUrl(specific)) url = specific;
    else logger.warn("invalid OTEL_EXPORTER_OTLP_METRICS_ENDPOINT; using the default", { value: redactUrl(specific, LOG_URL) });
  } else if (general !== undefined) {
    if (isHttpUrl(general)) url = `${general.replace(/\/+$/, "")}/v1/metrics`;
    else logger.warn("invalid OTEL_EXPORTER_OTLP_ENDPOINT; using the default", { value: redactUrl(general, LOG_URL) });
  }

  const headers = {
    ...parseKeyValueList(get("OTEL_EXPORTER_OTLP_HEADERS")),
    ...parseKeyValueList(get("OTEL_EXPORTER_OTLP_METRICS_HEADERS")),
  };

  const timeoutMillis =
    positiveInt(get("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"), "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", logger) ??
    positiveInt(get("OTEL_EXPORTER_OTLP_TIMEOUT"), "OTEL_EXPORTER_OTLP_TIMEOUT", logger) ??
    10_000;

  const rawCompression = (get("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION") ?? get("OTEL_EXPORTER_OTLP_COMPRESSION"))?.toLowerCase();
  const compression = rawCompression === "gzip" ? "gzip" : "none";

  const rawTemporality = get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")?.toLowerCase();
  const temporality = rawTemporality === "delta" ? "delta" : "cumulative";

  const exportIntervalMillis =
    positiveInt(get("OTEL_METRIC_EXPORT_INTERVAL"), "OTEL_METRIC_EXPORT_INTERVAL", logger) ?? 60_000;
  const exportTimeoutMillis = Math.min(
    positiveInt(get("OTEL_METRIC_EXPORT_TIMEOUT"), "OTEL_METRIC_EXPORT_TIMEOUT", logger) ?? 30_000,
    exportIntervalMillis,
  );

  return {
    exporters,
    exportersDefaulted,
    prometheus: { host: promHost, port: promPort },
    otlp: { url, protocol, headers, timeoutMillis, compression, temporality },
    exportIntervalMillis,
    exportTimeoutMillis,
    resourceAttributes: parseKeyValueList(get("OTEL_RESOURCE_ATTRIBUTES")),
  };
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

function positiveInt(raw: string | undefined, name: string, logger: MetricsLogger): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (Number.isFinite(n) && n > 0) return Math.floor(n);
  logger.warn(`invalid ${name}; using the default`, { value: raw });
  return undefined;
}

/** W3C-baggage-like `k=v,k2=v2` with percent-decoding (OTEL_*_HEADERS, OTEL_RESOURCE_ATTRIBUTES). */
export function parseKeyValueList(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const key = safeDecode(part.slice(0, eq).trim());
    const value = safeDecode(part.slice(eq + 1).trim());
    if (key !== "") out[key] = value;
  }
  return out;
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
  const logger: MetricsLogger = options.logger ?? createLogger().child({ component: "metrics" });
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
  for (const reason of RECONNECT_REASONS) ins.websocketReconnects.add(0, { reason });
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
  private readonly logger: MetricsLogger;
  private readonly timeoutMs: number;
  constructor(
    provider: MeterProvider,
    ins: Instruments,
    exporters: MetricsExporterKind[],
    prometheus: PrometheusEndpoint | undefined,
    logger: MetricsLogger,
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
    this.#guard(() => this.ins.websocketReconnects.add(1, { reason: normalizeReconnectReason(reason) }));
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

// ---------------------------------------------------------------------------
// Exporters
// ---------------------------------------------------------------------------

type ExportResult = Parameters<Parameters<PushMetricExporter["export"]>[1]>[0];
/** ExportResultCode from @opentelemetry/core (not a direct dependency). */
const EXPORT_SUCCESS = 0;
const EXPORT_FAILED = 1;

/**
 * Wraps a push exporter so that it never throws and its failures are logged
 * at most once per export interval (with a count of what was suppressed),
 * plus one line when it recovers. When the exporter was not asked for
 * (OTEL_METRICS_EXPORTER unset, otlp by default) only the first failure is a
 * warning, with a hint; later ones go to debug so a worker without a
 * collector does not warn every minute forever.
 */
class GuardedExporter implements PushMetricExporter {
  #lastLogged = Number.NEGATIVE_INFINITY;
  #suppressed = 0;
  #failing = false;
  #warned = false;

  private readonly inner: PushMetricExporter;
  private readonly name: string;
  private readonly intervalMs: number;
  private readonly logger: MetricsLogger;
  private readonly implicit: boolean;
  constructor(
    inner: PushMetricExporter,
    name: string,
    intervalMs: number,
    logger: MetricsLogger,
    implicit: boolean,
  ) {
    this.inner = inner;
    this.name = name;
    this.intervalMs = intervalMs;
    this.logger = logger;
    this.implicit = implicit;
    if (inner.selectAggregationTemporality) {
      this.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
    }
    if (inner.selectAggregation) this.selectAggregation = inner.selectAggregation.bind(inner);
  }

  selectAggregationTemporality?: PushMetricExporter["selectAggregationTemporality"];
  selectAggregation?: PushMetricExporter["selectAggregation"];

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    let called = false;
    const done = (result: ExportResult) => {
      if (called) return;
      called = true;
      if (result.code === EXPORT_SUCCESS) this.#ok();
      else this.#failed(result.error);
      try {
        resultCallback(result);
      } catch {
        // the SDK's callback; nothing to do
      }
    };
    try {
      this.inner.export(metrics, done);
    } catch (err) {
      done({ code: EXPORT_FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  async forceFlush(): Promise<void> {
    try {
      await this.inner.forceFlush();
    } catch (err) {
      this.#failed(err);
    }
  }

  async shutdown(): Promise<void> {
    try {
      await this.inner.shutdown();
    } catch {
      // ignore: we are going away
    }
  }

  #ok(): void {
    if (this.#failing) {
      this.#failing = false;
      this.logger.info("metrics export recovered", { exporter: this.name });
    }
    this.#suppressed = 0;
  }

  #failed(error: unknown): void {
    this.#failing = true;
    const now = Date.now();
    if (now - this.#lastLogged < this.intervalMs) {
      this.#suppressed++;
      return;
    }
    this.#lastLogged = now;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    const fields = {
      exporter: this.name,
      error: describeError(error),
      ...(suppressed > 0 ? { suppressed_failures: suppressed } : {}),
    };
    if (this.implicit && this.#warned) {
      this.logger.debug("metrics export failed", fields);
      return;
    }
    this.#warned = true;
    this.logger.warn(
      this.implicit
        ? "metrics export failed; tasks are not affected. OTEL_METRICS_EXPORTER is unset, so metrics are pushed over OTLP by default: set OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_METRICS_EXPORTER=prometheus|none"
        : "metrics export failed; tasks are not affected, will retry next interval",
      fields,
    );
  }
}

async function createOtlpExporter(c: OtlpConfig): Promise<PushMetricExporter> {
  const common = {
    url: c.url,
    headers: c.headers,
    timeoutMillis: c.timeoutMillis,
    compression: c.compression,
    temporalityPreference: c.temporality === "delta" ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
  };
  if (c.protocol === "http/json") {
    const { OTLPMetricExporter } = await import("@opentelemetry/exporter-metrics-otlp-http");
    return new OTLPMetricExporter(common as ConstructorParameters<typeof OTLPMetricExporter>[0]);
  }
  const { OTLPMetricExporter } = await import("@opentelemetry/exporter-metrics-otlp-proto");
  return new OTLPMetricExporter(common as ConstructorParameters<typeof OTLPMetricExporter>[0]);
}

/**
 * `console`: one compact JSON line per export on stdout, so it never breaks
 * a line-oriented log pipeline (logs go to stderr).
 */
class JsonLinesConsoleExporter implements PushMetricExporter {
  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    try {
      const line = {
        time: new Date().toISOString(),
        resource: metrics.resource.attributes,
        metrics: metrics.scopeMetrics.flatMap((sm) =>
          sm.metrics.map((m) => ({
            name: m.descriptor.name,
            type: DataPointType[m.dataPointType]?.toLowerCase(),
            unit: m.descriptor.unit || undefined,
            points: (m.dataPoints as Array<{ attributes: Attributes; value: unknown }>).map((p) => ({
              attributes: p.attributes,
              value: p.value,
            })),
          })),
        ),
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      resultCallback({ code: EXPORT_SUCCESS });
    } catch (err) {
      resultCallback({ code: EXPORT_FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }
  selectAggregationTemporality(_t: InstrumentType): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

interface PrometheusEndpoint {
  reader: IMetricReader;
  address(): { host: string; port: number } | undefined;
  close(): Promise<void>;
}

/**
 * The OTel Prometheus exporter as a pull reader, served by our own node:http
 * listener: the exporter's built-in server cannot listen on port 0 and would
 * report a busy port only through the OTel diag channel.
 */
async function startPrometheusEndpoint(
  where: { host: string; port: number },
  logger: MetricsLogger,
): Promise<PrometheusEndpoint> {
  const { PrometheusExporter, PrometheusSerializer } = await import("@opentelemetry/exporter-prometheus");
  const reader = new PrometheusExporter({ preventServerStart: true });
  const serializer = new PrometheusSerializer();
  let collectFailureLogged = 0;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    let pathname = "";
    try {
      pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    } catch {
      // fall through to 404
    }
    if (pathname !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(pathname === "/metrics" ? 405 : 404, { "content-type": "text/plain; charset=utf-8" });
      res.end(pathname === "/metrics" ? "method not allowed\n" : "not found\n");
      return;
    }
    reader.collect().then(
      ({ resourceMetrics }) => {
        const body = serializer.serialize(resourceMetrics);
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        const now = Date.now();
        if (now - collectFailureLogged > 60_000) {
          collectFailureLogged = now;
          logger.warn("metrics collection for /metrics failed", { error: describeError(err) });
        }
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("# metrics collection failed\n");
      },
    );
  };

  const server: Server = createServer(handler);
  let listening = false;
  await new Promise<void>((resolve) => {
    const onError = (err: NodeJS.ErrnoException) => {
      logger.warn("metrics: cannot serve /metrics; continuing without the Prometheus endpoint", {
        host: where.host,
        port: where.port,
        error: describeError(err),
      });
      resolve();
    };
    server.once("error", onError);
    try {
      server.listen({ host: where.host, port: where.port }, () => {
        server.off("error", onError);
        // Later errors (e.g. a client socket issue) must not crash the process.
        server.on("error", (err) => logger.debug("metrics listener error", { error: describeError(err) }));
        listening = true;
        resolve();
      });
    } catch (err) {
      onError(err as NodeJS.ErrnoException);
    }
  });
  server.unref();

  const address = (): { host: string; port: number } | undefined => {
    if (!listening) return undefined;
    const a = server.address() as AddressInfo | null;
    return a && typeof a === "object" ? { host: a.address, port: a.port } : undefined;
  };
  if (listening) {
    const a = address();
    logger.info("metrics: serving Prometheus /metrics", { host: a?.host, port: a?.port });
  }

  return {
    reader,
    address,
    close: () =>
      new Promise<void>((resolve) => {
        if (!listening) return resolve();
        listening = false;
        server.close(() => resolve());
        (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}
