// The shared fixture of the task loop's unit tests: a TaskLoop wired to its own ports held in
// memory (the loop's TaskCluster and TaskObserver interfaces, not a Kubernetes API), with the
// Job and pod statuses a test pushes taken from Jobs and pods the sandbox's API server
// reported (test/fixtures/kube/*.json). What the loop sends to Oz, asks of the cluster and
// counts in its metrics is recorded in order.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";
import type { WorkerConfig } from "../../../src/core/types.ts";
import { EXECUTION_HASH_LABEL, shortHash } from "../../../src/core/naming.ts";
import type { ReportedOutcome } from "../../../src/kube/jobs.ts";
import type { SnapshotListener } from "../../../src/kube/task-watch.ts";
import type { TaskAssignment } from "../../../src/oz/protocol.ts";
import { silentLogger } from "../../../src/telemetry/log.ts";
import type { TaskFinished } from "../../../src/telemetry/metrics.ts";
import { TaskLoop } from "../../../src/worker/task-loop.ts";
import { waitFor } from "../../support/wait.ts";
import { makeAssignment, makeConfig } from "../core/fixtures.ts";

export interface Sent {
  type: string;
  data: Record<string, unknown>;
}

/** A captured Job and its pod: how the sandbox's API server reported a task that ended this way. */
export type Captured = "succeeded" | "exit-3" | "oom" | "pull-error" | "config-error";

export function captured(kind: Captured): { job: V1Job; pod: V1Pod } {
  const raw = JSON.parse(readFileSync(join(import.meta.dir, "../../fixtures/kube", `${kind}.json`), "utf8")) as { job: object; pod: object };
  return {
    job: ObjectSerializer.deserialize(raw.job, "V1Job", "") as V1Job,
    pod: ObjectSerializer.deserialize(raw.pod, "V1Pod", "") as V1Pod,
  };
}

export interface LoopFixtureOptions {
  top?: Partial<Omit<WorkerConfig, "kubernetes">>;
  /** A sent message waits for the returned promise (a connection that has not flushed it yet). */
  hold?: (m: Sent) => Promise<void> | undefined;
  /** Creating a Job waits for the returned promise (a slow API server). */
  holdCreate?: (job: V1Job) => Promise<void> | undefined;
  /** Errors the cluster answers with, in turn, before it succeeds. */
  failures?: { deleteJob?: Error[]; suspendJob?: Error[]; markReported?: Error[] };
}

export function loopFixture(opts: LoopFixtureOptions = {}) {
  const config = makeConfig({ inlineTaskEnv: false }, opts.top);
  const sent: Sent[] = [];
  /** The cluster calls, as `verb job [detail]`. */
  const calls: string[] = [];
  const created = new Map<string, V1Job>();
  const listeners = new Map<string, Set<SnapshotListener>>();
  const started: number[] = [];
  const finished: TaskFinished[] = [];
  const rejected: string[] = [];
  const registered = new Set<unknown>();
  const failures = { deleteJob: [...(opts.failures?.deleteJob ?? [])], suspendJob: [...(opts.failures?.suspendJob ?? [])], markReported: [...(opts.failures?.markReported ?? [])] };
  const fail = (queue: Error[]) => {
    const err = queue.shift();
    if (err) throw err;
  };
  const record = (o: ReportedOutcome) => [o.result, o.reason, o.exitCode].filter((v) => v !== undefined).join(" ");

  const loop = new TaskLoop({
    config,
    cluster: {
      createTaskJob: async (job) => {
        await opts.holdCreate?.(job);
        calls.push(`create ${job.metadata!.name}`);
        created.set(job.metadata!.name!, job);
        return { job, adopted: false };
      },
      deleteJob: async (name) => {
        calls.push(`delete ${name}`);
        fail(failures.deleteJob);
        return true;
      },
      markReported: async (name, outcome, o) => {
        calls.push(`mark ${name} ${record(outcome)}${o?.stopPods ? " stopPods" : ""}`);
        fail(failures.markReported);
        return {};
      },
      suspendJob: async (name, outcome) => {
        calls.push(`suspend ${name} ${record(outcome)}`);
        fail(failures.suspendJob);
        return {};
      },
      readLogs: async (pod, container) => ({ text: `log of ${pod}/${container}`, totalBytes: 10, truncatedBytes: 0, timedOut: false }),
    },
    observer: {
      subscribe: (hash, listener) => {
        const set = listeners.get(hash) ?? new Set<SnapshotListener>();
        set.add(listener);
        listeners.set(hash, set);
        return () => set.delete(listener);
      },
      snapshot: () => undefined,
      jobs: () => [],
    },
    send: async (m) => {
      sent.push(m as Sent);
      await opts.hold?.(m as Sent);
    },
    metrics: {
      taskStarted: () => void started.push(1),
      taskFinished: (info) => void finished.push(info),
      taskRejected: (reason) => void rejected.push(reason),
    },
    logger: silentLogger,
    secrets: {
      registerAll: (values) => {
        const mine = [...values];
        for (const v of mine) registered.add(v);
        return () => mine.forEach((v) => registered.delete(v));
      },
    },
    markRetryDelayMs: 1,
  });

  const jobOf = (executionId: string) => [...created.values()].find((j) => j.metadata?.labels?.[EXECUTION_HASH_LABEL] === shortHash(executionId));

  return {
    loop,
    config,
    sent,
    calls,
    finished,
    rejected,
    registered,
    started,
    /** The messages sent to Oz, as `type task_id [task_state|failure_reason]`. */
    messages: () => sent.map((m) => [m.type, m.data.task_id, m.data.task_state ?? m.data.failure_reason].filter((v) => v !== undefined).join(" ")),
    assign(taskId: string, executionId: string, overrides: Partial<TaskAssignment> = {}): TaskAssignment {
      const a = makeAssignment({ task_id: taskId, execution_id: executionId, ...overrides });
      loop.handleAssignment(a);
      return a;
    },
    /** Waits until the run's Job exists and the loop watches it; returns the Job's name. */
    async running(executionId: string): Promise<string> {
      return waitFor(`the Job of execution ${executionId} to be watched`, () => {
        const job = jobOf(executionId);
        return job && (listeners.get(shortHash(executionId))?.size ?? 0) > 0 ? job.metadata!.name! : undefined;
      });
    },
    /** The shared watch reports the run's Job and pod with the captured statuses of `kind`. */
    report(executionId: string, kind: Captured): void {
      const hash = shortHash(executionId);
      const own = jobOf(executionId);
      const { job, pod } = captured(kind);
      job.metadata = { ...own?.metadata };
      pod.metadata = { ...pod.metadata, name: `${own?.metadata?.name}-abcde` };
      for (const l of [...(listeners.get(hash) ?? [])]) l({ executionHash: hash, job, pods: [pod], events: [], jobDeleted: false });
    },
    waitFor,
  };
}
