// The benchmark's figures from what it observed: dispatch-server task records,
// the harness's own Job and Pod watch times, apiserver counter increases and
// process samples. Pure, so the arithmetic is unit-tested.
import type { TaskRecord } from "../../test/dispatch-server/types.ts";
import { type Labels, type Sample, sumBy, verbResourceKey } from "./prom.ts";
import { type Percentiles, round, summarize } from "./stats.ts";
import { type Column, makeStyle, renderTable, type Style } from "./table.ts";

/** The JSON written by --json: exactly these keys. */
export interface BenchResult {
  tasks: number;
  concurrency: number;
  task_seconds: number;
  create_latency_ms: Percentiles;
  report_latency_ms: Percentiles;
  tasks_per_second: number | null;
  api_requests_per_task: { total: number | null; by_verb_resource: Record<string, number> };
  peak_watch_connections: number | null;
  peak_apiserver_connections: number | null;
  worker_peak_rss_mb: number | null;
  /** Of the peak, the worker executable's file-backed pages (RssFile, at the largest sample): shared, clean, not heap. */
  worker_peak_rss_file_mb: number | null;
  /** Connected to Oz, no task, nothing kept in the namespace. */
  worker_idle_rss_mb: number | null;
  /** Finished Jobs (with pods) of the worker in the namespace before it started (--kept-jobs). */
  kept_jobs: number;
  /** Right after the worker synced its cache of the kept Jobs (it connects only then); null without --kept-jobs. */
  worker_rss_after_sync_mb: number | null;
  worker_cpu_seconds: number | null;
  /** Of worker_cpu_seconds, what it used before the measured window opened: startup, preflight, connecting, 2 s idle. */
  worker_cpu_seconds_before_run: number | null;
  /** --watch-floor: a process that only read the worker's two watches during the window; null without it. */
  watch_floor: WatchFloor | null;
  worker_cmd: string;
}

export interface WatchFloor {
  /** receive: bytes discarded; parse: split, managedFields cut, parse and slim, as the worker's reflector does. */
  mode: "receive" | "parse";
  cpu_seconds: number;
  /** Events parsed (0 in receive mode). */
  events: number;
  megabytes: number;
}

export const RESULT_KEYS = [
  "tasks",
  "concurrency",
  "task_seconds",
  "create_latency_ms",
  "report_latency_ms",
  "tasks_per_second",
  "api_requests_per_task",
  "peak_watch_connections",
  "peak_apiserver_connections",
  "worker_peak_rss_mb",
  "worker_peak_rss_file_mb",
  "worker_idle_rss_mb",
  "kept_jobs",
  "worker_rss_after_sync_mb",
  "worker_cpu_seconds",
  "worker_cpu_seconds_before_run",
  "watch_floor",
  "worker_cmd",
] as const satisfies readonly (keyof BenchResult)[];

export interface TaskTiming {
  taskId: string;
  state: string;
  /** The task_assignment the worker went on to claim (else the last one sent), epoch ms. */
  assignedAt?: number;
  /** The first task_completed / task_failed from the worker, epoch ms. */
  reportedAt?: number;
  /** task_rejected frames for this task. */
  rejections: number;
  /** Assignments sent (more than one after rejections or reconnects). */
  assignments: number;
}

/** Reads the protocol timeline of one task record. */
export function taskTiming(record: TaskRecord): TaskTiming {
  let lastAssignment: number | undefined;
  let assignedAt: number | undefined;
  let reportedAt: number | undefined;
  let rejections = 0;
  let assignments = 0;
  for (const ev of record.events) {
    const at = Date.parse(ev.at);
    if (ev.direction === "to_worker" && ev.type === "task_assignment") {
      assignments++;
      lastAssignment = at;
    } else if (ev.direction === "from_worker") {
      if (ev.type === "task_claimed" && assignedAt === undefined) assignedAt = lastAssignment;
      else if (ev.type === "task_rejected") rejections++;
      else if ((ev.type === "task_completed" || ev.type === "task_failed") && reportedAt === undefined) reportedAt = at;
    }
  }
  const out: TaskTiming = { taskId: record.task_id, state: record.state, rejections, assignments };
  const assigned = assignedAt ?? lastAssignment;
  if (assigned !== undefined) out.assignedAt = assigned;
  if (reportedAt !== undefined) out.reportedAt = reportedAt;
  return out;
}

export interface BenchInput {
  tasks: number;
  concurrency: number;
  taskSeconds: number;
  workerCmd: string;
  records: readonly TaskRecord[];
  /** When the harness's Job watch first saw each task's Job (ADDED), by task id. */
  jobSeenAt: ReadonlyMap<string, number>;
  /** When the harness's Pod watch first saw each task's pod Succeeded or Failed, by task id. */
  podTerminalAt: ReadonlyMap<string, number>;
  /** Increase of apiserver_request_total attributable to the worker (already filtered). */
  workerRequests: readonly Sample[] | null;
  peakWatchConnections: number | null;
  /** Most TCP connections the worker held to the API server at once (sampled with its memory). */
  peakApiserverConnections: number | null;
  workerPeakRssMb: number | null;
  workerPeakRssFileMb: number | null;
  workerIdleRssMb: number | null;
  keptJobs: number;
  workerRssAfterSyncMb: number | null;
  workerCpuSeconds: number | null;
  workerCpuSecondsBeforeRun?: number | null;
  watchFloor?: WatchFloor | null;
}

export interface BenchDetails {
  states: Record<string, number>;
  rejections: number;
  /** Tasks without a sample for a figure (a watch missed it, or the task never got there). */
  missingCreate: number;
  missingReport: number;
  /** First submission (first task created_at) to last result report, ms. */
  spanMs: number | null;
  /** Raw request counts behind api_requests_per_task. */
  requestCounts: Record<string, number>;
  requestTotal: number | null;
}

export function computeBench(input: BenchInput): { result: BenchResult; details: BenchDetails } {
  const timings = input.records.map(taskTiming);
  const create: number[] = [];
  const report: number[] = [];
  let missingCreate = 0;
  let missingReport = 0;
  const states: Record<string, number> = {};
  let rejections = 0;
  let lastReport = -Infinity;
  for (const t of timings) {
    states[t.state] = (states[t.state] ?? 0) + 1;
    rejections += t.rejections;
    const seen = input.jobSeenAt.get(t.taskId);
    if (t.assignedAt !== undefined && seen !== undefined) create.push(seen - t.assignedAt);
    else missingCreate++;
    const terminal = input.podTerminalAt.get(t.taskId);
    if (t.reportedAt !== undefined && terminal !== undefined) report.push(t.reportedAt - terminal);
    else missingReport++;
    if (t.reportedAt !== undefined) lastReport = Math.max(lastReport, t.reportedAt);
  }
  const firstCreated = Math.min(...input.records.map((r) => Date.parse(r.created_at)));
  const spanMs = Number.isFinite(firstCreated) && Number.isFinite(lastReport) && lastReport > firstCreated ? lastReport - firstCreated : null;
  const reported = timings.filter((t) => t.reportedAt !== undefined).length;

  let requestCounts: Record<string, number> = {};
  let requestTotal: number | null = null;
  const perTask: Record<string, number> = {};
  if (input.workerRequests !== null) {
    requestCounts = sortKeys(sumBy(input.workerRequests, verbResourceKey));
    requestTotal = Object.values(requestCounts).reduce((a, b) => a + b, 0);
    for (const [k, v] of Object.entries(requestCounts)) perTask[k] = input.tasks > 0 ? round(v / input.tasks, 2) : 0;
  }
  const result: BenchResult = {
    tasks: input.tasks,
    concurrency: input.concurrency,
    task_seconds: input.taskSeconds,
    create_latency_ms: summarize(create),
    report_latency_ms: summarize(report),
    tasks_per_second: spanMs === null ? null : round(reported / (spanMs / 1000), 2),
    api_requests_per_task: {
      total: requestTotal === null || input.tasks === 0 ? null : round(requestTotal / input.tasks, 2),
      by_verb_resource: perTask,
    },
    peak_watch_connections: input.peakWatchConnections,
    peak_apiserver_connections: input.peakApiserverConnections,
    worker_peak_rss_mb: input.workerPeakRssMb === null ? null : round(input.workerPeakRssMb, 1),
    worker_peak_rss_file_mb: input.workerPeakRssFileMb === null ? null : round(input.workerPeakRssFileMb, 1),
    worker_idle_rss_mb: input.workerIdleRssMb === null ? null : round(input.workerIdleRssMb, 1),
    kept_jobs: input.keptJobs,
    worker_rss_after_sync_mb: input.keptJobs > 0 && input.workerRssAfterSyncMb !== null ? round(input.workerRssAfterSyncMb, 1) : null,
    worker_cpu_seconds: input.workerCpuSeconds === null ? null : round(input.workerCpuSeconds, 2),
    worker_cpu_seconds_before_run: input.workerCpuSecondsBeforeRun == null ? null : round(input.workerCpuSecondsBeforeRun, 2),
    watch_floor: input.watchFloor
      ? { ...input.watchFloor, cpu_seconds: round(input.watchFloor.cpu_seconds, 2), megabytes: round(input.watchFloor.megabytes, 1) }
      : null,
    worker_cmd: input.workerCmd,
  };
  return { result, details: { states, rejections, missingCreate, missingReport, spanMs, requestCounts, requestTotal } };
}

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** The JSON document for --json: exactly RESULT_KEYS, in that order. */
export function resultJson(result: BenchResult): string {
  const ordered: Record<string, unknown> = {};
  for (const k of RESULT_KEYS) ordered[k] = result[k];
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

export interface Target {
  label: string;
  /** Missed by how much, in the figure's unit (positive), or 0 when met; null without a value. */
  check: (r: BenchResult) => { met: boolean; by: number } | null;
  unit: string;
}

const atMost = (value: number | null, limit: number) => (value === null ? null : { met: value <= limit, by: round(value - limit, 2) });
const below = (value: number | null, limit: number) => (value === null ? null : { met: value < limit, by: round(value - limit, 2) });

export const TARGETS = {
  watches: { label: "<= 2", unit: "", check: (r: BenchResult) => atMost(r.peak_watch_connections, 2) },
  connections: { label: "<= 4", unit: "", check: (r: BenchResult) => atMost(r.peak_apiserver_connections, 4) },
  requests: { label: "<= 3 per task", unit: "", check: (r: BenchResult) => atMost(r.api_requests_per_task.total, 3) },
  report: { label: "p99 < 250 ms", unit: " ms", check: (r: BenchResult) => below(r.report_latency_ms.p99, 250) },
  rss: { label: "<= 70 MB", unit: " MB", check: (r: BenchResult) => atMost(r.worker_peak_rss_mb, 70) },
  keptRss: { label: "<= idle + 25 MB", unit: " MB", check: (r: BenchResult) => keptGrowth(r, (mb) => atMost(mb, 25)) },
  keptPair: { label: "<= 2 KB", unit: " KB", check: (r: BenchResult) => keptGrowth(r, (mb) => atMost(round((mb * 1024) / r.kept_jobs, 2), 2)) },
  cpuPerTask: { label: "<= 2 ms", unit: " ms", check: (r: BenchResult) => atMost(cpuMsPerTask(r), 2) },
} satisfies Record<string, Target>;

/** The worker's CPU time per task, ms (the whole run's, startup included, over the tasks); null without it. */
export function cpuMsPerTask(r: BenchResult): number | null {
  return msPerTask(r.worker_cpu_seconds, r.tasks);
}

function msPerTask(seconds: number | null, tasks: number): number | null {
  return seconds === null || tasks <= 0 ? null : round((seconds * 1000) / tasks, 2);
}

/** What the kept Jobs cost: RSS after the sync above idle, MiB; null without both figures. */
export function keptGrowthMb(r: BenchResult): number | null {
  if (r.kept_jobs <= 0 || r.worker_rss_after_sync_mb === null || r.worker_idle_rss_mb === null) return null;
  return round(r.worker_rss_after_sync_mb - r.worker_idle_rss_mb, 1);
}

function keptGrowth(r: BenchResult, check: (mb: number) => { met: boolean; by: number } | null) {
  const mb = keptGrowthMb(r);
  return mb === null ? null : check(mb);
}

function verdict(t: Target, r: BenchResult, style: Style): string {
  const c = t.check(r);
  if (c === null) return style.yellow("n/a");
  return c.met ? style.green("pass") : style.red(`miss by ${c.by}${t.unit}`);
}

const fmt = (v: number | null, digits = 1) => (v === null ? "-" : v.toFixed(digits));
const pct = (p: Percentiles) => `${fmt(p.p50)} / ${fmt(p.p95)} / ${fmt(p.p99)}`;

/** The one table the benchmark prints. */
export function benchTable(result: BenchResult, details: BenchDetails, color = false): string[] {
  const style = makeStyle(color);
  const columns: Column[] = [{ header: "figure" }, { header: "value", align: "right" }, { header: "target" }, { header: "result" }];
  const rows: string[][] = [
    ["assignment -> Job created, ms (p50 / p95 / p99)", pct(result.create_latency_ms), "", ""],
    ["pod terminal -> result reported, ms (p50 / p95 / p99)", pct(result.report_latency_ms), TARGETS.report.label, verdict(TARGETS.report, result, style)],
    ["sustained tasks per second", fmt(result.tasks_per_second, 2), "", ""],
    ["API requests per task (all verbs)", fmt(result.api_requests_per_task.total, 2), TARGETS.requests.label, verdict(TARGETS.requests, result, style)],
  ];
  for (const [k, v] of Object.entries(result.api_requests_per_task.by_verb_resource)) {
    rows.push([`  ${k}  (${details.requestCounts[k] ?? 0} in all)`, v.toFixed(2), "", ""]);
  }
  rows.push(
    ["peak watch connections held by the worker", result.peak_watch_connections === null ? "-" : String(result.peak_watch_connections), TARGETS.watches.label, verdict(TARGETS.watches, result, style)],
    [
      "peak TCP connections to the API server",
      result.peak_apiserver_connections === null ? "-" : String(result.peak_apiserver_connections),
      TARGETS.connections.label,
      verdict(TARGETS.connections, result, style),
    ],
    ["worker peak RSS, MB", fmt(result.worker_peak_rss_mb), TARGETS.rss.label, verdict(TARGETS.rss, result, style)],
    ["  of which the executable's file pages (RssFile), MB", fmt(result.worker_peak_rss_file_mb), "", ""],
    ["worker idle RSS (connected, no tasks), MB", fmt(result.worker_idle_rss_mb), "", ""],
  );
  if (result.kept_jobs > 0) {
    const growth = keptGrowthMb(result);
    rows.push(
      [`worker RSS after syncing ${result.kept_jobs} kept Jobs, MB`, fmt(result.worker_rss_after_sync_mb), TARGETS.keptRss.label, verdict(TARGETS.keptRss, result, style)],
      ["  cache cost per kept Job+Pod pair, KB", growth === null ? "-" : ((growth * 1024) / result.kept_jobs).toFixed(2), TARGETS.keptPair.label, verdict(TARGETS.keptPair, result, style)],
    );
  }
  rows.push(
    ["worker CPU seconds", fmt(result.worker_cpu_seconds, 2), "", ""],
    ["  of which before the run (startup, preflight, connecting)", fmt(result.worker_cpu_seconds_before_run, 2), "", ""],
    ["  per task, ms", fmt(cpuMsPerTask(result), 2), TARGETS.cpuPerTask.label, verdict(TARGETS.cpuPerTask, result, style)],
  );
  const floor = result.watch_floor;
  if (floor) {
    rows.push([`watch floor (${floor.mode} only), CPU per task, ms`, fmt(msPerTask(floor.cpu_seconds, result.tasks), 2), "", ""]);
  }
  return renderTable(columns, rows);
}

/** Labels of apiserver_request_total series that belong to the worker on a shared or dedicated apiserver. */
export function isWorkerSeries(labels: Labels, workerResources: ReadonlySet<string>): boolean {
  // Namespaced or single-object requests on the resources the worker's Role
  // covers. Cluster-scoped lists and watches there are the apiserver's own
  // informers (and the controllers', on a shared apiserver): a namespaced
  // worker cannot make them.
  if (labels.scope === "cluster") return false;
  return workerResources.has(labels.resource ?? "");
}

const RBAC_VERBS: Record<string, string> = {
  GET: "get",
  LIST: "list",
  WATCH: "watch",
  POST: "create",
  PUT: "update",
  PATCH: "patch",
  APPLY: "patch",
  DELETE: "delete",
  DELETECOLLECTION: "deletecollection",
};

export interface RoleRule {
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/**
 * Whether a Role with `rules` allows the request an apiserver_request_total
 * series counts (metric verb and resource[/subresource] mapped to RBAC terms).
 */
export function roleAllows(labels: Labels, rules: readonly RoleRule[]): boolean {
  const verb = RBAC_VERBS[labels.verb ?? ""];
  const resource = `${labels.resource ?? ""}${labels.subresource ? `/${labels.subresource}` : ""}`;
  return verb !== undefined && rules.some((r) => r.resources.includes(resource) && r.verbs.includes(verb));
}

const AUDIT_VERBS: Record<string, string> = {
  get: "GET",
  list: "LIST",
  watch: "WATCH",
  create: "POST",
  update: "PUT",
  patch: "PATCH",
  delete: "DELETE",
  deletecollection: "DELETECOLLECTION",
};

/**
 * Requests by one user in kube-apiserver audit log lines (JSON, one event per
 * line), counted once each at ResponseComplete (or Panic), keyed like the
 * metrics: `"<VERB> <resource>[/<subresource>]"`. Non-resource requests are
 * keyed by their path.
 */
export function auditCounts(lines: Iterable<string>, username: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of lines) {
    if (!line.trim()) continue;
    let ev: { stage?: string; verb?: string; user?: { username?: string }; objectRef?: { resource?: string; subresource?: string }; requestURI?: string };
    try {
      ev = JSON.parse(line);
    } catch {
      continue;
    }
    if (ev.user?.username !== username || (ev.stage !== "ResponseComplete" && ev.stage !== "Panic")) continue;
    const verb = AUDIT_VERBS[ev.verb ?? ""] ?? (ev.verb ?? "?").toUpperCase();
    const key = ev.objectRef?.resource
      ? verbResourceKey({ verb, resource: ev.objectRef.resource, subresource: ev.objectRef.subresource ?? "" })
      : `${verb} ${(ev.requestURI ?? "?").split("?")[0]}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return sortKeys(out);
}

/**
 * The most watch requests one user held open at once, from audit events: a
 * watch counts from its ResponseStarted to its ResponseComplete (by auditID),
 * in log order. Exact where sampling a gauge could miss a short overlap.
 */
export function auditPeakWatches(lines: Iterable<string>, username: string): number {
  const open = new Set<string>();
  let peak = 0;
  for (const line of lines) {
    if (!line.includes('"watch"')) continue;
    let ev: { auditID?: string; stage?: string; verb?: string; user?: { username?: string } };
    try {
      ev = JSON.parse(line);
    } catch {
      continue;
    }
    if (ev.verb !== "watch" || ev.user?.username !== username || !ev.auditID) continue;
    if (ev.stage === "ResponseStarted") {
      open.add(ev.auditID);
      peak = Math.max(peak, open.size);
    } else if (ev.stage === "ResponseComplete" || ev.stage === "Panic") {
      open.delete(ev.auditID);
    }
  }
  return peak;
}

/** When the worker's JSON log says it claimed a task and created its Job (epoch ms). */
export interface WorkerCreateLog {
  claimedAt: number;
  createdAt?: number;
}

/** Per task id, the times of its "task claimed" and "Job created" lines in the worker's JSON log (other lines skipped). */
export function workerCreateLog(lines: Iterable<string>): Map<string, WorkerCreateLog> {
  const out = new Map<string, WorkerCreateLog>();
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    let rec: { time?: unknown; msg?: unknown; task_id?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    if (typeof rec.task_id !== "string" || typeof rec.time !== "string") continue;
    const at = Date.parse(rec.time);
    if (Number.isNaN(at)) continue;
    if (rec.msg === "task claimed" && !out.has(rec.task_id)) out.set(rec.task_id, { claimedAt: at });
    else if (rec.msg === "Job created") {
      const t = out.get(rec.task_id);
      if (t && t.createdAt === undefined) t.createdAt = at;
    }
  }
  return out;
}

/** "assignment -> Job created" of one task cut at the worker's log lines (ms; all on this machine's clock). */
export interface CreateSegments {
  /** Dispatch server sent the assignment -> the worker logged its claim. */
  delivery: number;
  /** The worker's claim -> its create's answer (spec, request slot, the API server). */
  worker: number;
  /** The worker had the answer -> the harness's watch delivered the Job. */
  observed: number;
}

/**
 * The creation latency of each task with all three times, split into its segments, in
 * claim order (so the first C are the burst).
 */
export function createSegments(
  assignedAt: ReadonlyMap<string, number>,
  log: ReadonlyMap<string, WorkerCreateLog>,
  jobSeenAt: ReadonlyMap<string, number>,
): CreateSegments[] {
  const rows: { claimedAt: number; seg: CreateSegments }[] = [];
  for (const [taskId, t] of log) {
    const assigned = assignedAt.get(taskId);
    const seen = jobSeenAt.get(taskId);
    if (assigned === undefined || seen === undefined || t.createdAt === undefined) continue;
    rows.push({ claimedAt: t.claimedAt, seg: { delivery: t.claimedAt - assigned, worker: t.createdAt - t.claimedAt, observed: seen - t.createdAt } });
  }
  return rows.sort((a, b) => a.claimedAt - b.claimedAt).map((r) => r.seg);
}
