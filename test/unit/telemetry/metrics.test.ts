import { afterEach, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  DEFAULT_FAILURE_PHASE,
  FAILURE_REASONS,
  failurePhaseFor,
  METRIC_NAMES,
  RECONNECT_LABELS,
  REJECT_REASONS,
} from "../../../src/telemetry/metric-contract.ts";
import { parseKeyValueList, resolveMetricsConfig } from "../../../src/telemetry/metric-env.ts";
import { createMetrics, type WorkerMetrics } from "../../../src/telemetry/metrics.ts";
import { memoryLogger } from "./support/logger.ts";
import { parsePrometheus, type PromSample } from "./support/otlp.ts";

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.();
});

async function promMetrics(extraEnv: Record<string, string> = {}, maxConcurrentTasks = 4) {
  const logger = memoryLogger();
  const m = await createMetrics({
    version: "9.9.9-test",
    workerId: "worker-under-test",
    backend: "kubernetes",
    maxConcurrentTasks,
    env: {
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: "0",
      ...extraEnv,
    },
    logger,
  });
  cleanup.push(() => m.shutdown());
  return { m, logger };
}

async function scrape(m: WorkerMetrics) {
  const addr = m.prometheusAddress;
  if (!addr) throw new Error("prometheus endpoint not listening");
  const res = await fetch(`http://127.0.0.1:${addr.port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  const text = await res.text();
  return { text, ...parsePrometheus(text) };
}

async function freePort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function value(samples: PromSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hit = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hit.length > 1 && Object.keys(labels).length > 0) {
    // ambiguous selector: the test must be more specific
    throw new Error(`${hit.length} samples match ${name} ${JSON.stringify(labels)}`);
  }
  return hit[0]?.value;
}

describe("prometheus exporter", () => {
  test("exposes exactly the contract names with the right types", async () => {
    const { m } = await promMetrics();
    m.taskStarted();
    m.taskFinished({ result: "succeeded", durationSeconds: 1 });
    const { types, samples } = await scrape(m);
    const ozTypes = Object.fromEntries(Object.entries(types).filter(([n]) => n.startsWith("oz_worker_")));
    expect(ozTypes).toEqual({
      oz_worker_connected: "gauge",
      oz_worker_tasks_active: "gauge",
      oz_worker_tasks_max_concurrent: "gauge",
      oz_worker_tasks_rejected_total: "counter",
      oz_worker_tasks_completed_total: "counter",
      oz_worker_task_duration_seconds: "histogram",
      oz_worker_task_failures_total: "counter",
      oz_worker_websocket_reconnects_total: "counter",
      oz_worker_info: "gauge",
    });
    const contract: string[] = Object.values(METRIC_NAMES);
    expect(Object.keys(ozTypes).sort()).toEqual(contract.sort());
    // Every sample belongs to a contract family (no double or unit suffixes).
    const families = new Set(Object.keys(types));
    for (const s of samples) {
      const family = s.name.replace(/_(bucket|sum|count)$/, "");
      expect(families.has(s.name) || families.has(family)).toBe(true);
    }
    expect(families).toEqual(new Set([...contract, "target_info"]));
  });

  test("primes known label sets at start, all zero; gauges hold their start values", async () => {
    const { m } = await promMetrics({}, 7);
    const { samples } = await scrape(m);

    expect(value(samples, "oz_worker_connected")).toBe(0);
    expect(value(samples, "oz_worker_tasks_active")).toBe(0);
    expect(value(samples, "oz_worker_tasks_max_concurrent")).toBe(7);
    expect(value(samples, "oz_worker_info", { version: "9.9.9-test", backend: "kubernetes", worker_id: "worker-under-test" })).toBe(1);

    for (const result of ["succeeded", "failed", "cancelled"]) {
      expect(value(samples, "oz_worker_tasks_completed_total", { result })).toBe(0);
    }
    for (const reason of REJECT_REASONS) {
      expect(value(samples, "oz_worker_tasks_rejected_total", { reason })).toBe(0);
    }
    for (const reason of RECONNECT_LABELS) {
      expect(value(samples, "oz_worker_websocket_reconnects_total", { reason })).toBe(0);
    }
    const failures = samples.filter((s) => s.name === "oz_worker_task_failures_total");
    expect(failures).toHaveLength(FAILURE_REASONS.length);
    for (const reason of FAILURE_REASONS) {
      expect(value(samples, "oz_worker_task_failures_total", { phase: DEFAULT_FAILURE_PHASE[reason], reason })).toBe(0);
    }
    // The histogram is not primed (a fake observation would skew quantiles).
    expect(samples.some((s) => s.name.startsWith("oz_worker_task_duration_seconds"))).toBe(false);
  });

  test("resource attributes appear in target_info", async () => {
    const { m } = await promMetrics({ OTEL_RESOURCE_ATTRIBUTES: "k8s.pod.name=pod-1,service.name=should-be-overridden" });
    const { samples } = await scrape(m);
    const info = samples.find((s) => s.name === "target_info");
    expect(info?.labels).toMatchObject({
      service_name: "oz-agent-worker",
      service_version: "9.9.9-test",
      worker_id: "worker-under-test",
      worker_backend: "kubernetes",
      k8s_pod_name: "pod-1",
    });
  });

  test("values move with the facade calls; histogram counts tasks", async () => {
    const { m } = await promMetrics();
    m.setConnected(true);
    m.taskStarted();
    m.taskStarted();
    m.taskStarted();
    m.taskStarted();
    m.taskFinished({ result: "succeeded", durationSeconds: 95 });
    m.taskFinished({ result: "failed", durationSeconds: 12, failure: { phase: "run", reason: "container_oom" } });
    m.taskFinished({ result: "failed", durationSeconds: 3, failure: { phase: "create", reason: "job_create" } });
    m.taskFinished({ result: "cancelled", durationSeconds: 4000 });
    m.taskStarted();
    m.taskRejected("at_capacity");
    m.taskRejected("at_capacity");
    m.taskRejected("shutting_down");
    m.websocketReconnect("dial_failed");
    m.websocketReconnect("keepalive_timeout");

    const { samples } = await scrape(m);
    expect(value(samples, "oz_worker_connected")).toBe(1);
    expect(value(samples, "oz_worker_tasks_active")).toBe(1);
    expect(value(samples, "oz_worker_tasks_completed_total", { result: "succeeded" })).toBe(1);
    expect(value(samples, "oz_worker_tasks_completed_total", { result: "failed" })).toBe(2);
    expect(value(samples, "oz_worker_tasks_completed_total", { result: "cancelled" })).toBe(1);
    expect(value(samples, "oz_worker_task_failures_total", { phase: "run", reason: "container_oom" })).toBe(1);
    expect(value(samples, "oz_worker_task_failures_total", { phase: "create", reason: "job_create" })).toBe(1);
    expect(value(samples, "oz_worker_task_failures_total", { phase: "run", reason: "container_exit" })).toBe(0);
    expect(value(samples, "oz_worker_tasks_rejected_total", { reason: "at_capacity" })).toBe(2);
    expect(value(samples, "oz_worker_tasks_rejected_total", { reason: "shutting_down" })).toBe(1);
    expect(value(samples, "oz_worker_websocket_reconnects_total", { reason: "dial_failed" })).toBe(1);
    expect(value(samples, "oz_worker_websocket_reconnects_total", { reason: "keepalive_timeout" })).toBe(1);

    expect(value(samples, "oz_worker_task_duration_seconds_count", { result: "succeeded" })).toBe(1);
    expect(value(samples, "oz_worker_task_duration_seconds_count", { result: "failed" })).toBe(2);
    expect(value(samples, "oz_worker_task_duration_seconds_count", { result: "cancelled" })).toBe(1);
    expect(value(samples, "oz_worker_task_duration_seconds_sum", { result: "failed" })).toBe(15);
    expect(value(samples, "oz_worker_task_duration_seconds_bucket", { result: "succeeded", le: "60" })).toBe(0);
    expect(value(samples, "oz_worker_task_duration_seconds_bucket", { result: "succeeded", le: "120" })).toBe(1);
    expect(value(samples, "oz_worker_task_duration_seconds_bucket", { result: "cancelled", le: "3600" })).toBe(0);
    expect(value(samples, "oz_worker_task_duration_seconds_bucket", { result: "cancelled", le: "5400" })).toBe(1);
    expect(value(samples, "oz_worker_task_duration_seconds_bucket", { result: "cancelled", le: "+Inf" })).toBe(1);

    m.setConnected(false);
    expect(value((await scrape(m)).samples, "oz_worker_connected")).toBe(0);
  });

  test("unknown label values collapse to unknown; cardinality stays bounded", async () => {
    const { m } = await promMetrics();
    const before = (await scrape(m)).samples.length;
    for (let i = 0; i < 50; i++) {
      m.taskStarted();
      m.taskFinished({ result: "failed", durationSeconds: 1, failure: { phase: `phase-${i}`, reason: `weird-${i}` } });
      m.taskRejected(`reason-${i}`);
      m.websocketReconnect(`reason-${i}`);
    }
    m.taskFinished({ result: "failed", durationSeconds: 1 }); // no failure info
    m.taskFinished({ result: "failed", durationSeconds: 1, failure: { reason: "pod_watch" } }); // phase defaulted
    const { samples } = await scrape(m);
    expect(value(samples, "oz_worker_task_failures_total", { phase: "unknown", reason: "unknown" })).toBe(51);
    expect(value(samples, "oz_worker_task_failures_total", { phase: "watch", reason: "pod_watch" })).toBe(1);
    expect(value(samples, "oz_worker_tasks_rejected_total", { reason: "unknown" })).toBe(50);
    expect(value(samples, "oz_worker_websocket_reconnects_total", { reason: "unknown" })).toBe(50);
    // Only the (fixed-size) duration histogram series were added.
    const nonHistogram = samples.filter((s) => !s.name.startsWith("oz_worker_task_duration_seconds"));
    expect(nonHistogram.length).toBe(before);
    expect(samples.some((s) => Object.values(s.labels).some((v) => v.startsWith("weird-") || v.startsWith("reason-")))).toBe(false);
  });

  test("active never goes negative", async () => {
    const { m } = await promMetrics();
    m.taskFinished({ result: "succeeded", durationSeconds: 1 });
    m.taskFinished({ result: "succeeded", durationSeconds: Number.NaN });
    expect(value((await scrape(m)).samples, "oz_worker_tasks_active")).toBe(0);
    expect(value((await scrape(m)).samples, "oz_worker_tasks_completed_total", { result: "succeeded" })).toBe(2);
  });

  test("only /metrics is served", async () => {
    const { m } = await promMetrics();
    const res = await fetch(`http://127.0.0.1:${m.prometheusAddress?.port}/other`);
    expect(res.status).toBe(404);
    await res.text();
  });

  test("default listen address is localhost:9464", () => {
    const cfg = resolveMetricsConfig({ OTEL_METRICS_EXPORTER: "prometheus" }, memoryLogger());
    expect(cfg.prometheus).toEqual({ host: "localhost", port: 9464 });
  });

  test("a busy port is logged, does not throw, and the facade still works", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => blocker.close(r)));
    const port = (blocker.address() as AddressInfo).port;
    const { m, logger } = await promMetrics({ OTEL_EXPORTER_PROMETHEUS_PORT: String(port) });
    expect(m.prometheusAddress).toBeUndefined();
    expect(logger.lines.some((l) => l.level === "warn" && /cannot serve \/metrics/.test(l.msg))).toBe(true);
    m.taskStarted();
    m.taskFinished({ result: "succeeded", durationSeconds: 1 });
    await m.shutdown();
  });

  test("shutdown stops the listener and is idempotent", async () => {
    const { m } = await promMetrics();
    const port = m.prometheusAddress?.port;
    await m.shutdown();
    await m.shutdown();
    expect(m.prometheusAddress).toBeUndefined();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
    m.taskStarted(); // no-op after shutdown, no throw
  });
});

describe("exporter selection", () => {
  test("none creates no listener and no-op facade", async () => {
    const port = await freePort();
    const logger = memoryLogger();
    const m = await createMetrics({
      version: "1",
      workerId: "w",
      maxConcurrentTasks: 0,
      env: { OTEL_METRICS_EXPORTER: "none", OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1", OTEL_EXPORTER_PROMETHEUS_PORT: String(port) },
      logger,
    });
    expect(m.exporters).toEqual(["none"]);
    expect(m.prometheusAddress).toBeUndefined();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
    m.taskStarted();
    m.taskFinished({ result: "failed", durationSeconds: 1, failure: { phase: "run", reason: "x" } });
    await m.flush();
    await m.shutdown();
  });

  test("unknown value warns and falls back to none", async () => {
    const logger = memoryLogger();
    const m = await createMetrics({
      version: "1",
      workerId: "w",
      maxConcurrentTasks: 0,
      env: { OTEL_METRICS_EXPORTER: "zipkin" },
      logger,
    });
    expect(m.exporters).toEqual(["none"]);
    expect(logger.lines.some((l) => l.level === "warn" && l.fields.value === "zipkin")).toBe(true);
  });

  test("unset means otlp with http/protobuf to localhost:4318", () => {
    const cfg = resolveMetricsConfig({}, memoryLogger());
    expect(cfg.exporters).toEqual(["otlp"]);
    expect(cfg.otlp.protocol).toBe("http/protobuf");
    expect(cfg.otlp.url).toBe("http://localhost:4318/v1/metrics");
    expect(cfg.exportIntervalMillis).toBe(60_000);
  });

  test("OTLP variables: signal-specific wins, base endpoint gets /v1/metrics, headers merge", () => {
    const logger = memoryLogger();
    const base = resolveMetricsConfig(
      {
        OTEL_METRICS_EXPORTER: "otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20abc,x-a=1",
        OTEL_EXPORTER_OTLP_METRICS_HEADERS: "x-a=2",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
        OTEL_METRIC_EXPORT_INTERVAL: "1000",
        OTEL_METRIC_EXPORT_TIMEOUT: "5000",
      },
      logger,
    );
    expect(base.otlp.url).toBe("http://collector:4318/v1/metrics");
    expect(base.otlp.headers).toEqual({ authorization: "Bearer abc", "x-a": "2" });
    expect(base.otlp.protocol).toBe("http/json");
    expect(base.otlp.timeoutMillis).toBe(2500);
    expect(base.exportIntervalMillis).toBe(1000);
    expect(base.exportTimeoutMillis).toBe(1000); // clamped to the interval

    const specific = resolveMetricsConfig(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "https://other:4318/custom/path",
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: "grpc",
      },
      logger,
    );
    expect(specific.otlp.url).toBe("https://other:4318/custom/path");
    expect(specific.otlp.protocol).toBe("http/protobuf");
    expect(logger.lines.some((l) => l.level === "warn" && l.fields.value === "grpc")).toBe(true);
    // Header values (often credentials) are never logged.
    expect(JSON.stringify(logger.lines)).not.toContain("Bearer abc");
  });

  test("OTEL_SDK_DISABLED=true disables export", () => {
    expect(resolveMetricsConfig({ OTEL_SDK_DISABLED: "true", OTEL_METRICS_EXPORTER: "prometheus" }, memoryLogger()).exporters).toEqual([
      "none",
    ]);
  });

  test("parseKeyValueList", () => {
    expect(parseKeyValueList("a=1, b = x%2Cy ,bad,=v,c=")).toEqual({ a: "1", b: "x,y", c: "" });
  });

  test("the failure reason label set is the protocol catalog of src/oz", async () => {
    const core = await import("../../../src/oz/failure-reasons.ts");
    expect([...FAILURE_REASONS].sort()).toEqual([...core.FAILURE_REASONS].sort());
  });

  test("failurePhaseFor maps catalog reasons and unknowns", () => {
    expect(failurePhaseFor("job_create")).toBe("create");
    expect(failurePhaseFor("pod_watch")).toBe("watch");
    expect(failurePhaseFor("cleanup")).toBe("cleanup");
    expect(failurePhaseFor("container_oom")).toBe("run");
    expect(failurePhaseFor("nope")).toBe("unknown");
  });
});
