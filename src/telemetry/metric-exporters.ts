/**
 * The metric exporters: OTLP (push; its package is loaded only when chosen),
 * JSON-lines console (push) and Prometheus (pull, served on our own
 * listener; its package is loaded only when chosen). Push exporters are
 * wrapped so that their failures never reach the worker and are logged at
 * most once per export interval.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Attributes } from "@opentelemetry/api";
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  type IMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import type { Logger } from "./log.ts";
import type { OtlpConfig } from "./metric-env.ts";
import { describeError } from "../util/errors.ts";

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
export class GuardedExporter implements PushMetricExporter {
  #lastLogged = Number.NEGATIVE_INFINITY;
  #suppressed = 0;
  #failing = false;
  #warned = false;

  private readonly inner: PushMetricExporter;
  private readonly name: string;
  private readonly intervalMs: number;
  private readonly logger: Logger;
  private readonly implicit: boolean;
  constructor(
    inner: PushMetricExporter,
    name: string,
    intervalMs: number,
    logger: Logger,
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

export async function createOtlpExporter(c: OtlpConfig): Promise<PushMetricExporter> {
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
export class JsonLinesConsoleExporter implements PushMetricExporter {
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

export interface PrometheusEndpoint {
  reader: IMetricReader;
  address(): { host: string; port: number } | undefined;
  close(): Promise<void>;
}

/**
 * The OTel Prometheus exporter as a pull reader, served by our own node:http
 * listener: the exporter's built-in server cannot listen on port 0 and would
 * report a busy port only through the OTel diag channel.
 */
export async function startPrometheusEndpoint(
  where: { host: string; port: number },
  logger: Logger,
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
