// Metrics, health endpoints and logs of `oz-worker run`, end to end: the real worker against
// the sandbox cluster and the local dispatch server.
//
//  - Prometheus: /metrics is scraped as tasks succeed, fail (phase and reason labels), are
//    rejected at capacity and are cancelled; the duration histogram counts each result; the
//    primed series are there before any task; oz_worker_connected follows the connection.
//  - /readyz turns 503 (naming the oz_connection check) while the dispatch server is down and
//    200 again after the reconnect; /healthz answers 200 throughout.
//  - Secrets: the API key, a task's env_vars and the worker's `-e` value are marker strings; no
//    log line (debug included), no scrape and no OTLP payload carries one, although failed task
//    containers echo them into the worker's log (they must come out redacted).
//  - Every log line about a task carries its task_id and execution_id.
//  - OTLP: a local OTLP/HTTP receiver decodes the worker's pushes and finds the same series.
//  - `run --log-format pretty|json` (json by default off a terminal) and `--log-level`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { type DispatchServer, type TaskRecord, startDispatchServer, waitFor } from "../support/dispatch.ts";
import {
  type LogLine,
  type WorkerProcess,
  type WorkerSandbox,
  openWorkerSandbox,
  startWorker,
  stopWorkers,
  workerCommand,
} from "../support/worker.ts";
import {
  type DecodedMetric,
  type DecodedRequest,
  type OtlpReceiver,
  type PromSample,
  parsePrometheus,
  startOtlpReceiver,
} from "../unit/telemetry/support/otlp.ts";

const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
/** Marker secrets: the API key the dispatch server (and so the worker) uses, and task env values. */
const API_KEY_MARKER = `apikeymarker${crypto.randomUUID().replaceAll("-", "")}`;
const ENV_MARKER = `envmarker${crypto.randomUUID().replaceAll("-", "")}`;
const ENV_MARKER_2 = `envsecondmarker${crypto.randomUUID().replaceAll("-", "")}`;
/** A worker-level `-e KEY=VALUE` (it goes into every task container). */
const FLAG_ENV_MARKER = `flagenvmarker${crypto.randomUUID().replaceAll("-", "")}`;
const MARKERS = [API_KEY_MARKER, ENV_MARKER, ENV_MARKER_2, FLAG_ENV_MARKER];

const TASK_TIMEOUT_MS = 45_000;

// ---------------------------------------------------------------------------
// Metrics helpers

const labelsMatch = (have: Record<string, string | number | boolean>, want: Record<string, string>) =>
  Object.entries(want).every(([k, v]) => String(have[k]) === v);

/** The value of the one sample `name` whose labels include `labels`; undefined when absent. */
function sample(samples: PromSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && labelsMatch(s.labels, labels));
  if (hits.length > 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${hits.length} series`);
  return hits[0]?.value;
}

/** The sum over every series of `name`. */
const total = (samples: PromSample[], name: string) =>
  samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0);

class Scraper {
  last = "";
  readonly url: string;
  constructor(url: string) {
    this.url = url;
  }

  async scrape(): Promise<PromSample[]> {
    const res = await fetch(this.url);
    expect(res.status).toBe(200);
    this.last = await res.text();
    return parsePrometheus(this.last).samples;
  }

  /** Scrapes until `check` returns a value (metrics move after the dispatch server sees the outcome). */
  until<T>(what: string, check: (s: PromSample[]) => T | undefined, timeoutMs = 15_000): Promise<T> {
    return waitFor(what, async () => check(await this.scrape()), {
      timeoutMs,
      intervalMs: 100,
      detail: () => `last scrape:\n${this.last.split("\n").filter((l) => l.startsWith("oz_worker")).join("\n")}`,
    });
  }
}

/** One OTLP metric's point whose attributes include `labels`. */
function otlpPoint(req: DecodedRequest, name: string, labels: Record<string, string> = {}): number | undefined {
  const metric: DecodedMetric | undefined = req.metrics.find((m) => m.name === name);
  return metric?.points.find((p) => labelsMatch(p.attributes, labels))?.value;
}

// ---------------------------------------------------------------------------
// Health helpers

interface Probe {
  status: number;
  body: { status: string; checks?: Record<string, { ok: boolean; detail?: string }>; failing?: string[] };
}

async function probe(base: string, path: "/healthz" | "/readyz"): Promise<Probe> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as Probe["body"] };
}

/** Polls /healthz in the background and records every answer that is not a 200. */
function watchLiveness(base: string): { stop(): Promise<{ polls: number; bad: string[] }> } {
  let running = true;
  let polls = 0;
  const bad: string[] = [];
  const loop = (async () => {
    while (running) {
      try {
        const r = await probe(base, "/healthz");
        if (r.status !== 200 || r.body.status !== "ok") bad.push(`${r.status} ${JSON.stringify(r.body)}`);
      } catch (err) {
        bad.push(`request failed: ${(err as Error).message}`);
      }
      polls++;
      await Bun.sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { polls, bad };
    },
  };
}

// ---------------------------------------------------------------------------
// Log helpers

/** Every line that mentions the task: by field, or anywhere in its text. */
function linesAbout(worker: WorkerProcess, task: TaskRecord): LogLine[] {
  return worker.lines.filter((l) => l.task_id === task.task_id || JSON.stringify(l).includes(task.task_id));
}

function expectNoMarkers(where: string, text: string): void {
  for (const marker of MARKERS) {
    if (text.includes(marker)) {
      const line = text.split("\n").find((l) => l.includes(marker));
      throw new Error(`${where} contains a secret marker: ${line}`);
    }
  }
}

/** Waits for a task's state; on a timeout the error carries the worker's log tail and the namespace's objects. */
async function settle(worker: WorkerProcess, namespace: string, taskId: string, state: TaskRecord["state"]): Promise<TaskRecord> {
  try {
    return await dispatch.waitForState(taskId, state, { timeoutMs: TASK_TIMEOUT_MS });
  } catch (err) {
    const jobs = await cluster.getJson<{ items: { metadata: { name: string }; status?: unknown }[] }>(
      `/apis/batch/v1/namespaces/${namespace}/jobs`,
    ).catch((e: unknown) => String(e));
    const pods = await cluster.getJson<{ items: { metadata: { name: string }; status?: { phase?: string } }[] }>(
      `/api/v1/namespaces/${namespace}/pods`,
    ).catch((e: unknown) => String(e));
    const summary = (list: unknown) =>
      typeof list === "string" ? list : JSON.stringify((list as { items?: unknown[] } | undefined)?.items ?? [], null, 1).slice(0, 4000);
    throw new Error(
      `${(err as Error).message}\n--- Jobs in ${namespace}:\n${summary(jobs)}\n--- Pods:\n${summary(pods)}\n--- worker log:\n${worker.tail(60)}`,
    );
  }
}

// ---------------------------------------------------------------------------

let cluster: WorkerSandbox;
let dispatch: DispatchServer;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  cluster = await openWorkerSandbox();
  dispatch = await startDispatchServer({ apiKey: API_KEY_MARKER });
}, 40 * 60_000);

afterAll(async () => {
  await stopWorkers(workers);
  await dispatch?.stop();
  await cluster?.cleanup();
}, 60_000);

describe("telemetry: Prometheus, health endpoints and logs", () => {
  const workerId = `telemetry-prom-${RUN}`;
  let worker: WorkerProcess;
  let metrics: Scraper;
  let health: string;
  let namespace: string;
  const tasks: TaskRecord[] = [];

  async function runTask(body: Record<string, unknown>, state: TaskRecord["state"]): Promise<TaskRecord> {
    const created = await dispatch.createTask({ worker_id: workerId, ...body });
    tasks.push(created);
    return settle(worker, namespace, created.task_id, state);
  }

  beforeAll(async () => {
    // The worker runs with exactly the permissions it declares (the chart's Role).
    namespace = await cluster.workerNamespace("telemetry-prom");
    worker = await startWorker({
      workerId,
      kubeconfig: cluster.kubeconfig(namespace),
      namespace,
      dispatch,
      config: { max_concurrent_tasks: 1 },
      // Inline env, so the simulated container sees SANDBOX_LOG and echoes it into its log.
      kubernetes: { inline_task_env: true },
      env: {
        OTEL_METRICS_EXPORTER: "prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT: "0",
      },
    });
    workers.push(worker);
    const listening = await worker.waitForLog("the /metrics listener", (l) => l.msg === "metrics: serving Prometheus /metrics");
    metrics = new Scraper(`http://${String(listening.host)}:${Number(listening.port)}/metrics`);
    health = await worker.healthUrl();
  }, 60_000);

  test("the known series are primed before any task", async () => {
    const s = await metrics.scrape();
    const info = s.filter((x) => x.name === "oz_worker_info");
    expect(info).toHaveLength(1);
    expect(info[0]?.value).toBe(1);
    expect(info[0]?.labels).toMatchObject({ backend: "kubernetes", worker_id: workerId });
    expect(info[0]?.labels.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(sample(s, "oz_worker_connected")).toBe(1);
    expect(sample(s, "oz_worker_tasks_active")).toBe(0);
    expect(sample(s, "oz_worker_tasks_max_concurrent")).toBe(1);
    for (const result of ["succeeded", "failed", "cancelled"]) {
      expect(sample(s, "oz_worker_tasks_completed_total", { result })).toBe(0);
    }
    for (const reason of ["at_capacity", "shutting_down", "not_ready", "invalid_assignment", "unknown"]) {
      expect(sample(s, "oz_worker_tasks_rejected_total", { reason })).toBe(0);
    }
    for (const reason of ["dial_failed", "remote_close", "keepalive_timeout", "read_error", "write_error", "unknown"]) {
      expect(sample(s, "oz_worker_websocket_reconnects_total", { reason })).toBe(0);
    }
    expect(sample(s, "oz_worker_task_failures_total", { phase: "run", reason: "container_exit" })).toBe(0);
    expect(sample(s, "oz_worker_task_failures_total", { phase: "create", reason: "job_create" })).toBe(0);
    expect(s.filter((x) => x.name === "oz_worker_task_failures_total").length).toBe(26);
    expect(total(s, "oz_worker_task_failures_total")).toBe(0);
    // The histogram is not primed: no observation until a task ends.
    expect(s.some((x) => x.name.startsWith("oz_worker_task_duration_seconds"))).toBe(false);
  });

  test("a succeeded task moves the completed counter and the histogram", async () => {
    await runTask({ docker_image: "busybox:1.36" }, "succeeded");
    const s = await metrics.until("completed{succeeded} = 1", (s) =>
      sample(s, "oz_worker_tasks_completed_total", { result: "succeeded" }) === 1 ? s : undefined,
    );
    expect(sample(s, "oz_worker_task_duration_seconds_count", { result: "succeeded" })).toBe(1);
    expect(sample(s, "oz_worker_task_duration_seconds_sum", { result: "succeeded" })).toBeGreaterThan(0);
    // The observation lands in a bucket of the documented layout (1, 5, 10, ... seconds).
    expect(sample(s, "oz_worker_task_duration_seconds_bucket", { result: "succeeded", le: "+Inf" })).toBe(1);
    expect(sample(s, "oz_worker_task_duration_seconds_bucket", { result: "succeeded", le: "86400" })).toBe(1);
    expect(sample(s, "oz_worker_tasks_active")).toBe(0);
    expect(total(s, "oz_worker_task_failures_total")).toBe(0);
  }, 60_000);

  test("a failed task is counted with its phase and reason", async () => {
    const failed = await runTask(
      { docker_image: "x:exit-3", env_vars: { SANDBOX_LOG: ENV_MARKER, MY_TOKEN: ENV_MARKER_2 } },
      "failed",
    );
    expect(failed.failure_reason).toBe("container_exit");
    expect(failed.exit_code).toBe(3);
    const s = await metrics.until("failures{run,container_exit} = 1", (s) =>
      sample(s, "oz_worker_task_failures_total", { phase: "run", reason: "container_exit" }) === 1 &&
      sample(s, "oz_worker_tasks_active") === 0
        ? s
        : undefined,
    );
    expect(total(s, "oz_worker_task_failures_total")).toBe(1);
    expect(sample(s, "oz_worker_tasks_completed_total", { result: "failed" })).toBe(1);
    expect(sample(s, "oz_worker_task_duration_seconds_count", { result: "failed" })).toBe(1);
    expect(sample(s, "oz_worker_tasks_completed_total", { result: "succeeded" })).toBe(1);
  }, 60_000);

  test("at capacity a second task is rejected (at_capacity); a cancelled task is counted", async () => {
    const long = await dispatch.createTask({ worker_id: workerId, docker_image: "x:sleep-120" });
    tasks.push(long);
    await settle(worker, namespace, long.task_id, "claimed");
    await metrics.until("tasks_active = 1", (s) => (sample(s, "oz_worker_tasks_active") === 1 ? true : undefined));

    const second = await dispatch.createTask({ worker_id: workerId, docker_image: "busybox:1.36" });
    tasks.push(second);
    await dispatch.waitForTask(second.task_id, (t) => t.events.some((e) => e.type === "task_rejected"), { timeoutMs: 15_000 });
    const rejected = await metrics.until("rejected{at_capacity} >= 1", (s) => {
      const n = sample(s, "oz_worker_tasks_rejected_total", { reason: "at_capacity" }) ?? 0;
      return n >= 1 ? s : undefined;
    });
    expect(total(rejected, "oz_worker_tasks_rejected_total")).toBe(sample(rejected, "oz_worker_tasks_rejected_total", { reason: "at_capacity" }) ?? -1);
    expect(sample(rejected, "oz_worker_tasks_active")).toBe(1);

    await dispatch.cancel(long.task_id);
    await settle(worker, namespace, long.task_id, "cancelled");
    const s = await metrics.until("completed{cancelled} = 1", (s) =>
      sample(s, "oz_worker_tasks_completed_total", { result: "cancelled" }) === 1 ? s : undefined,
    );
    expect(sample(s, "oz_worker_task_duration_seconds_count", { result: "cancelled" })).toBe(1);
    // A cancellation is not a failure.
    expect(total(s, "oz_worker_task_failures_total")).toBe(1);

    // The slot is free again: the rejected task is offered again, runs and succeeds.
    await settle(worker, namespace, second.task_id, "succeeded");
    const end = await metrics.until("completed{succeeded} = 2 and no active task", (s) =>
      sample(s, "oz_worker_tasks_completed_total", { result: "succeeded" }) === 2 && sample(s, "oz_worker_tasks_active") === 0
        ? s
        : undefined,
    );
    expect(sample(end, "oz_worker_task_duration_seconds_count", { result: "succeeded" })).toBe(2);
    expect(sample(end, "oz_worker_task_duration_seconds_count", { result: "failed" })).toBe(1);
    expect(sample(end, "oz_worker_task_duration_seconds_count", { result: "cancelled" })).toBe(1);
    expect(sample(end, "oz_worker_tasks_completed_total", { result: "failed" })).toBe(1);
  }, 90_000);

  test("/readyz is 503 naming oz_connection while the dispatch server is down, 200 after the reconnect; /healthz stays 200", async () => {
    const ready = await probe(health, "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe("ready");
    expect(Object.keys(ready.body.checks ?? {}).sort()).toEqual(["accepting_tasks", "oz_connection", "preflight", "task_cache"]);
    expect(Object.values(ready.body.checks ?? {}).every((c) => c.ok)).toBe(true);
    expect(ready.body.checks?.preflight).toEqual({ ok: true, detail: "skipped (--skip-preflight)" });

    const liveness = watchLiveness(health);
    try {
      await dispatch.pause();
      const down = await waitFor(
        "/readyz to turn 503",
        async () => {
          const r = await probe(health, "/readyz");
          return r.status === 503 ? r : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect(down.body.status).toBe("not_ready");
      expect(down.body.failing).toEqual(["oz_connection"]);
      expect(down.body.checks?.oz_connection).toEqual({ ok: false, detail: "not connected to Oz" });
      expect(down.body.checks?.task_cache?.ok).toBe(true);
      await metrics.until("connected = 0", (s) => (sample(s, "oz_worker_connected") === 0 ? true : undefined));

      await dispatch.resume();
      await waitFor(
        "/readyz to turn 200 again",
        async () => ((await probe(health, "/readyz")).status === 200 ? true : undefined),
        { timeoutMs: 20_000 },
      );
      const s = await metrics.until("connected = 1", (s) => (sample(s, "oz_worker_connected") === 1 ? s : undefined));
      expect(total(s, "oz_worker_websocket_reconnects_total")).toBeGreaterThanOrEqual(1);
    } finally {
      const { polls, bad } = await liveness.stop();
      expect(bad).toEqual([]);
      expect(polls).toBeGreaterThan(3);
    }
  }, 60_000);

  test("no log line and no metric carries the API key or a task's env values", async () => {
    expect(worker.lines.some((l) => l.level === "debug")).toBe(true);
    expectNoMarkers("the worker's output", worker.output);
    await metrics.scrape();
    expectNoMarkers("/metrics", metrics.last);
    // The failed task's container log echoed SANDBOX_LOG into the worker's log: redacted.
    const failed = tasks.find((t) => t.assignment.docker_image === "x:exit-3");
    const containerLog = await worker.waitForLog(
      "the failed task container's log",
      (l) => l.msg === "container log of the failed task" && l.task_id === failed?.task_id && l.container === "task",
      10_000,
    );
    expect(String(containerLog.log)).toMatch(/^sandbox: .* ran x:exit-3\n<redacted>\n$/);
  }, 20_000);

  test("every log line about a task carries its task_id and execution_id", () => {
    expect(tasks.length).toBe(4);
    for (const task of tasks) {
      const lines = linesAbout(worker, task);
      expect(lines.length).toBeGreaterThanOrEqual(2);
      const missing = lines.filter((l) => l.task_id !== task.task_id || l.execution_id !== task.execution_id);
      expect(missing).toEqual([]);
    }
    const rejectedLines = worker.lines.filter((l) => l.msg === "task rejected");
    expect(rejectedLines.length).toBeGreaterThanOrEqual(1);
  });
});

describe("telemetry: OTLP push", () => {
  const workerId = `telemetry-otlp-${RUN}`;
  let receiver: OtlpReceiver;
  let worker: WorkerProcess;
  let namespace: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    // The worker runs with exactly the permissions it declares (the chart's Role).
    namespace = await cluster.workerNamespace("telemetry-otlp");
    worker = await startWorker({
      workerId,
      kubeconfig: cluster.kubeconfig(namespace),
      namespace,
      dispatch,
      config: { max_concurrent_tasks: 3 },
      // -e beats the task's env_vars: the failed task's container echoes this value.
      args: ["-e", `SANDBOX_LOG=${FLAG_ENV_MARKER}`],
      env: {
        OTEL_METRICS_EXPORTER: "otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_METRIC_EXPORT_INTERVAL: "300",
      },
    });
    workers.push(worker);
  }, 60_000);

  afterAll(async () => {
    await receiver?.close();
  });

  test("the receiver decodes the pushed series, before and after a task", async () => {
    // Primed and pushed before any task.
    const first = await receiver.waitFor((r) => otlpPoint(r.decoded, "oz_worker_connected") === 1, 15_000);
    expect(first.path).toBe("/v1/metrics");
    expect(first.contentType).toContain("application/x-protobuf");
    expect(first.decoded.resource).toMatchObject({ "service.name": "oz-agent-worker", "worker.id": workerId, "worker.backend": "kubernetes" });
    expect(otlpPoint(first.decoded, "oz_worker_info", { backend: "kubernetes", worker_id: workerId })).toBe(1);
    expect(otlpPoint(first.decoded, "oz_worker_tasks_max_concurrent")).toBe(3);
    expect(otlpPoint(first.decoded, "oz_worker_tasks_rejected_total", { reason: "at_capacity" })).toBe(0);
    expect(otlpPoint(first.decoded, "oz_worker_task_failures_total", { phase: "run", reason: "container_exit" })).toBe(0);

    const task = await dispatch.createTask({ worker_id: workerId, docker_image: "busybox:1.36", env_vars: { MY_TOKEN: ENV_MARKER } });
    await settle(worker, namespace, task.task_id, "succeeded");
    const after = await receiver.waitFor(
      (r) =>
        otlpPoint(r.decoded, "oz_worker_tasks_completed_total", { result: "succeeded" }) === 1 &&
        otlpPoint(r.decoded, "oz_worker_tasks_active") === 0,
      15_000,
    );
    const d = after.decoded;
    const byName = new Map(d.metrics.map((m) => [m.name, m]));
    expect(byName.get("oz_worker_tasks_completed_total")).toMatchObject({ type: "sum", monotonic: true });
    expect(byName.get("oz_worker_task_duration_seconds")).toMatchObject({ type: "histogram", unit: "s" });
    expect(otlpPoint(d, "oz_worker_task_duration_seconds", { result: "succeeded" })).toBe(1);
    expect(otlpPoint(d, "oz_worker_tasks_completed_total", { result: "failed" })).toBe(0);
    expect(otlpPoint(d, "oz_worker_connected")).toBe(1);
    expect(otlpPoint(d, "oz_worker_info", { worker_id: workerId })).toBe(1);
    for (const name of [
      "oz_worker_connected",
      "oz_worker_tasks_active",
      "oz_worker_tasks_max_concurrent",
      "oz_worker_tasks_rejected_total",
      "oz_worker_tasks_completed_total",
      "oz_worker_task_duration_seconds",
      "oz_worker_task_failures_total",
      "oz_worker_websocket_reconnects_total",
      "oz_worker_info",
    ]) {
      expect(byName.has(name)).toBe(true);
    }
    // A failure is pushed with its phase and reason.
    const failing = await dispatch.createTask({ worker_id: workerId, docker_image: "x:exit-2", env_vars: { SANDBOX_LOG: ENV_MARKER } });
    const failed = await settle(worker, namespace, failing.task_id, "failed");
    expect(failed.failure_reason).toBe("container_exit");
    const afterFailure = await receiver.waitFor(
      (r) => otlpPoint(r.decoded, "oz_worker_task_failures_total", { phase: "run", reason: "container_exit" }) === 1,
      15_000,
    );
    expect(otlpPoint(afterFailure.decoded, "oz_worker_tasks_completed_total", { result: "failed" })).toBe(1);
    expect(otlpPoint(afterFailure.decoded, "oz_worker_task_duration_seconds", { result: "failed" })).toBe(1);

    // The container echoed the worker's -e value into the worker's log: redacted.
    const containerLog = await worker.waitForLog(
      "the failed task container's log",
      (l) => l.msg === "container log of the failed task" && l.task_id === failing.task_id && l.container === "task",
      10_000,
    );
    expect(String(containerLog.log)).toMatch(/^sandbox: .* ran x:exit-2\n<redacted>\n$/);
    // Nothing pushed or logged carries a secret.
    expectNoMarkers("the OTLP payloads", JSON.stringify(receiver.requests.map((r) => r.decoded)));
    expectNoMarkers("the worker's output", worker.output);
  }, 60_000);
});

describe("telemetry: --log-format and --log-level of run", () => {
  let namespace: string;
  beforeAll(async () => {
    namespace = await cluster.workerNamespace("telemetry-logs");
  }, 60_000);

  /**
   * `oz-worker run` with `flags`, stdout and stderr piped (not a terminal), until it is connected
   * to Oz; then SIGTERM. Returns stdout and stderr.
   */
  async function runUntilConnected(
    workerId: string,
    flags: string[],
    connectedLine: RegExp | undefined = /Connected to Oz/,
  ): Promise<{ stdout: string; stderr: string }> {
    const [cmd, ...pre] = workerCommand();
    const child = spawn(
      cmd as string,
      [
        ...pre,
        "run",
        "--worker-id",
        workerId,
        "--web-socket-url",
        dispatch.wsUrl,
        "--health-addr",
        "127.0.0.1:0",
        "--skip-preflight",
        ...flags,
      ],
      {
        env: {
          ...process.env,
          WARP_API_KEY: dispatch.apiKey,
          OTEL_METRICS_EXPORTER: "none",
        },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr?.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const exited = new Promise<number>((resolveExit) => child.on("exit", (code) => resolveExit(code ?? 128)));
    // The config comes from standard input.
    child.stdin?.end(`backend:\n  kubernetes:\n    kubeconfig: ${JSON.stringify(cluster.kubeconfig(namespace))}\n    namespace: ${namespace}\n`);
    try {
      await dispatch.waitForWorkers((ws) => ws.some((w) => w.worker_id === workerId), { timeoutMs: 30_000 });
      if (connectedLine) await waitFor("the connected line", () => (connectedLine.test(stderr) ? true : undefined), { timeoutMs: 10_000 });
    } catch (err) {
      child.kill("SIGKILL");
      throw new Error(`${(err as Error).message}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
    } finally {
      if (child.exitCode === null) child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    return { stdout, stderr };
  }

  test("by default (stdout not a terminal): JSON lines on stderr at info level", async () => {
    const { stdout, stderr } = await runUntilConnected(`telemetry-logs-json-${RUN}`, ["--config-file", "-"]);
    expect(stdout).toBe("");
    const lines = stderr.trimEnd().split("\n");
    const parsed = lines.map((l) => JSON.parse(l) as LogLine);
    expect(parsed.some((l) => l.msg === "Connected to Oz. Listening for tasks" && l.level === "info")).toBe(true);
    expect(parsed.every((l) => typeof l.time === "string" && ["info", "warn", "error"].includes(l.level))).toBe(true);
    expectNoMarkers("the worker's output", stderr);
  }, 60_000);

  test("--log-format pretty --log-level debug: pretty lines, debug included; --log-level warn drops info", async () => {
    const pretty = await runUntilConnected(`telemetry-logs-pretty-${RUN}`, ["--config-file", "-", "--log-format", "pretty", "--log-level", "debug"]);
    const lines = pretty.stderr.trimEnd().split("\n");
    expect(lines.some((l) => l.startsWith("{"))).toBe(false);
    const shape = /^\d{2}:\d{2}:\d{2}\.\d{3} (DEBUG|INFO |WARN |ERROR) \S/;
    expect(lines.filter((l) => !shape.test(l))).toEqual([]);
    expect(lines.some((l) => /^\S+ DEBUG oz connection: dialling /.test(l))).toBe(true);
    expect(lines.some((l) => /^\S+ INFO  health endpoints listening .*url=http:\/\/127\.0\.0\.1:\d+/.test(l))).toBe(true);
    expectNoMarkers("the worker's output", pretty.stderr);

    const quiet = await runUntilConnected(
      `telemetry-logs-warn-${RUN}`,
      ["--config-file", "-", "--log-format", "json", "--log-level", "warn"],
      /preflight skipped/,
    );
    const levels = quiet.stderr.trimEnd().split("\n").map((l) => (JSON.parse(l) as LogLine).level);
    expect(levels).toContain("warn");
    expect(levels.filter((l) => l !== "warn" && l !== "error")).toEqual([]);
  }, 60_000);
});
