// The task loop: assignment → claim → Job → outcome → report → cleanup, for every task of
// this worker. It owns no I/O of its own: the Oz connection, the Kubernetes calls, the shared
// watch and telemetry come in as ports, so the loop reads as the life of a task.
import type { V1Job, V1Pod, V1Secret } from "@kubernetes/client-node";
import { JobSpecError, buildTaskObjects } from "../core/job-spec.ts";
import { effectiveExecutionId, shortHash } from "../core/naming.ts";
import { decideOutcome, failurePhase, type FailedOutcome, type Outcome } from "../core/outcome.ts";
import type { FailureReason } from "../oz/failure-reasons.ts";
import { podsStillRun } from "../core/job-predicates.ts";
import type { WorkerConfig } from "../core/types.ts";
import type { CreateTaskJobResult, ReportedOutcome } from "../kube/jobs.ts";
import type { ContainerLogs } from "../kube/logs.ts";
import type { ExecutionSnapshot, SnapshotListener } from "../kube/task-watch.ts";
import {
  type TaskAssignment,
  taskCancelled,
  taskClaimed,
  taskCompleted,
  taskFailed,
  taskRejected,
} from "../oz/protocol.ts";
import { type Logger, serverText } from "../telemetry/log.ts";
import type { SecretRegistry } from "../telemetry/secrets.ts";
import type { WorkerMetrics } from "../telemetry/metrics.ts";
import { errorText } from "../util/errors.ts";
import { admit, isActive, type TaskState } from "./admission.ts";
import { classifyLeftJob, neverRanOutcome, registerAdoptedSecrets, reportedJobToDelete, resumeHeldJob } from "./recovery.ts";
import { CANCEL_DELETE_ATTEMPTS, DEFAULT_RETRY_DELAY_MS, Reporter, isNotFound, type Send } from "./reporting.ts";

export type { Send } from "./reporting.ts";

/** The Kubernetes operations the loop needs (src/kube/jobs.ts TaskJobs provides them). */
export interface TaskCluster {
  createTaskJob(job: V1Job, secret?: V1Secret): Promise<CreateTaskJobResult>;
  deleteJob(name: string, opts?: { propagation?: "Background" | "Foreground" }): Promise<boolean>;
  /** Records the reported outcome on the Job; `stopPods` also ends a still-active Job's pods. */
  markReported(name: string, outcome: ReportedOutcome, opts?: { stopPods?: boolean }): Promise<unknown>;
  /** Stops a Job's pods but keeps the Job (cancellation with cleanup off). */
  suspendJob(name: string, outcome: ReportedOutcome): Promise<unknown>;
  readLogs(pod: string, container: string): Promise<ContainerLogs>;
  /** Resumes a Job a stopped worker left suspended, unless its Secret was never created. */
  resumeHeldJob?(job: V1Job): Promise<"resumed" | "secret_missing">;
  /** The values of the task Secret a Job references, for log redaction after a restart. */
  readTaskSecretValues?(job: V1Job): Promise<string[]>;
}

/** The shared watch (src/kube/task-watch.ts TaskWatch). */
export interface TaskObserver {
  subscribe(executionHash: string, listener: SnapshotListener): () => void;
  snapshot(executionHash: string): ExecutionSnapshot | undefined;
  jobs(): V1Job[];
}

export interface TaskLoopOptions {
  config: WorkerConfig;
  cluster: TaskCluster;
  observer: TaskObserver;
  send: Send;
  metrics: Pick<WorkerMetrics, "taskStarted" | "taskFinished" | "taskRejected">;
  logger: Logger;
  secrets: Pick<SecretRegistry, "registerAll">;
  now?: () => number;
  /** First pause before recording a reported outcome again after a failure (doubles). Default 500 ms. */
  markRetryDelayMs?: number;
}

interface Task {
  taskId: string;
  executionId: string;
  executionHash: string;
  jobName?: string;
  startedAt: number;
  state: TaskState;
  log: Logger;
  cancelRequested: boolean;
  unsubscribe?: () => void;
  releaseSecrets: () => void;
  /** The Job never ran and never will (see #resumeHeld): once reported it is deleted. */
  deleteWhenReported?: boolean;
  /** Output about the task still being written (failed container logs); secrets wait for it. */
  secretsHeldBy?: Promise<unknown>;
  /** A re-adopted task's secret values being read back for redaction. */
  secretsLoaded?: Promise<void>;
  /** Its secrets could not be read back, so its container logs are not written. */
  withholdLogs?: boolean;
  /** Cancelled along with a newer run of its task: stopped and recorded, but Oz is answered once, for the newer run. */
  cancelQuietly?: boolean;
}

const FAILED_LOG_CONTAINER_LIMIT = 8;

export class TaskLoop {
  readonly #opts: TaskLoopOptions;
  readonly #now: () => number;
  /**
   * By execution: a follow-up run reuses the task_id with a new execution_id, and may arrive
   * while the previous run is still alive. Insertion order is assignment order.
   */
  readonly #tasks = new Map<string, Task>();
  #accepting = true;
  /** Reports and cleanups in flight, so shutdown and tests can wait for them. */
  readonly #pending = new Set<Promise<unknown>>();
  readonly #reporter: Reporter;
  readonly #retryDelayMs: number;

  constructor(options: TaskLoopOptions) {
    this.#opts = options;
    this.#now = options.now ?? Date.now;
    this.#retryDelayMs = options.markRetryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    const { cluster } = options;
    this.#reporter = new Reporter({
      send: options.send,
      markReported: (name, outcome, opts) => cluster.markReported(name, outcome, opts),
      retryDelayMs: this.#retryDelayMs,
      accepting: () => this.#accepting,
    });
  }

  /** Tasks counted against max_concurrent_tasks: those being created or running. */
  get activeCount(): number {
    let n = 0;
    // A finishing task's pod has ended (or is being stopped): its slot is free while its
    // report and cleanup complete, so a waiting assignment is not bounced for that.
    for (const t of this.#tasks.values()) if (isActive(t.state)) n++;
    return n;
  }

  /** After this, new assignments are rejected; running Jobs are left alone (they are durable). */
  stopAccepting(): void {
    this.#accepting = false;
  }

  /** Waits for reports and cleanups already under way. */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /**
   * Re-adopts this worker's Jobs found in the (synced) watch cache after a restart: every
   * unfinished or unreported one is watched again and its outcome reported once.
   */
  reattach(): number {
    let adopted = 0;
    for (const job of this.#opts.observer.jobs()) {
      const left = classifyLeftJob(job);
      if (left.kind === "skip") continue;
      if (left.kind === "reported") {
        // Only its cleanup is left.
        if (reportedJobToDelete(job, this.#opts.config.cleanup)) {
          this.#background(this.#opts.cluster.deleteJob(left.name, { propagation: "Background" }).catch(() => false));
        }
        continue;
      }
      if (this.#tasks.has(left.executionId)) continue;
      const task = this.#track(left.taskId, left.executionId, () => undefined);
      task.jobName = left.name;
      task.state = "running";
      if (left.createdAt !== undefined) task.startedAt = left.createdAt;
      task.log.info("re-adopted the task's Job after a restart", { job: left.name });
      task.secretsLoaded = this.#registerAdoptedSecrets(task, job);
      this.#watch(task);
      if (left.held) this.#background(this.#resumeHeld(task, job), task.log);
      adopted++;
    }
    return adopted;
  }

  handleAssignment(assignment: TaskAssignment): void {
    const taskId = assignment.task_id;
    const executionId = effectiveExecutionId(taskId, assignment.execution_id);
    const existing = this.#tasks.get(executionId);
    const admission = admit({
      existing: existing?.state,
      accepting: this.#accepting,
      activeCount: this.activeCount,
      maxConcurrentTasks: this.#opts.config.maxConcurrentTasks,
    });
    if (existing && admission.kind === "claim_again") {
      existing.log.info("assignment repeated for a task already running; claiming it again");
      void this.#reporter.send(taskClaimed(taskId, this.#opts.config.workerId), existing.log);
      return;
    }
    if (existing && admission.kind === "ignore") {
      existing.log.info("assignment repeated for a task whose outcome is being reported; not claimed again");
      return;
    }
    if (admission.kind === "reject") {
      const log = this.#opts.logger.withTask({ task_id: taskId, execution_id: executionId });
      log.warn("task rejected", { reason: admission.reason });
      this.#opts.metrics.taskRejected(admission.metricReason);
      void this.#reporter.send(taskRejected(taskId, admission.reason), log);
      return;
    }
    const release = this.#opts.secrets.registerAll(Object.values(assignment.env_vars ?? {}));
    const task = this.#track(taskId, executionId, release);
    void this.#reporter.send(taskClaimed(taskId, this.#opts.config.workerId), task.log);
    task.log.info("task claimed", { image: assignment.docker_image === undefined ? undefined : serverText(assignment.docker_image) });
    this.#background(this.#start(task, assignment), task.log);
  }

  /**
   * A cancellation names only the task: every run of it this worker holds is stopped (a
   * follow-up and the run before it are one task to Oz), and Oz is answered once, for the
   * newest run; the others are stopped and recorded as cancelled on their Jobs.
   */
  handleCancellation(taskId: string): void {
    const runs = [...this.#tasks.values()].filter((t) => t.taskId === taskId && isActive(t.state));
    if (runs.length === 0) {
      this.#opts.logger.warn("cancellation for a task this worker is not running; ignored", { task_id: serverText(taskId) });
      return;
    }
    runs.forEach((task, i) => {
      task.cancelRequested = true;
      task.cancelQuietly = i < runs.length - 1;
      // A Job still being created is cancelled as soon as it exists (see #start).
      if (task.state === "running") this.#background(this.#cancel(task), task.log);
    });
  }

  #track(taskId: string, executionId: string, releaseSecrets: () => void): Task {
    const task: Task = {
      taskId,
      executionId,
      executionHash: shortHash(executionId),
      startedAt: this.#now(),
      state: "starting",
      log: this.#opts.logger.withTask({ task_id: taskId, execution_id: executionId }),
      cancelRequested: false,
      releaseSecrets,
    };
    this.#tasks.set(executionId, task);
    this.#opts.metrics.taskStarted();
    return task;
  }

  async #start(task: Task, assignment: TaskAssignment): Promise<void> {
    let objects: ReturnType<typeof buildTaskObjects>;
    try {
      objects = buildTaskObjects(this.#opts.config, assignment);
    } catch (err) {
      const reason: FailureReason = err instanceof JobSpecError ? "sidecar_prep" : "job_create";
      await this.#finish(task, { state: "failed", reason, message: `the task's Job could not be built: ${errorText(err)}` });
      return;
    }
    task.jobName = objects.job.metadata?.name;
    try {
      const result = await this.#opts.cluster.createTaskJob(objects.job, objects.secret);
      task.log.info(result.adopted ? "adopted the existing Job of this execution" : "Job created", {
        job: task.jobName,
        namespace: this.#opts.config.kubernetes.namespace,
      });
    } catch (err) {
      await this.#finish(task, {
        state: "failed",
        reason: "job_create",
        message: `creating Job ${task.jobName} in namespace ${this.#opts.config.kubernetes.namespace} failed: ${errorText(err)}`,
      });
      return;
    }
    task.state = "running";
    if (task.cancelRequested) {
      await this.#cancel(task);
      return;
    }
    this.#watch(task);
  }

  #watch(task: Task): void {
    task.unsubscribe = this.#opts.observer.subscribe(task.executionHash, (snap) => this.#evaluate(task, snap));
    const snap = this.#opts.observer.snapshot(task.executionHash);
    if (snap) this.#evaluate(task, snap);
  }

  #evaluate(task: Task, snap: ExecutionSnapshot): void {
    if (task.state !== "running") return;
    let outcome: Outcome;
    if (snap.jobDeleted && !snap.job) {
      outcome = {
        state: "failed",
        reason: "job_watch",
        message: `Job ${task.jobName} (namespace ${this.#opts.config.kubernetes.namespace}) was deleted before it finished`,
      };
    } else {
      outcome = decideOutcome({
        ...(snap.job ? { job: snap.job } : {}),
        pods: snap.pods,
        events: snap.events,
        now: this.#now(),
        unschedulableTimeoutMs: this.#opts.config.kubernetes.unschedulableTimeoutMs,
      });
    }
    if (outcome.state === "running") return;
    this.#background(this.#finish(task, outcome, snap), task.log);
  }

  async #cancel(task: Task): Promise<void> {
    task.state = "finishing";
    task.unsubscribe?.();
    const name = task.jobName;
    const record: ReportedOutcome = { result: "cancelled" };
    let stopped = `Job ${name ?? "(none)"} stopped`;
    if (name) {
      const { cluster, config } = this.#opts;
      try {
        // Cancellation stops the pod for real: the Job goes (its pods with it), or with
        // cleanup off it is suspended, which deletes its pods and keeps it for inspection.
        await this.#reporter.retry(task.log, config.cleanup ? "deleting the cancelled task's Job" : "suspending the cancelled task's Job", name, CANCEL_DELETE_ATTEMPTS, () =>
          config.cleanup ? cluster.deleteJob(name, { propagation: "Background" }) : cluster.suspendJob(name, record),
        );
      } catch (err) {
        // A Job already gone (cleanup off, deleted by someone) runs nothing and records nothing.
        stopped = isNotFound(err) ? `Job ${name} was already gone` : await this.#stopCancelledPods(task, name, record, err);
      }
    }
    if (!task.cancelQuietly) await this.#reporter.send(taskCancelled(task.taskId, `task cancelled; ${stopped}`), task.log);
    task.log.info("task cancelled", { job: name, ...(task.cancelQuietly ? { reported_with: "a newer run of the task" } : {}) });
    this.#done(task, "cancelled");
  }

  /**
   * The cancelled task's Job could not be deleted (or suspended): as the failure path does, an
   * already-passed deadline makes the Job controller end its pods, and the annotation keeps a
   * restarted worker from reporting the task again. Returns what Oz is told was stopped.
   */
  async #stopCancelledPods(task: Task, name: string, record: ReportedOutcome, err: unknown): Promise<string> {
    task.log.warn("stopping the cancelled task's Job failed; ending its pods through its deadline instead", { job: name, error: errorText(err) });
    try {
      await this.#reporter.markReported(task.log, name, record, { stopPods: true });
      return `the pods of Job ${name} stopped (the Job is kept: ${errorText(err)})`;
    } catch (markErr) {
      task.log.error("stopping the cancelled task's pods failed: they may run on, and a restarted worker reports the task again", {
        job: name,
        error: errorText(markErr),
      });
      return `Job ${name} could not be stopped: ${errorText(markErr)}`;
    }
  }

  async #finish(task: Task, outcome: Exclude<Outcome, { state: "running" }>, snap?: ExecutionSnapshot): Promise<void> {
    if (task.state === "finishing" || task.state === "done") return;
    task.state = "finishing";
    task.unsubscribe?.();
    const { cluster, config } = this.#opts;
    let delivered: boolean;
    if (outcome.state === "succeeded") {
      task.log.info("task succeeded", { job: task.jobName });
      delivered = await this.#reporter.send(taskCompleted(task.taskId, outcome.message), task.log);
    } else {
      task.log.error("task failed", {
        job: task.jobName,
        reason: outcome.reason,
        exit_code: outcome.exitCode,
        message: outcome.message,
      });
      delivered = await this.#reporter.send(taskFailed(task.taskId, outcome.message, outcome.reason, outcome.exitCode), task.log);
      if (snap) {
        // The task's secrets stay registered until its container logs are written: a log may
        // echo an env_var value, which must still be redacted.
        const logged = this.#logFailedContainers(task, outcome, snap);
        task.secretsHeldBy = logged;
        this.#background(logged, task.log);
      }
    }
    const name = task.jobName;
    if (!delivered) {
      // Not sent (the worker is stopping while disconnected): the Job stays unmarked, so the
      // next worker with this ID re-adopts it and reports the outcome.
      task.log.warn("the outcome could not be sent to Oz; it will be reported after a restart", { job: name });
    } else if (name && (outcome.state === "failed" || config.cleanup)) {
      // Recorded before any deletion, so a restarted worker never reports this outcome again.
      const record: ReportedOutcome = { result: outcome.state };
      if (outcome.state === "failed") {
        record.reason = outcome.reason;
        if (outcome.exitCode !== undefined) record.exitCode = outcome.exitCode;
      }
      const stillActive = outcome.state === "failed" && podsStillRun(snap?.job, snap?.pods ?? []);
      try {
        await this.#reporter.markReported(task.log, name, record, { stopPods: stillActive });
        // A succeeded Job goes at once; a failed one stays for its TTL, for inspection.
        if (outcome.state === "succeeded" || task.deleteWhenReported) await cluster.deleteJob(name, { propagation: "Background" });
      } catch (err) {
        task.log.warn("recording or cleaning up the finished Job failed", { job: name, error: errorText(err) });
      }
    } else if (name) {
      await this.#reporter.markQuietly(task.log, name, { result: outcome.state });
    }
    this.#done(task, outcome.state, outcome.state === "failed" ? outcome : undefined);
  }

  #done(task: Task, result: "succeeded" | "failed" | "cancelled", failure?: FailedOutcome): void {
    task.state = "done";
    if (task.secretsHeldBy || task.secretsLoaded) {
      void Promise.allSettled([task.secretsHeldBy, task.secretsLoaded]).then(() => task.releaseSecrets());
    } else {
      task.releaseSecrets();
    }
    this.#tasks.delete(task.executionId);
    this.#opts.metrics.taskFinished({
      result,
      durationSeconds: Math.max(0, (this.#now() - task.startedAt) / 1000),
      ...(failure ? { failure: { phase: failurePhase(failure.reason), reason: failure.reason } } : {}),
    });
  }

  /** Registers a re-adopted task's secret values for redaction (the assignment is gone). */
  async #registerAdoptedSecrets(task: Task, job: V1Job): Promise<void> {
    const { cluster } = this.#opts;
    const read = cluster.readTaskSecretValues?.bind(cluster);
    const release = await registerAdoptedSecrets(read, job, this.#opts.secrets, task.log);
    if (release === "withhold") task.withholdLogs = true;
    else if (release) task.releaseSecrets = release;
  }

  /** The failed pod's container logs (each capped, tail kept) go to the worker log. */
  async #logFailedContainers(task: Task, outcome: FailedOutcome, snap: ExecutionSnapshot): Promise<void> {
    await task.secretsLoaded;
    if (task.withholdLogs) return;
    const pod = snap.pods.find((p) => p.metadata?.name === outcome.podName) ?? snap.pods[snap.pods.length - 1];
    const podName = pod?.metadata?.name;
    if (!pod || !podName) return;
    const started = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
      .filter((s) => s.state?.running || s.state?.terminated || s.lastState?.terminated)
      .map((s) => s.name)
      .slice(0, FAILED_LOG_CONTAINER_LIMIT);
    for (const container of started) {
      try {
        const logs = await this.#opts.cluster.readLogs(podName, container);
        task.log.info("container log of the failed task", {
          pod: podName,
          container,
          bytes: logs.totalBytes,
          truncated_bytes: logs.truncatedBytes,
          log: logs.text,
        });
      } catch (err) {
        task.log.warn("reading the failed container's log failed", { pod: podName, container, error: errorText(err) });
      }
    }
  }

  /**
   * A re-adopted Job that is suspended: its worker stopped between creating it (held suspended)
   * and creating its Secret or resuming it (src/kube/jobs.ts createTaskJob). Resumed when its
   * Secret exists; otherwise the task cannot run (its env_vars came only with the assignment)
   * and fails once. Such a Job never finishes, so no TTL would remove it: it is deleted once
   * reported (unless cleanup is off).
   */
  async #resumeHeld(task: Task, job: V1Job): Promise<void> {
    const { cluster, config } = this.#opts;
    if (!cluster.resumeHeldJob) return;
    const result = await resumeHeldJob((j) => cluster.resumeHeldJob!(j), job, {
      log: task.log,
      retryDelayMs: this.#retryDelayMs,
      stillRunning: () => task.state === "running",
      accepting: () => this.#accepting,
    });
    if (result === undefined) return;
    if (result === "resumed") {
      task.log.info("resumed the Job a stopped worker had left suspended", { job: task.jobName });
      return;
    }
    task.deleteWhenReported = config.cleanup;
    await this.#finish(task, neverRanOutcome(task.jobName, config.kubernetes.namespace));
  }

  #background(p: Promise<unknown>, log: Logger = this.#opts.logger): void {
    const tracked = p.catch((err: unknown) => log.error("task loop error", { error: errorText(err) }));
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }
}
