// `oz-worker run` put together: cluster client, preflight gate, telemetry, the shared task
// watch, the task loop and the Oz connection, and a shutdown that leaves every task Job in
// place (the Job is the durable unit; a restarted worker re-adopts it).
import { shortHash } from "../core/naming.ts";
import type { WorkerConfig } from "../core/types.ts";
import { ClusterUnreachableError } from "../kube/api-errors.ts";
import { type KubeClient, loadKubeClient } from "../kube/client.ts";
import { KubeconfigError } from "../kube/kubeconfig.ts";
import { TaskJobs } from "../kube/jobs.ts";
import { readContainerLogs } from "../kube/logs.ts";
import { TaskWatch } from "../kube/task-watch.ts";
import { OzConnection, type ReconnectReason } from "../oz/connection.ts";
import { parseServerMessage, taskClaimed, taskFailed } from "../oz/protocol.ts";
import { startHealthServer, type HealthServer } from "../telemetry/health.ts";
import { createLogger, serverText, type LogFormat, type Logger } from "../telemetry/log.ts";
import { secrets } from "../telemetry/secrets.ts";
import type { ReconnectLabel } from "../telemetry/metric-contract.ts";
import { createMetrics } from "../telemetry/metrics.ts";
import { TaskLoop } from "./task-loop.ts";
import { describeError } from "../util/errors.ts";
import { collectGarbage, releaseExecutablePages, releaseFreeMemory } from "../runtime.ts";

export interface WorkerOptions {
  config: WorkerConfig;
  version: string;
  logFormat: LogFormat;
  health: { host: string | undefined; port: number };
  skipPreflight: boolean;
  /** The startup gate: resolves true when the cluster will run tasks. */
  preflight(config: WorkerConfig, logger: Logger, signal: AbortSignal, kube: KubeClient): Promise<boolean>;
  /** Resolves when the process is asked to stop (SIGTERM / SIGINT). */
  stopSignal: Promise<string>;
}

/** Exit codes, as the CLI documents them. */
const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_UNREACHABLE = 3;

/** Everything after the stop signal must fit in this, well inside Kubernetes' 30 s grace. */
const SHUTDOWN_BUDGET_MS = 8_000;
/** The part of the budget kept for closing the connection, the watch and the servers. */
const SHUTDOWN_CLOSE_MS = 2_500;

// The connection's reconnect causes, named as the Go worker's metric labels.
const RECONNECT_LABEL: Record<ReconnectReason, ReconnectLabel> = {
  dial_error: "dial_failed",
  read_error: "read_error",
  keepalive_timeout: "keepalive_timeout",
  server_closed: "remote_close",
  write_timeout: "write_error",
};

export async function runWorker(opts: WorkerOptions): Promise<number> {
  const { config } = opts;
  const k8s = config.kubernetes;
  const logger = createLogger({ level: config.logLevel, format: opts.logFormat }).child({ worker_id: config.workerId });
  if (config.apiKey) secrets.register(config.apiKey);
  // -e / env values go into every task container; they are usually credentials too.
  for (const e of config.env) secrets.register(e.value);

  let kube: KubeClient;
  try {
    kube = loadKubeClient(k8s.kubeconfig ? { kubeconfig: k8s.kubeconfig } : {});
    const version = await kube.checkReachable();
    logger.info("connected to the Kubernetes API server", {
      server: kube.server,
      kubeconfig: kube.source,
      version: version.gitVersion,
      namespace: k8s.namespace,
    });
  } catch (err) {
    if (err instanceof KubeconfigError) {
      logger.error(err.message, { kubeconfig: err.source });
      return EXIT_USAGE;
    }
    if (err instanceof ClusterUnreachableError) {
      logger.error(err.message, { kubeconfig: err.source, server: err.server });
      return EXIT_UNREACHABLE;
    }
    throw err;
  }

  const stopping = new AbortController();
  void opts.stopSignal.then((sig) => {
    logger.info("stop requested; no new tasks are taken and running task Jobs are left in place", { signal: sig });
    stopping.abort();
  });

  // Metrics and the health endpoints come up before preflight: the primed series are visible
  // from the start, the liveness probe is answered while preflight runs, and /readyz says
  // which part is still missing.
  const metrics = await createMetrics({
    version: opts.version,
    workerId: config.workerId,
    maxConcurrentTasks: config.maxConcurrentTasks,
    logger,
  });

  let preflightPassed = false;
  let watch: TaskWatch | undefined;
  let connection: OzConnection | undefined;
  let health: HealthServer | undefined;
  let loop: TaskLoop | undefined;
  try {
    health = await startHealthServer({
      addr: `${opts.health.host ?? ""}:${opts.health.port}`,
      logger,
      readiness: () => {
        const connected = connection?.connected === true;
        const synced = watch?.isSynced === true;
        const checks = {
          preflight: {
            ok: preflightPassed,
            detail: preflightPassed ? (opts.skipPreflight ? "skipped (--skip-preflight)" : "passed") : "running",
          },
          task_cache: { ok: synced, detail: synced ? "synced" : "Jobs and Pods not listed yet" },
          oz_connection: { ok: connected, detail: connected ? "connected" : "not connected to Oz" },
          accepting_tasks: {
            ok: !stopping.signal.aborted,
            detail: stopping.signal.aborted ? "shutting down" : "accepting",
          },
        };
        return { ready: Object.values(checks).every((c) => c.ok), checks };
      },
    });
    logger.info("health endpoints listening", { url: health.url });
  } catch (err) {
    logger.error(`cannot serve the health endpoints: ${describeError(err)}`);
    await metrics.shutdown();
    return EXIT_USAGE;
  }

  if (opts.skipPreflight) {
    logger.warn("preflight skipped (--skip-preflight): policy or permission problems will surface only when tasks run");
    preflightPassed = true;
  } else {
    const ok = await opts.preflight(config, logger, stopping.signal, kube);
    if (stopping.signal.aborted) return shutdown(EXIT_OK);
    if (!ok) {
      logger.error("preflight failed; the worker does not accept tasks until it passes (see the checks above)");
      return shutdown(EXIT_FAILURE);
    }
    preflightPassed = true;
  }

  const taskWatch = (watch = new TaskWatch({
    client: kube,
    namespace: k8s.namespace,
    workerHash: shortHash(config.workerId),
    unschedulableTimeoutMs: k8s.unschedulableTimeoutMs,
    logger,
  }).start());

  const synced = await Promise.race([taskWatch.synced.then(() => true), waitAbort(stopping.signal).then(() => false)]);
  if (!synced) return shutdown(EXIT_OK);

  const jobs = new TaskJobs(kube, k8s.namespace);
  let conn!: OzConnection;
  loop = new TaskLoop({
    config,
    observer: taskWatch,
    cluster: {
      createTaskJob: (job, secret) => jobs.createTaskJob(job, secret),
      deleteJob: (name, o) => jobs.deleteJob(name, o),
      markReported: (name, outcome, o) => jobs.markReported(name, outcome, o),
      suspendJob: (name, outcome) => jobs.suspendJob(name, outcome),
      readLogs: (pod, container) => readContainerLogs(kube, k8s.namespace, pod, container, { secrets }),
      resumeHeldJob: (job) => jobs.resumeHeldJob(job),
      readTaskSecretValues: (job) => jobs.readTaskSecretValues(job),
    },
    send: (message) => conn.sendAndWait(message.type, message.data as Record<string, unknown>),
    metrics,
    logger,
    secrets,
  });
  const tasks = loop;

  let startupMemoryReleased = false;
  conn = connection = new OzConnection({
    url: config.webSocketUrl,
    apiKey: config.apiKey ?? "",
    workerId: config.workerId,
    logger,
    onMessage: (type, data) => dispatch(type, data),
    onConnectedChange: (connected) => {
      metrics.setConnected(connected);
      if (connected) {
        logger.info("Connected to Oz. Listening for tasks", { url: redactQuery(config.webSocketUrl) });
        if (!startupMemoryReleased) {
          startupMemoryReleased = true;
          releaseStartupMemory(logger);
        }
      } else if (stopping.signal.aborted) logger.info("disconnected from Oz: the worker is stopping");
      else logger.warn("disconnected from Oz; reconnecting (results are queued meanwhile)");
    },
    onReconnect: (reason) => metrics.websocketReconnect(RECONNECT_LABEL[reason]),
  });

  function dispatch(type: string, data: Record<string, unknown>): void {
    const parsed = parseServerMessage(type, data);
    if (!parsed.ok) {
      const executionId = typeof data.execution_id === "string" && data.execution_id ? data.execution_id : parsed.task_id;
      logger.error("invalid message from Oz ignored", {
        type: serverText(type),
        error: serverText(parsed.error, 1_000),
        task_id: parsed.task_id === undefined ? undefined : serverText(parsed.task_id),
        execution_id: executionId === undefined ? undefined : serverText(executionId),
      });
      if (type === "task_assignment" && parsed.task_id) {
        // Tell Oz at once rather than leave the task claimed by nobody. Claim first: Oz moves
        // a task to a later state only once it is claimed (the Go worker claims first too).
        metrics.taskRejected("invalid_assignment");
        const message = `invalid task assignment, no Job was created: ${parsed.error}`;
        conn.send("task_claimed", taskClaimed(parsed.task_id, config.workerId).data);
        conn.send("task_failed", taskFailed(parsed.task_id, message, parsed.failure_reason ?? "unknown").data);
      }
      return;
    }
    const message = parsed.message;
    if (message.type === "task_assignment") tasks.handleAssignment(message.data);
    else if (message.type === "task_cancellation") tasks.handleCancellation(message.data.task_id);
  }

  // After the connection exists (a re-adopted Job that already finished reports at once: the
  // report waits in the outbox until the connection is up), before it starts.
  const readopted = tasks.reattach();
  if (readopted > 0) logger.info("re-adopted running task Jobs from before a restart", { count: readopted });

  conn.start();
  await waitAbort(stopping.signal);
  tasks.stopAccepting();
  return shutdown(EXIT_OK);

  /**
   * Ends within SHUTDOWN_BUDGET_MS whatever is pending: reports already under way get most of
   * it; then the connection, the watch and the servers are closed in any case (a report still
   * waiting leaves its Job unmarked, so the next worker reports it). The caller exits the
   * process (src/cli/main.ts), so nothing left pending keeps it alive.
   */
  async function shutdown(code: number): Promise<number> {
    const end = Date.now() + SHUTDOWN_BUDGET_MS;
    const left = () => Math.max(0, end - Date.now());
    const drained = await within(loop?.drain(), SHUTDOWN_BUDGET_MS - SHUTDOWN_CLOSE_MS);
    if (!drained) {
      logger.warn("reports still pending at the end of the shutdown budget; their Jobs are left unmarked and the next worker reports them", {
        budget_ms: SHUTDOWN_BUDGET_MS,
      });
    }
    await within(
      (async () => {
        // The socket closes cleanly (flushing what can still be sent) before the rest.
        await connection?.stop({ timeoutMs: Math.max(1, left() - 500) });
        await Promise.allSettled([watch?.close(), health?.close(), metrics.shutdown()]);
      })(),
      left(),
    );
    logger.info("stopped");
    return code;
  }
}

/** True when `work` settled within `ms`; false when the time ran out first. */
async function within(work: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([Promise.resolve(work).then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function waitAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** The URL without its query (worker_id is fine, but nothing else should leak into logs). */
function redactQuery(url: string): string {
  const i = url.indexOf("?");
  return i < 0 ? url : url.slice(0, i);
}

/**
 * Once, when the worker first reaches Oz: what starting up left behind goes back to the system
 * (the garbage of loading, preflight and the first list, then the executable's pages that
 * only startup ran; runtime.ts says how), so the resident set is the running worker's.
 */
function releaseStartupMemory(logger: Logger): void {
  const timer = setTimeout(() => {
    collectGarbage();
    releaseFreeMemory();
    void releaseExecutablePages().then((bytes) => {
      if (bytes !== undefined) logger.debug("released the executable's startup pages", { released_mb: Math.round((bytes / 1048576) * 10) / 10 });
    });
  }, 0);
  (timer as { unref?: () => void }).unref?.();
}
