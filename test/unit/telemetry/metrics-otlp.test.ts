import { afterEach, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { FAILURE_REASONS, METRIC_NAMES } from "../../../src/telemetry/metric-contract.ts";
import { createMetrics, type WorkerMetrics } from "../../../src/telemetry/metrics.ts";
import { memoryLogger } from "./support/logger.ts";
import { startOtlpReceiver, type DecodedRequest, type OtlpReceiver, type ReceivedRequest } from "./support/otlp.ts";

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.();
});

const ALL_NAMES = Object.values(METRIC_NAMES).sort();

async function otlpMetrics(env: Record<string, string>, shutdownTimeoutMs?: number) {
  const logger = memoryLogger();
  const m = await createMetrics({
    version: "1.0.0-otlp",
    workerId: "otlp-worker",
    maxConcurrentTasks: 2,
    env: { OTEL_METRICS_EXPORTER: "otlp", OTEL_METRIC_EXPORT_INTERVAL: "60000", ...env },
    logger,
    ...(shutdownTimeoutMs === undefined ? {} : { shutdownTimeoutMs }),
  });
  cleanup.push(() => m.shutdown());
  return { m, logger };
}

async function receiver(): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver();
  cleanup.push(() => r.close());
  return r;
}

function exercise(m: WorkerMetrics): void {
  m.setConnected(true);
  m.taskStarted();
  m.taskStarted();
  m.taskFinished({ result: "succeeded", durationSeconds: 30 });
  m.taskFinished({ result: "failed", durationSeconds: 5, failure: { phase: "run", reason: "image_pull" } });
  m.taskRejected("at_capacity");
  m.websocketReconnect("remote_close");
}

const hasDuration = (r: ReceivedRequest) => r.decoded.metrics.some((x) => x.name === METRIC_NAMES.taskDuration);

function point(d: DecodedRequest, name: string, attrs: Record<string, string> = {}): number | undefined {
  const metric = d.metrics.find((x) => x.name === name);
  return metric?.points.find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v))?.value;
}

function assertPayload(d: DecodedRequest): void {
  expect(d.metrics.map((x) => x.name).sort()).toEqual(ALL_NAMES);
  expect(d.resource).toMatchObject({
    "service.name": "oz-agent-worker",
    "service.version": "1.0.0-otlp",
    "worker.id": "otlp-worker",
    "worker.backend": "kubernetes",
  });
  expect(d.scopes).toContain("github.com/warpdotdev/oz-agent-worker");

  const byName = Object.fromEntries(d.metrics.map((x) => [x.name, x]));
  expect(byName[METRIC_NAMES.connected]?.type).toBe("gauge");
  expect(byName[METRIC_NAMES.info]?.type).toBe("gauge");
  expect(byName[METRIC_NAMES.tasksMaxConcurrent]?.type).toBe("gauge");
  expect(byName[METRIC_NAMES.tasksActive]).toMatchObject({ type: "sum", monotonic: false });
  expect(byName[METRIC_NAMES.tasksCompleted]).toMatchObject({ type: "sum", monotonic: true });
  expect(byName[METRIC_NAMES.taskDuration]).toMatchObject({ type: "histogram", unit: "s" });

  expect(point(d, METRIC_NAMES.connected)).toBe(1);
  expect(point(d, METRIC_NAMES.tasksActive)).toBe(0);
  expect(point(d, METRIC_NAMES.tasksMaxConcurrent)).toBe(2);
  expect(point(d, METRIC_NAMES.info, { version: "1.0.0-otlp", backend: "kubernetes", worker_id: "otlp-worker" })).toBe(1);
  expect(point(d, METRIC_NAMES.tasksCompleted, { result: "succeeded" })).toBe(1);
  expect(point(d, METRIC_NAMES.tasksCompleted, { result: "failed" })).toBe(1);
  expect(point(d, METRIC_NAMES.tasksCompleted, { result: "cancelled" })).toBe(0);
  expect(point(d, METRIC_NAMES.taskFailures, { phase: "run", reason: "image_pull" })).toBe(1);
  expect(byName[METRIC_NAMES.taskFailures]?.points).toHaveLength(FAILURE_REASONS.length);
  expect(point(d, METRIC_NAMES.tasksRejected, { reason: "at_capacity" })).toBe(1);
  expect(point(d, METRIC_NAMES.tasksRejected, { reason: "shutting_down" })).toBe(0);
  expect(point(d, METRIC_NAMES.websocketReconnects, { reason: "remote_close" })).toBe(1);
  expect(point(d, METRIC_NAMES.taskDuration, { result: "succeeded" })).toBe(1); // histogram count
  expect(point(d, METRIC_NAMES.taskDuration, { result: "failed" })).toBe(1);
}

describe("OTLP push", () => {
  test("http/json: the receiver decodes the JSON payload and finds every series", async () => {
    const r = await receiver();
    const { m } = await otlpMetrics({
      OTEL_EXPORTER_OTLP_ENDPOINT: r.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_HEADERS: "x-oz-test=hello",
    });
    exercise(m);
    await m.flush();
    const req = await r.waitFor(hasDuration);
    expect(req.path).toBe("/v1/metrics");
    expect(req.contentType).toContain("application/json");
    expect(req.headers["x-oz-test"]).toBe("hello");
    assertPayload(req.decoded);
  });

  test("http/protobuf (default protocol): the receiver decodes the protobuf payload", async () => {
    const r = await receiver();
    const { m } = await otlpMetrics({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${r.url}/custom/metrics` });
    exercise(m);
    await m.flush();
    const req = await r.waitFor(hasDuration);
    expect(req.path).toBe("/custom/metrics");
    expect(req.contentType).toContain("application/x-protobuf");
    assertPayload(req.decoded);
  });

  test("gzip compression is honoured", async () => {
    const r = await receiver();
    const { m } = await otlpMetrics({ OTEL_EXPORTER_OTLP_ENDPOINT: r.url, OTEL_EXPORTER_OTLP_COMPRESSION: "gzip" });
    exercise(m);
    await m.flush();
    const req = await r.waitFor(hasDuration);
    expect(req.headers["content-encoding"]).toBe("gzip");
    assertPayload(req.decoded);
  });

  test("pushes on OTEL_METRIC_EXPORT_INTERVAL without an explicit flush; primed series arrive first", async () => {
    const r = await receiver();
    await otlpMetrics({ OTEL_EXPORTER_OTLP_ENDPOINT: r.url, OTEL_METRIC_EXPORT_INTERVAL: "150" });
    const req = await r.waitFor(() => true, 5_000);
    const names = req.decoded.metrics.map((x) => x.name);
    expect(names).toContain(METRIC_NAMES.tasksCompleted);
    expect(names).not.toContain(METRIC_NAMES.taskDuration);
    expect(point(req.decoded, METRIC_NAMES.tasksCompleted, { result: "succeeded" })).toBe(0);
  });
});

describe("failing exporter", () => {
  async function closedPort(): Promise<number> {
    const s: Server = createServer();
    await new Promise<void>((res) => s.listen(0, "127.0.0.1", res));
    const port = (s.address() as AddressInfo).port;
    await new Promise((res) => s.close(res));
    return port;
  }

  test("collector refusing connections: nothing throws, the failure is logged once per interval", async () => {
    const port = await closedPort();
    const { m, logger } = await otlpMetrics({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: "1000",
    });
    exercise(m);
    await m.flush();
    await m.flush();
    await m.flush();
    exercise(m);
    const failures = logger.lines.filter((l) => l.level === "warn" && /export failed/.test(l.msg));
    expect(failures).toHaveLength(1);
    expect(failures[0]?.fields.exporter).toBe("otlp");
    const start = Date.now();
    await m.shutdown();
    expect(Date.now() - start).toBeLessThan(6_000);
  });

  test("explicit otlp: a persisting failure is warned again after each interval, never more often", async () => {
    const port = await closedPort();
    const { m, logger } = await otlpMetrics({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: "100",
      OTEL_METRIC_EXPORT_INTERVAL: "400",
    });
    await m.flush();
    await m.flush();
    await Bun.sleep(450);
    await m.flush();
    const warns = logger.lines.filter((l) => l.level === "warn" && /export failed/.test(l.msg));
    expect(warns.length).toBeGreaterThanOrEqual(2);
    expect(warns.length).toBeLessThanOrEqual(3); // periodic exports may add at most one more
  });

  test("unset OTEL_METRICS_EXPORTER (otlp by default): one warning with a hint, then debug only", async () => {
    const port = await closedPort();
    const logger = memoryLogger();
    const m = await createMetrics({
      version: "1",
      workerId: "w",
      maxConcurrentTasks: 0,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: "100", OTEL_METRIC_EXPORT_INTERVAL: "150" },
      logger,
      shutdownTimeoutMs: 500,
    });
    cleanup.push(() => m.shutdown());
    expect(m.exporters).toEqual(["otlp"]);
    await m.flush();
    await Bun.sleep(200);
    await m.flush();
    await Bun.sleep(200);
    await m.flush();
    const failures = logger.lines.filter((l) => /export failed/.test(l.msg));
    expect(failures.filter((l) => l.level === "warn")).toHaveLength(1);
    expect(failures[0]?.msg).toContain("OTEL_METRICS_EXPORTER=prometheus|none");
    expect(failures.filter((l) => l.level === "debug").length).toBeGreaterThanOrEqual(1);
  });

  test("collector answering 500/never answering: flush and shutdown stay bounded", async () => {
    const hung: Server = createServer(() => {
      /* never respond */
    });
    await new Promise<void>((res) => hung.listen(0, "127.0.0.1", res));
    cleanup.push(
      () =>
        new Promise<void>((res) => {
          hung.close(() => res());
          hung.closeAllConnections();
        }),
    );
    const port = (hung.address() as AddressInfo).port;
    const { m } = await otlpMetrics(
      { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: "30000" },
      300,
    );
    exercise(m);
    const start = Date.now();
    await m.flush();
    await m.shutdown();
    expect(Date.now() - start).toBeLessThan(2_000);
  });

  test("an invalid endpoint falls back to the default without throwing", async () => {
    const { m, logger } = await otlpMetrics({ OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" }, 300);
    expect(m.exporters).toEqual(["otlp"]);
    expect(logger.lines.some((l) => l.level === "warn" && /OTEL_EXPORTER_OTLP_ENDPOINT/.test(l.msg))).toBe(true);
  });
});
