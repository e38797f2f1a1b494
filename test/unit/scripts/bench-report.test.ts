import { describe, expect, test } from "bun:test";
import type { TaskRecord } from "../../../test/dispatch-server/types.ts";
import {
  auditCounts,
  auditPeakWatches,
  benchTable,
  computeBench,
  isWorkerSeries,
  RESULT_KEYS,
  keptGrowthMb,
  roleAllows,
  resultJson,
  taskTiming,
  type BenchInput,
  createSegments,
  workerCreateLog,
} from "../../../scripts/lib/bench-report.ts";
import { stripAnsi } from "../../../scripts/lib/table.ts";
import type { Sample } from "../../../scripts/lib/prom.ts";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const iso = (ms: number) => new Date(T0 + ms).toISOString();

function record(id: string, events: [number, "to_worker" | "from_worker", string][], state: TaskRecord["state"] = "succeeded"): TaskRecord {
  return {
    task_id: id,
    execution_id: `e-${id}`,
    state,
    worker_id: "w",
    message: null,
    failure_reason: null,
    exit_code: null,
    created_at: iso(0),
    updated_at: iso(events.at(-1)?.[0] ?? 0),
    events: events.map(([at, direction, type]) => ({ at: iso(at), direction, type, data: { task_id: id } })),
    assignment: { task_id: id, execution_id: `e-${id}`, task: {} },
    target_worker_id: null,
    cancel_requested_at: null,
  };
}

describe("taskTiming", () => {
  test("the claimed assignment counts, not an earlier rejected one", () => {
    const t = taskTiming(
      record("a", [
        [10, "to_worker", "task_assignment"],
        [11, "from_worker", "task_rejected"],
        [1011, "to_worker", "task_assignment"],
        [1012, "from_worker", "task_claimed"],
        [4000, "from_worker", "task_completed"],
        [4005, "from_worker", "task_completed"],
      ]),
    );
    expect(t).toEqual({ taskId: "a", state: "succeeded", assignedAt: T0 + 1011, reportedAt: T0 + 4000, rejections: 1, assignments: 2 });
  });

  test("without a claim the last assignment counts; task_failed is a report", () => {
    const t = taskTiming(record("b", [[5, "to_worker", "task_assignment"], [9, "from_worker", "task_failed"]], "failed"));
    expect(t.assignedAt).toBe(T0 + 5);
    expect(t.reportedAt).toBe(T0 + 9);
  });
});

function input(over: Partial<BenchInput> = {}): BenchInput {
  const records = [1, 2, 3, 4].map((i) =>
    record(`t${i}`, [
      [i * 100, "to_worker", "task_assignment"],
      [i * 100 + 1, "from_worker", "task_claimed"],
      [i * 100 + 2000, "from_worker", "task_completed"],
    ]),
  );
  const requests: Sample[] = [
    { name: "apiserver_request_total", labels: { verb: "POST", resource: "jobs", subresource: "" }, value: 4 },
    { name: "apiserver_request_total", labels: { verb: "DELETE", resource: "jobs", subresource: "", code: "200" }, value: 3 },
    { name: "apiserver_request_total", labels: { verb: "DELETE", resource: "jobs", subresource: "", code: "404" }, value: 1 },
    { name: "apiserver_request_total", labels: { verb: "GET", resource: "pods", subresource: "log" }, value: 2 },
  ];
  return {
    tasks: 4,
    concurrency: 2,
    taskSeconds: 2,
    workerCmd: "oz-worker run",
    records,
    // Jobs seen 10, 20, 30, 40 ms after the assignment; pods terminal 5..20 ms before the report.
    jobSeenAt: new Map(records.map((r, i) => [r.task_id, T0 + (i + 1) * 100 + (i + 1) * 10])),
    podTerminalAt: new Map(records.map((r, i) => [r.task_id, T0 + (i + 1) * 100 + 2000 - (i + 1) * 5])),
    workerRequests: requests,
    peakWatchConnections: 2,
    peakApiserverConnections: 3,
    workerPeakRssMb: 60.04,
    workerPeakRssFileMb: 44.96,
    workerIdleRssMb: 41.26,
    keptJobs: 0,
    workerRssAfterSyncMb: null,
    workerCpuSeconds: 1.234,
    ...over,
  };
}

describe("computeBench", () => {
  test("latencies, throughput and requests per task", () => {
    const { result, details } = computeBench(input());
    expect(result.create_latency_ms).toEqual({ p50: 20, p95: 40, p99: 40 });
    expect(result.report_latency_ms).toEqual({ p50: 10, p95: 20, p99: 20 });
    // 4 reports between the first creation (T0) and the last report (T0 + 2400 ms).
    expect(result.tasks_per_second).toBe(1.67);
    expect(result.api_requests_per_task).toEqual({ total: 2.5, by_verb_resource: { "DELETE jobs": 1, "GET pods/log": 0.5, "POST jobs": 1 } });
    expect(details.requestCounts).toEqual({ "DELETE jobs": 4, "GET pods/log": 2, "POST jobs": 4 });
    expect(result.worker_peak_rss_mb).toBe(60);
    expect(result.worker_peak_rss_file_mb).toBe(45);
    expect(result.worker_idle_rss_mb).toBe(41.3);
    expect(result.kept_jobs).toBe(0);
    expect(result.worker_rss_after_sync_mb).toBeNull();
    expect(result.worker_cpu_seconds).toBe(1.23);
    expect(details.states).toEqual({ succeeded: 4 });
    expect(details.missingCreate).toBe(0);
  });

  test("missing observations are counted, not invented", () => {
    const { result, details } = computeBench(input({ jobSeenAt: new Map(), podTerminalAt: new Map(), workerRequests: null }));
    expect(result.create_latency_ms).toEqual({ p50: null, p95: null, p99: null });
    expect(details.missingCreate).toBe(4);
    expect(details.missingReport).toBe(4);
    expect(result.api_requests_per_task.total).toBeNull();
  });

  test("the JSON has exactly the agreed keys, in order", () => {
    const json = JSON.parse(resultJson(computeBench(input()).result));
    expect(Object.keys(json)).toEqual([...RESULT_KEYS]);
    expect(Object.keys(json.create_latency_ms)).toEqual(["p50", "p95", "p99"]);
    expect(Object.keys(json.api_requests_per_task)).toEqual(["total", "by_verb_resource"]);
  });

  test("the table marks targets pass or miss by how much", () => {
    const ok = benchTable(...pair(input())).map(stripAnsi).join("\n");
    expect(ok).toMatch(/peak watch connections held by the worker\s+2\s+<= 2\s+pass/);
    expect(ok).toMatch(/peak TCP connections to the API server\s+3\s+<= 4\s+pass/);
    expect(ok).toMatch(/API requests per task \(all verbs\)\s+2\.50\s+<= 3 per task\s+pass/);
    expect(ok).toMatch(/ {2}GET pods\/log {2}\(2 in all\)\s+0\.50/);
    expect(ok).toMatch(/worker peak RSS, MB\s+60\.0\s+<= 70 MB\s+pass/);
    expect(ok).toMatch(/worker idle RSS \(connected, no tasks\), MB\s+41\.3/);
    expect(ok).not.toMatch(/kept Jobs/);
    expect(ok).toMatch(/worker CPU seconds\s+1\.23\n.*\n\s+per task, ms\s+307\.50\s+<= 2 ms\s+miss by 305\.5 ms/);
    const lean = benchTable(...pair(input({ tasks: 400, workerCpuSeconds: 0.6 }))).map(stripAnsi).join("\n");
    expect(lean).toMatch(/per task, ms\s+1\.50\s+<= 2 ms\s+pass/);
    const bad = benchTable(...pair(input({ peakWatchConnections: 5, peakApiserverConnections: 66, workerPeakRssMb: 90 }))).map(stripAnsi).join("\n");
    expect(bad).toMatch(/<= 4\s+miss by 62/);
    expect(bad).toMatch(/<= 2\s+miss by 3/);
    expect(bad).toMatch(/<= 70 MB\s+miss by 20 MB/);
  });

  test("CPU before the run, and the watch floor next to the worker's CPU per task", () => {
    const without = computeBench(input()).result;
    expect(without.worker_cpu_seconds_before_run).toBeNull();
    expect(without.watch_floor).toBeNull();
    const plain = benchTable(...pair(input())).map(stripAnsi).join("\n");
    expect(plain).toMatch(/worker CPU seconds\s+1\.23\n\s+of which before the run \(startup, preflight, connecting\)\s+-\n/);
    expect(plain).not.toMatch(/watch floor/);

    const measured = input({ tasks: 500, workerCpuSeconds: 1.8, workerCpuSecondsBeforeRun: 0.1234, watchFloor: { mode: "parse", cpu_seconds: 0.7777, events: 6003, megabytes: 35.26 } });
    const { result } = computeBench(measured);
    expect(result.worker_cpu_seconds_before_run).toBe(0.12);
    expect(result.watch_floor).toEqual({ mode: "parse", cpu_seconds: 0.78, events: 6003, megabytes: 35.3 });
    const table = benchTable(...pair(measured)).map(stripAnsi).join("\n");
    expect(table).toMatch(/worker CPU seconds\s+1\.80\n\s+of which before the run \(startup, preflight, connecting\)\s+0\.12\n\s+per task, ms\s+3\.60\s+<= 2 ms\s+miss by 1\.6 ms/);
    expect(table).toMatch(/watch floor \(parse only\), CPU per task, ms\s+1\.56/);
  });

  test("kept Jobs: RSS after the sync against idle, and the cost per kept pair", () => {
    // 10,000 pairs on top of 41.26 MB idle: 59.3 MB is 18 MB more, 1.84 KB a pair.
    const { result } = computeBench(input({ keptJobs: 10_000, workerRssAfterSyncMb: 59.3 }));
    expect(result.worker_rss_after_sync_mb).toBe(59.3);
    expect(keptGrowthMb(result)).toBe(18);
    const ok = benchTable(result, computeBench(input()).details).map(stripAnsi).join("\n");
    expect(ok).toMatch(/worker RSS after syncing 10000 kept Jobs, MB\s+59\.3\s+<= idle \+ 25 MB\s+pass/);
    expect(ok).toMatch(/cache cost per kept Job\+Pod pair, KB\s+1\.84\s+<= 2 KB\s+pass/);
    // 10,000 pairs at 20 KB each (the full objects): 195.3 MB more.
    const fat = computeBench(input({ keptJobs: 10_000, workerRssAfterSyncMb: 236.6 })).result;
    const bad = benchTable(fat, computeBench(input()).details).map(stripAnsi).join("\n");
    expect(bad).toMatch(/<= idle \+ 25 MB\s+miss by 170\.3 MB/);
    expect(bad).toMatch(/KB\s+20\.00\s+<= 2 KB\s+miss by 18 KB/);
  });
});

function pair(i: BenchInput) {
  const { result, details } = computeBench(i);
  return [result, details] as const;
}

describe("isWorkerSeries", () => {
  const resources = new Set(["jobs", "pods", "events", "secrets"]);
  test("namespaced and single-object requests on the worker's resources", () => {
    expect(isWorkerSeries({ resource: "jobs", scope: "namespace", verb: "LIST" }, resources)).toBe(true);
    expect(isWorkerSeries({ resource: "pods", scope: "resource", verb: "GET", subresource: "log" }, resources)).toBe(true);
    expect(isWorkerSeries({ resource: "pods", scope: "cluster", verb: "WATCH" }, resources)).toBe(false);
    expect(isWorkerSeries({ resource: "leases", scope: "resource", verb: "PUT" }, resources)).toBe(false);
    expect(isWorkerSeries({ resource: "", scope: "", verb: "GET", subresource: "/readyz" }, resources)).toBe(false);
  });
});

describe("audit log", () => {
  const user = "system:serviceaccount:ns:bench-worker";
  const ev = (o: Record<string, unknown>) => JSON.stringify({ kind: "Event", level: "Metadata", user: { username: user }, ...o });
  const lines = [
    ev({ auditID: "1", stage: "ResponseComplete", verb: "create", objectRef: { resource: "jobs", namespace: "ns" } }),
    ev({ auditID: "2", stage: "ResponseStarted", verb: "watch", objectRef: { resource: "pods", namespace: "ns" } }),
    ev({ auditID: "3", stage: "ResponseStarted", verb: "watch", objectRef: { resource: "jobs", namespace: "ns" } }),
    ev({ auditID: "4", stage: "ResponseComplete", verb: "get", objectRef: { resource: "pods", subresource: "log", namespace: "ns" } }),
    ev({ auditID: "3", stage: "ResponseComplete", verb: "watch", objectRef: { resource: "jobs", namespace: "ns" } }),
    ev({ auditID: "5", stage: "ResponseStarted", verb: "watch", objectRef: { resource: "jobs", namespace: "ns" } }),
    ev({ auditID: "6", stage: "ResponseComplete", verb: "get", requestURI: "/apis?timeout=32s" }),
    JSON.stringify({ auditID: "7", stage: "ResponseComplete", verb: "create", user: { username: "admin" }, objectRef: { resource: "jobs" } }),
    "not json",
    "",
  ];

  test("counts each request of the user once, keyed like the metrics", () => {
    expect(auditCounts(lines, user)).toEqual({ "GET /apis": 1, "GET pods/log": 1, "POST jobs": 1, "WATCH jobs": 1 });
  });

  test("peak concurrent watches of the user", () => {
    expect(auditPeakWatches(lines, user)).toBe(2);
    expect(auditPeakWatches(lines, "admin")).toBe(0);
  });
});

describe("roleAllows", () => {
  const rules = [
    { resources: ["jobs"], verbs: ["create", "get", "list", "watch", "delete", "patch"] },
    { resources: ["pods"], verbs: ["get", "list", "watch"] },
    { resources: ["pods/log"], verbs: ["get"] },
  ];
  test("maps metric verbs and subresources to RBAC terms", () => {
    expect(roleAllows({ verb: "POST", resource: "jobs", subresource: "" }, rules)).toBe(true);
    expect(roleAllows({ verb: "APPLY", resource: "jobs", subresource: "" }, rules)).toBe(true);
    expect(roleAllows({ verb: "GET", resource: "pods", subresource: "log" }, rules)).toBe(true);
    expect(roleAllows({ verb: "PATCH", resource: "pods", subresource: "status" }, rules)).toBe(false);
    expect(roleAllows({ verb: "POST", resource: "pods", subresource: "" }, rules)).toBe(false);
    expect(roleAllows({ verb: "PUT", resource: "jobs", subresource: "status" }, rules)).toBe(false);
    expect(roleAllows({ verb: "CONNECT", resource: "pods", subresource: "exec" }, rules)).toBe(false);
  });
});

describe("creation latency by segment", () => {
  const line = (time: string, msg: string, task_id: string) => JSON.stringify({ time, level: "info", msg, worker_id: "w", task_id, execution_id: task_id });
  const ms = (iso: string) => Date.parse(iso);
  test("workerCreateLog: each task's claim and Job created; other lines and formats skipped", () => {
    const log = workerCreateLog([
      "13:00:00.000 INFO  task claimed task_id=x",
      line("2026-12-06T07:00:00.100Z", "task claimed", "b"),
      line("2026-12-06T07:00:00.000Z", "task claimed", "a"),
      JSON.stringify({ time: "2026-12-06T07:00:00.050Z", level: "info", msg: "connected" }),
      line("2026-12-06T07:00:00.400Z", "Job created", "b"),
      line("2026-12-06T07:00:00.250Z", "Job created", "a"),
      line("2026-12-06T07:00:00.300Z", "task claimed", "c"),
      line("2026-12-06T07:00:00.900Z", "Job created", "d"),
    ]);
    expect(log.get("a")).toEqual({ claimedAt: ms("2026-12-06T07:00:00.000Z"), createdAt: ms("2026-12-06T07:00:00.250Z") });
    expect(log.get("b")).toEqual({ claimedAt: ms("2026-12-06T07:00:00.100Z"), createdAt: ms("2026-12-06T07:00:00.400Z") });
    expect(log.get("c")).toEqual({ claimedAt: ms("2026-12-06T07:00:00.300Z") });
    expect(log.has("d")).toBe(false);
  });
  test("createSegments: delivery + worker + observed add up to the task's creation latency, in claim order", () => {
    const log = new Map([
      ["late", { claimedAt: 1_100, createdAt: 1_500 }],
      ["early", { claimedAt: 1_020, createdAt: 1_200 }],
      ["unseen", { claimedAt: 1_000, createdAt: 1_050 }],
      ["uncreated", { claimedAt: 1_000 }],
    ]);
    const assigned = new Map([["late", 1_000], ["early", 1_000], ["unseen", 990], ["uncreated", 990]]);
    const seen = new Map([["late", 1_700], ["early", 1_260], ["uncreated", 2_000]]);
    const segs = createSegments(assigned, log, seen);
    expect(segs).toEqual([
      { delivery: 20, worker: 180, observed: 60 },
      { delivery: 100, worker: 400, observed: 200 },
    ]);
    expect(segs.map((x) => x.delivery + x.worker + x.observed)).toEqual([seen.get("early")! - 1_000, seen.get("late")! - 1_000]);
  });
});
