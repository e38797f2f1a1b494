// scripts/bench: drives the dispatch server against the sandbox with a closed
// loop of `x:sleep-S` tasks and prints the worker's figures in one table.
// How each figure is measured: docs/bench.md.
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseFlags, usageText, UsageError, type FlagDefs } from "./lib/args.ts";
import { auditCounts, auditPeakWatches, benchTable, computeBench, isWorkerSeries, resultJson, roleAllows, taskTiming, createSegments, workerCreateLog, type WatchFloor } from "./lib/bench-report.ts";
import { Cleanup } from "./lib/cleanup.ts";
import { Dispatch, type TaskRecord } from "./lib/dispatch.ts";
import { Kube, nowMs } from "./lib/kube.ts";
import { ObserverThread } from "./lib/observer-thread.ts";
import { clockTicksPerSecond, ProcessTreeSampler } from "./lib/procs.ts";
import { counterIncrease, gaugeAboveBaseline, histogramQuantile, parsePromText, type Sample } from "./lib/prom.ts";
import {
  ADMIN_KUBECONFIG,
  createWorkerNamespace,
  deleteNamespace,
  retargetKubeconfig,
  sandboxRunning,
  sandboxUp,
  startDedicatedApiserver,
  WORKER_RESOURCES,
  WORKER_RULES,
} from "./lib/sandbox.ts";
import { summarize } from "./lib/stats.ts";
import { colorWanted } from "./lib/table.ts";
import { ensureWorkerBinary, spawnWorker, WORKER_BINARY, type WorkerProcess, writeWorkerConfig } from "./lib/worker.ts";
import { createKeptJobs } from "./lib/kept-jobs.ts";
import { loadConfig } from "../src/config/load.ts";

const FLAGS: FlagDefs = {
  tasks: { kind: "int", help: "tasks to run (default 100)" },
  concurrency: { kind: "int", placeholder: "C", help: "tasks in flight at once = the worker's max_concurrent_tasks (default 50)" },
  "task-seconds": { kind: "int", placeholder: "S", help: "how long each task's container runs: image x:sleep-S (default 2)" },
  "worker-cmd": { kind: "string", placeholder: "CMD", help: "worker to measure, run via sh -c (default: the compiled dist/oz-worker)" },
  "kept-jobs": {
    kind: "int",
    placeholder: "K",
    help: "first create K finished Jobs with pods of the worker (cleanup off) and report its RSS once its cache holds them (default 0)",
  },
  "env-vars": {
    kind: "int",
    placeholder: "K",
    help: "give each task K env_vars (distinct values): the worker keeps them in a per-task Secret and redacts them from its log (default 0)",
  },
  "watch-floor": {
    kind: "string",
    placeholder: "MODE",
    help: "also run a process that only reads the worker's two watches during the run (receive: bytes discarded; parse: split, parse and slim as the worker does) and report its CPU as a floor",
  },
  json: { kind: "string", placeholder: "FILE", help: "also write the figures as JSON to FILE" },
  "api-attribution": {
    kind: "string",
    placeholder: "MODE",
    help: "dedicated (default): the worker gets its own kube-apiserver; shared: filter the sandbox apiserver's counters",
  },
  help: { kind: "boolean", help: "show this help" },
};

const SERVICE_ACCOUNT = "bench-worker";
const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

function defaultWorkerCmd(): string {
  return `exec '${WORKER_BINARY}' run --config-file "$OZ_BENCH_CONFIG" --api-key "$WARP_API_KEY" --web-socket-url "$OZ_BENCH_WS_URL" --log-format json --health-addr 127.0.0.1:0`;
}

function tail(path: string, lines = 25): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function main(): Promise<number> {
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2), FLAGS);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n\n${usageText("scripts/bench", SUMMARY, FLAGS)}`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(usageText("scripts/bench", SUMMARY, FLAGS));
    return 0;
  }
  const tasks = (flags.tasks as number | undefined) ?? 100;
  const concurrency = (flags.concurrency as number | undefined) ?? 50;
  const taskSeconds = (flags["task-seconds"] as number | undefined) ?? 2;
  const attribution = (flags["api-attribution"] as string | undefined) ?? "dedicated";
  const keptJobs = (flags["kept-jobs"] as number | undefined) ?? 0;
  const envVars = (flags["env-vars"] as number | undefined) ?? 0;
  const jsonFile = flags.json as string | undefined;
  if (tasks < 1 || concurrency < 1 || taskSeconds < 0 || keptJobs < 0 || envVars < 0) {
    process.stderr.write("bench: --tasks and --concurrency must be >= 1, --task-seconds, --kept-jobs and --env-vars whole numbers >= 0\n");
    return 2;
  }
  if (attribution !== "dedicated" && attribution !== "shared") {
    process.stderr.write("bench: --api-attribution is dedicated or shared\n");
    return 2;
  }
  const watchFloor = flags["watch-floor"] as string | undefined;
  if (watchFloor !== undefined && watchFloor !== "receive" && watchFloor !== "parse") {
    process.stderr.write("bench: --watch-floor is receive or parse\n");
    return 2;
  }
  if (watchFloor !== undefined && attribution === "shared") {
    process.stderr.write("bench: --watch-floor needs --api-attribution dedicated (on a shared apiserver its watches would count as the worker's)\n");
    return 2;
  }
  const workerCmd = (flags["worker-cmd"] as string | undefined) ?? defaultWorkerCmd();

  const cleanup = new Cleanup(say);
  const stopping = new AbortController();
  cleanup.onSignals(() => stopping.abort());
  try {
    return await bench({ tasks, concurrency, taskSeconds, keptJobs, envVars, attribution, jsonFile, workerCmd, watchFloor, defaultWorker: flags["worker-cmd"] === undefined }, cleanup, stopping.signal);
  } finally {
    await cleanup.run();
  }
}

/**
 * Starts scripts/lib/watch-floor.ts (--watch-floor) with the worker binary's runtime flags;
 * resolves once its two watches are open. `stop` ends it and returns what it measured.
 */
async function startWatchFloor(mode: "receive" | "parse", kubeconfig: string, namespace: string, cleanup: Cleanup): Promise<{ stop(): Promise<WatchFloor | null> }> {
  const script = join(import.meta.dir, "lib/watch-floor.ts");
  const proc = Bun.spawn([process.execPath, "--smol", "--experimental-http2-fetch", script, mode, kubeconfig, namespace], { stdout: "pipe", stderr: "inherit" });
  cleanup.add("stop the watch floor", () => proc.kill("SIGKILL"));
  let out = "";
  const drained = (async () => {
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
  })();
  const deadline = nowMs() + 30_000;
  while (!out.includes('"open":true')) {
    if (proc.exitCode !== null || nowMs() > deadline) throw new Error(`the watch floor (${script}) did not open its watches: ${out.trim() || `exit ${proc.exitCode}`}`);
    await Bun.sleep(50);
  }
  say(`watch floor (${mode}) reading the worker's two watches (pid ${proc.pid})`);
  return {
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
      await drained;
      const last = out.trim().split("\n").pop() ?? "";
      try {
        const r = JSON.parse(last) as { cpu_seconds: number; events: number; bytes: number };
        return { mode, cpu_seconds: r.cpu_seconds, events: r.events, megabytes: r.bytes / 1e6 };
      } catch {
        say(`  the watch floor printed no figures: ${last}`);
        return null;
      }
    },
  };
}

/** K env_vars with values like tokens, distinct per task (each is a secret the worker redacts). */
function benchEnvVars(k: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < k; i++) out[`BENCH_SECRET_${i}`] = `bench-${crypto.randomUUID()}`;
  return out;
}

const SUMMARY = `Runs N tasks (image x:sleep-S) through the local dispatch server and a worker on the
sandbox, keeping C in flight, and prints latency, throughput, API requests per task,
watch connections and the worker's memory and CPU. See docs/bench.md.`;

interface Options {
  tasks: number;
  concurrency: number;
  taskSeconds: number;
  keptJobs: number;
  envVars: number;
  attribution: "dedicated" | "shared";
  jsonFile: string | undefined;
  workerCmd: string;
  watchFloor: "receive" | "parse" | undefined;
  defaultWorker: boolean;
}

async function bench(o: Options, cleanup: Cleanup, stop: AbortSignal): Promise<number> {
  const started = nowMs();
  const workDir = mkdtempSync(join(tmpdir(), "oz-bench-"));
  say(
    `N=${o.tasks} tasks, C=${o.concurrency} in flight, x:sleep-${o.taskSeconds}${o.keptJobs > 0 ? `, ${o.keptJobs} kept Jobs` : ""}${o.envVars > 0 ? `, ${o.envVars} env_vars per task` : ""}; files in ${workDir}`,
  );

  // The sandbox is shared (tests, other runs): the benchmark starts it when needed but never stops it.
  if (!(await sandboxRunning())) {
    say("starting the sandbox (scripts/sandbox up); it stays up afterwards (scripts/sandbox down stops it)");
    await sandboxUp();
  }
  if (o.defaultWorker) await ensureWorkerBinary(say);
  const admin = Kube.fromKubeconfig(ADMIN_KUBECONFIG);

  const rand = crypto.randomUUID().slice(0, 8);
  const namespace = `oz-bench-${rand}`;
  const workerId = `bench-${rand}`;
  say(`namespace ${namespace}, ServiceAccount ${SERVICE_ACCOUNT} with the worker's Role`);
  cleanup.add(`delete namespace ${namespace}`, () => deleteNamespace(admin, namespace));
  const saKubeconfig = await createWorkerNamespace(admin, namespace, SERVICE_ACCOUNT, { "oz-worker-bench": "true" });
  const username = `system:serviceaccount:${namespace}:${SERVICE_ACCOUNT}`;

  let metricsKube = admin;
  let workerKubeconfig = saKubeconfig;
  let auditLog: string | undefined;
  if (o.attribution === "dedicated") {
    say("starting a dedicated kube-apiserver for the worker (same etcd and certificates)");
    const api = await startDedicatedApiserver(join(workDir, "apiserver"), admin);
    cleanup.add("stop the dedicated kube-apiserver", () => api.stop());
    metricsKube = admin.withServer(api.url);
    workerKubeconfig = retargetKubeconfig(saKubeconfig, api.url, join(workDir, "worker.kubeconfig"));
    auditLog = api.auditLog;
    say(`  ${api.url} (pid ${api.pid}, log ${api.logFile})`);
  }
  const metrics = async () => parsePromText(await metricsKube.text("/metrics", 15_000), ["apiserver_request_total", "apiserver_longrunning_requests", "apiserver_request_duration_seconds_bucket"]);

  const apiKey = `bench-${crypto.randomUUID()}`;
  const dispatch = await Dispatch.start(apiKey);
  cleanup.add("stop the dispatch server", () => dispatch.stop());
  say(`dispatch server ${dispatch.url}`);

  // The harness watches Jobs and Pods through the same apiserver as the worker,
  // from a thread of its own (see observer-thread.ts).
  const observer = await ObserverThread.start(metricsKube.target, namespace);
  cleanup.add("stop the harness watches", () => observer.stop());

  const watchFilter = (l: Record<string, string>) => l.verb === "WATCH" && l.scope !== "cluster";
  const baseline = await metrics();

  const configFile = writeWorkerConfig(join(workDir, "config.yaml"), {
    workerId,
    kubeconfig: workerKubeconfig,
    namespace,
    maxConcurrentTasks: o.concurrency,
    // Kept Jobs are those of a worker that deletes nothing.
    ...(o.keptJobs > 0 ? { cleanup: false } : {}),
  });
  const logFile = join(workDir, "worker.log");
  const env = {
    WARP_API_KEY: apiKey,
    OZ_BENCH_WS_URL: dispatch.wsUrl,
    OZ_BENCH_KUBECONFIG: workerKubeconfig,
    OZ_BENCH_NAMESPACE: namespace,
    OZ_BENCH_WORKER_ID: workerId,
    OZ_BENCH_CONFIG: configFile,
    KUBECONFIG: workerKubeconfig,
    // No metrics exporter unless the caller chose one: the default (OTLP) has no collector here.
    OTEL_METRICS_EXPORTER: process.env.OTEL_METRICS_EXPORTER ?? "none",
  };
  const failNow = (why: string, log = logFile): never => {
    throw new Error(`${why}\nlast lines of ${log}:\n${tail(log)}`);
  };
  const connected = async () => (await dispatch.workers()).some((w) => w.worker_id === workerId);
  // The worker connects to Oz only once its cache of Jobs and Pods is synced (and its startup preflight passed).
  const waitConnected = async (w: WorkerProcess, log: string): Promise<boolean> => {
    const deadline = nowMs() + 120_000;
    for (;;) {
      if (stop.aborted) return false;
      if (w.exitCode !== null) failNow(`the worker exited with code ${w.exitCode} before connecting`, log);
      if (await connected()) return true;
      if (nowMs() > deadline) failNow("the worker did not connect to the dispatch server within 120 s", log);
      await Bun.sleep(100);
    }
  };
  // Resident memory once the worker has settled: the median of samples over 2 s.
  const settledRss = async (s: ProcessTreeSampler): Promise<number> => {
    const mb: number[] = [];
    for (let i = 0; i < 10; i++) {
      await Bun.sleep(200);
      mb.push(s.currentRssMb());
    }
    return mb.sort((a, b) => a - b)[5]!;
  };

  let idleRssMb: number | null = null;
  let rssAfterSyncMb: number | null = null;
  if (o.keptJobs > 0) {
    // Idle first, in the still empty namespace; then the kept Jobs, then the measured worker.
    const idleLog = join(workDir, "worker-idle.log");
    say(`idle worker (for the idle RSS): log ${idleLog}`);
    const idle = spawnWorker({ shell: o.workerCmd }, env, idleLog);
    cleanup.add("stop the idle worker", async () => {
      await idle.stop();
    });
    const idleSampler = new ProcessTreeSampler(idle.pid, clockTicksPerSecond());
    idleSampler.start(100);
    if (!(await waitConnected(idle, idleLog))) return 130;
    idleRssMb = await settledRss(idleSampler);
    idleSampler.stop();
    await idle.stop();
    const gone = nowMs() + 30_000;
    while ((await connected()) && nowMs() < gone) await Bun.sleep(100);
    say(`  idle RSS ${idleRssMb.toFixed(1)} MB; creating ${o.keptJobs} finished Jobs with pods of the worker`);
    const config = await loadConfig({ flags: { configFile }, env: { WARP_API_KEY: apiKey } });
    const kept = await createKeptJobs(admin, namespace, config, o.keptJobs, { say, signal: stop });
    if (stop.aborted) return 130;
    say(`  ${o.keptJobs} kept Jobs with their pods created in ${kept.seconds.toFixed(0)} s`);
  }

  say(`worker: sh -c ${JSON.stringify(o.workerCmd)}`);
  say(`  log ${logFile}`);
  const workerStart = nowMs();
  const worker = spawnWorker({ shell: o.workerCmd }, env, logFile);
  cleanup.add("stop the worker", async () => {
    await worker.stop();
  });
  const apiPort = Number(new URL(/^\s*server:\s*(\S+)/m.exec(readFileSync(workerKubeconfig, "utf8"))?.[1] ?? "https://x:443").port || 443);
  const sampler = new ProcessTreeSampler(worker.pid, clockTicksPerSecond(), apiPort);
  sampler.start(100);

  // Peak watch connections: sampled all along, relative to before the worker started.
  let peakWatches = 0;
  let watchSamples = 0;
  let sampling = true;
  const watchSampler = (async () => {
    while (sampling) {
      try {
        const now = await metrics();
        peakWatches = Math.max(peakWatches, gaugeAboveBaseline(baseline, now, "apiserver_longrunning_requests", watchFilter));
        watchSamples++;
      } catch {
        // a missed sample is fine; the next one comes in a second
      }
      await Bun.sleep(1000);
    }
  })();

  if (!(await waitConnected(worker, logFile))) return 130;
  say(`worker connected after ${((nowMs() - workerStart) / 1000).toFixed(1)} s; settling 2 s`);
  const settled = await settledRss(sampler);
  if (o.keptJobs > 0) {
    rssAfterSyncMb = settled;
    say(`  RSS with ${o.keptJobs} kept Jobs synced: ${settled.toFixed(1)} MB (idle ${idleRssMb?.toFixed(1)} MB)`);
  } else {
    idleRssMb = settled;
    say(`  idle RSS ${settled.toFixed(1)} MB`);
  }
  // On the sandbox's own apiserver, as the harness's watches: the worker's apiserver and identity count only the worker.
  const floor = o.watchFloor ? await startWatchFloor(o.watchFloor, ADMIN_KUBECONFIG, namespace, cleanup) : undefined;
  sampler.sample();
  const cpuBeforeRun = sampler.result().cpuSeconds;
  const before = await metrics();
  const auditOffset = auditLog && existsSync(auditLog) ? statSync(auditLog).size : 0;

  // Closed loop: at most C tasks submitted and unfinished at any time.
  const image = `x:sleep-${o.taskSeconds}`;
  const ids: string[] = [];
  const inFlight = new Set<string>();
  let finished = 0;
  const runDeadline = nowMs() + 60_000 + Math.ceil(o.tasks / o.concurrency) * (o.taskSeconds + 60) * 1000;
  let lastProgress = nowMs();
  let sandboxLost = 0;
  const runStart = nowMs();
  while (finished < o.tasks) {
    if (stop.aborted) return 130;
    if (worker.exitCode !== null) failNow(`the worker exited with code ${worker.exitCode} during the run`);
    if (nowMs() > runDeadline) failNow(`the run did not finish before its deadline (${finished}/${o.tasks} tasks finished)`);
    const room = Math.min(o.concurrency - inFlight.size, o.tasks - ids.length);
    if (room > 0) {
      const batch = await Promise.all(
        Array.from({ length: room }, (_, i) =>
          dispatch.createTask({ docker_image: image, task: { title: `bench task ${ids.length + i + 1}` }, ...(o.envVars > 0 ? { env_vars: benchEnvVars(o.envVars) } : {}) }),
        ),
      );
      for (const r of batch) {
        ids.push(r.task_id);
        inFlight.add(r.task_id);
      }
    }
    await Bun.sleep(50);
    // Tasks the worker holds are live; look up only the others.
    const held = new Set((await dispatch.workers()).find((w) => w.worker_id === workerId)?.tasks ?? []);
    const unknown = [...inFlight].filter((id) => !held.has(id));
    const records = await Promise.all(unknown.map((id) => dispatch.getTask(id)));
    for (const r of records) {
      if (r.state === "succeeded" || r.state === "failed" || r.state === "cancelled") {
        inFlight.delete(r.task_id);
        finished++;
      }
    }
    if (nowMs() - lastProgress > 5_000) {
      lastProgress = nowMs();
      // A sandbox restarted by someone else (new etcd, new certificates) would stall the run until its deadline.
      const alive = await admin.json("GET", `/api/v1/namespaces/${namespace}`, { timeoutMs: 5_000 }).then(
        () => true,
        () => false,
      );
      if (!alive) {
        sandboxLost++;
        if (sandboxLost >= 2) failNow(`namespace ${namespace} is gone or the sandbox apiserver stopped answering: was the sandbox restarted during the run?`);
      } else sandboxLost = 0;
      say(`  ${finished}/${o.tasks} finished, ${inFlight.size} in flight, ${((nowMs() - runStart) / 1000).toFixed(0)} s`);
    }
  }
  say(`all ${o.tasks} tasks finished in ${((nowMs() - runStart) / 1000).toFixed(1)} s`);

  // The worker cleans up after it reports; close the window once its request counts stop moving.
  const workerTotal = (snap: Sample[]) => counterIncrease(before, snap, "apiserver_request_total", (l) => isWorkerSeries(l, WORKER_RESOURCES)).reduce((n, x) => n + x.value, 0);
  let after = await metrics();
  const quietDeadline = nowMs() + 5_000;
  while (nowMs() < quietDeadline) {
    await Bun.sleep(500);
    const next = await metrics();
    const settled = workerTotal(next) === workerTotal(after);
    after = next;
    if (settled) break;
  }
  const auditText = auditLog && existsSync(auditLog) ? readFileSync(auditLog).subarray(auditOffset).toString("utf8") : "";
  sampling = false;
  await watchSampler;
  const usage = sampler.stop();
  const floorUsage = floor ? await floor.stop() : null;

  // The harness's pod watch may trail the worker's by a moment.
  const byId = new Map<string, TaskRecord>();
  for (const r of await dispatch.listTasks()) byId.set(r.task_id, r);
  const records = ids.map((id) => byId.get(id)!).filter(Boolean);
  let seen = await observer.collect();
  const waitPods = nowMs() + 3_000;
  while (nowMs() < waitPods && records.some((r) => !seen.podTerminalAt.has(r.task_id) && taskTiming(r).reportedAt !== undefined)) {
    await Bun.sleep(100);
    seen = await observer.collect();
  }

  say("stopping the worker (SIGTERM)");
  const exit = await worker.stop();
  say(`  worker exited with code ${exit}`);

  // Every watch the worker held over its whole life, from the audit log (exact), next to the sampled gauge.
  const auditPeak = auditLog && existsSync(auditLog) ? auditPeakWatches(readFileSync(auditLog, "utf8").split("\n"), username) : undefined;
  // Dedicated: every namespaced request on the worker's resources (denied ones too: only the worker
  // and the apiserver's cluster-scoped loopback informers talk to that apiserver). Shared: only what
  // the worker's Role allows, which still includes other clients' requests of those kinds.
  const workerRequests: Sample[] = counterIncrease(before, after, "apiserver_request_total", (l) =>
    o.attribution === "dedicated" ? isWorkerSeries(l, WORKER_RESOURCES) : isWorkerSeries(l, WORKER_RESOURCES) && roleAllows(l, WORKER_RULES),
  );
  const { result, details } = computeBench({
    tasks: o.tasks,
    concurrency: o.concurrency,
    taskSeconds: o.taskSeconds,
    workerCmd: o.workerCmd,
    records,
    jobSeenAt: seen.jobSeenAt,
    podTerminalAt: seen.podTerminalAt,
    workerRequests,
    peakWatchConnections: watchSamples > 0 || auditPeak !== undefined ? Math.max(peakWatches, auditPeak ?? 0) : null,
    peakApiserverConnections: usage.samples > 0 ? usage.peakConnections : null,
    workerPeakRssMb: usage.samples > 0 ? usage.peakRssMb : null,
    workerPeakRssFileMb: usage.samples > 0 ? usage.peakRssFileMb : null,
    workerIdleRssMb: idleRssMb,
    keptJobs: o.keptJobs,
    workerRssAfterSyncMb: rssAfterSyncMb,
    workerCpuSeconds: usage.samples > 0 ? usage.cpuSeconds : null,
    workerCpuSecondsBeforeRun: usage.samples > 0 ? cpuBeforeRun : null,
    watchFloor: floorUsage,
  });

  const out = process.stdout;
  out.write("\n");
  for (const line of benchTable(result, details, colorWanted(Boolean(out.isTTY), process.env))) out.write(`${line}\n`);
  out.write("\n");
  const notes: string[] = [];
  notes.push(`tasks: ${Object.entries(details.states).map(([k, v]) => `${v} ${k}`).join(", ")}; ${details.rejections} rejection(s) by the worker`);
  // For reference: how long the Job controller takes to mark a Job Complete/Failed after its pod
  // ended. A worker that waits for that condition before reporting inherits this delay.
  const jobLag = records.flatMap((r) => {
    const pod = seen.podTerminalAt.get(r.task_id);
    const job = seen.jobTerminalAt.get(r.task_id);
    return pod !== undefined && job !== undefined ? [job - pod] : [];
  });
  if (jobLag.length > 0) {
    const p = summarize(jobLag);
    notes.push(`for reference: pod terminal -> Job Complete/Failed condition (the Job controller), ms: ${p.p50} / ${p.p95} / ${p.p99} (${jobLag.length} Jobs)`);
  }
  // Where "assignment -> Job created" goes, cut at the worker's own log lines (JSON format only):
  // with the API server's own time below, what of it is the worker's shows.
  const assignedAt = new Map<string, number>();
  for (const r of records) {
    const at = taskTiming(r).assignedAt;
    if (at !== undefined) assignedAt.set(r.task_id, at);
  }
  const workerLog = existsSync(logFile) ? workerCreateLog(readFileSync(logFile, "utf8").split("\n")) : new Map<string, never>();
  const segments = createSegments(assignedAt, workerLog, seen.jobSeenAt);
  if (segments.length > 0) {
    const line = (rows: typeof segments) => {
      const f = (k: keyof (typeof segments)[number]) => {
        const p = summarize(rows.map((r) => r[k]), 0);
        return `${p.p50} / ${p.p95} / ${p.p99}`;
      };
      return `delivery (sent -> worker claimed) ${f("delivery")}; worker (claimed -> create answered) ${f("worker")}; observed (answered -> harness watch) ${f("observed")}`;
    };
    notes.push(`assignment -> Job created by segment, ms p50 / p95 / p99, all ${segments.length} tasks: ${line(segments)}`);
    const burst = segments.slice(0, o.concurrency);
    notes.push(`  the first ${burst.length} claimed (the burst): ${line(burst)}`);
  }
  if (details.missingCreate || details.missingReport) notes.push(`latency samples missing: ${details.missingCreate} create, ${details.missingReport} report`);
  notes.push(
    o.attribution === "dedicated"
      ? `API requests: increase of apiserver_request_total on the worker's dedicated kube-apiserver (${Math.round(details.requestTotal ?? 0)} requests), jobs/pods/events/secrets, namespaced`
      : "API requests: increase of apiserver_request_total on the shared sandbox apiserver, namespaced requests the worker's Role allows; approximate: includes other clients' requests of those kinds (the garbage collector's GETs, concurrent tests)",
  );
  if (o.attribution === "dedicated") {
    // The API server's own time for the worker's creates: what of the creation latency is its own.
    const postJobs = counterIncrease(before, after, "apiserver_request_duration_seconds_bucket", (l) => l.verb === "POST" && l.resource === "jobs" && l.dry_run === "");
    const buckets = new Map<number, number>();
    for (const b of postJobs) {
      const le = b.labels.le === "+Inf" ? Infinity : Number(b.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + b.value);
    }
    const list = [...buckets].map(([le, count]) => ({ le, count }));
    const ms = (q: number) => {
      const v = histogramQuantile(q, list);
      return v === undefined ? "-" : (v * 1000).toFixed(0);
    };
    notes.push(
      `API server's own time for POST jobs (apiserver_request_duration_seconds, ${buckets.get(Infinity) ?? 0} requests), ms p50 / p95 / p99: ${ms(0.5)} / ${ms(0.95)} / ${ms(0.99)}`,
    );
  }
  if (auditLog) {
    const audit = auditCounts(auditText.split("\n"), username);
    const auditResource = Object.entries(audit).filter(([k]) => WORKER_RESOURCES.has((k.split(" ")[1] ?? "").split("/")[0]!));
    const auditTotal = auditResource.reduce((n, [, v]) => n + v, 0);
    const other = Object.entries(audit).filter(([k]) => !WORKER_RESOURCES.has((k.split(" ")[1] ?? "").split("/")[0]!));
    const same = auditTotal === details.requestTotal;
    notes.push(`audit log cross-check (${username}): ${auditTotal} requests on those resources${same ? ", same as the metrics" : `, metrics say ${details.requestTotal}`}`);
    notes.push(`watch connections: peak ${peakWatches} sampled from apiserver_longrunning_requests each second, ${auditPeak ?? "-"} from the audit log; the larger is reported`);
    if (other.length) notes.push(`  other requests by the worker in the window: ${other.map(([k, v]) => `${k} ${v}`).join(", ")}`);
  }
  if ((details.requestTotal ?? 0) === 0) notes.push("warning: no worker API requests seen; does the worker use OZ_BENCH_KUBECONFIG / OZ_BENCH_CONFIG?");
  notes.push(`worker log: ${logFile}`);
  for (const n of notes) out.write(`${n}\n`);
  if (o.jsonFile) {
    writeFileSync(o.jsonFile, resultJson(result));
    out.write(`wrote ${o.jsonFile}\n`);
  }
  const allSucceeded = (details.states.succeeded ?? 0) === o.tasks;
  if (!allSucceeded) say("not every task succeeded; the figures above cover what finished");
  return allSucceeded ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    say(`error: ${(err as Error).message}`);
    process.exit(1);
  },
);
