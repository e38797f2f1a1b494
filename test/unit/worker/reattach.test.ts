// TaskLoop.reattach after a restart, on the loop's own ports (no Kubernetes API involved):
// a Job already finished when the new worker starts is reported at once (the report waits for
// the connection), a reported one is not reported again, and a Job a stopped worker left
// suspended (held for its Secret) is resumed, or failed once when its Secret never came.
import { describe, expect, test } from "bun:test";
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { EXECUTION_HASH_LABEL, EXECUTION_ID_ANNOTATION, REPORTED_OUTCOME_ANNOTATION, TASK_ID_ANNOTATION, shortHash } from "../../../src/core/naming.ts";
import type { ExecutionSnapshot, SnapshotListener } from "../../../src/kube/task-watch.ts";
import { silentLogger } from "../../../src/telemetry/log.ts";
import { TaskLoop, type TaskCluster } from "../../../src/worker/task-loop.ts";
import { makeConfig } from "../core/fixtures.ts";

function job(name: string, taskId: string, opts: { suspended?: boolean; complete?: boolean; reported?: string } = {}): V1Job {
  const executionId = `${taskId}-exec`;
  return {
    metadata: {
      name,
      namespace: "warp-oz",
      creationTimestamp: new Date(Date.now() - 60_000),
      labels: { [EXECUTION_HASH_LABEL]: shortHash(executionId) },
      annotations: {
        [TASK_ID_ANNOTATION]: taskId,
        [EXECUTION_ID_ANNOTATION]: executionId,
        ...(opts.reported ? { [REPORTED_OUTCOME_ANNOTATION]: opts.reported } : {}),
      },
    },
    spec: { suspend: opts.suspended === true, template: { spec: { containers: [] } } },
    status: opts.complete ? { conditions: [{ type: "Complete", status: "True" }], succeeded: 1 } : {},
  };
}

function succeededPod(jobName: string): V1Pod {
  return {
    metadata: { name: `${jobName}-pod`, creationTimestamp: new Date() },
    status: {
      phase: "Succeeded",
      containerStatuses: [{ name: "task", image: "x", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: "Completed" } } }],
    },
  };
}

function harness(jobs: V1Job[], resume: "resumed" | "secret_missing" = "resumed", markFailures: Error[] = [], resumeFailures: Error[] = []) {
  const sent: { type: string; data: Record<string, unknown> }[] = [];
  const calls: string[] = [];
  const snapshots = new Map<string, ExecutionSnapshot>();
  for (const j of jobs) {
    const hash = j.metadata!.labels![EXECUTION_HASH_LABEL]!;
    const pods = j.status?.conditions?.length ? [succeededPod(j.metadata!.name!)] : [];
    snapshots.set(hash, { executionHash: hash, job: j, pods, events: [], jobDeleted: false });
  }
  const cluster: TaskCluster = {
    createTaskJob: async () => {
      throw new Error("not expected");
    },
    deleteJob: async (name) => {
      calls.push(`delete ${name}`);
      return true;
    },
    markReported: async (name, outcome) => {
      calls.push(`mark ${name} ${outcome.result}${outcome.reason ? ` ${outcome.reason}` : ""}`);
      const failure = markFailures.shift();
      if (failure) throw failure;
      return {};
    },
    suspendJob: async () => ({}),
    readLogs: async () => ({ text: "", totalBytes: 0, truncatedBytes: 0, timedOut: false }),
    resumeHeldJob: async (j) => {
      const failure = resumeFailures.shift();
      calls.push(`resume ${j.metadata!.name} -> ${failure ? "error" : resume}`);
      if (failure) throw failure;
      return resume;
    },
  };
  const loop = new TaskLoop({
    config: makeConfig({ inlineTaskEnv: false }),
    cluster,
    observer: {
      jobs: () => jobs,
      snapshot: (hash) => snapshots.get(hash),
      subscribe: (_hash: string, _l: SnapshotListener) => () => undefined,
    },
    send: async (m) => {
      sent.push(m as { type: string; data: Record<string, unknown> });
    },
    metrics: { taskStarted() {}, taskFinished() {}, taskRejected() {} },
    logger: silentLogger,
    secrets: { registerAll: () => () => undefined },
    markRetryDelayMs: 1,
  });
  return { loop, sent, calls };
}

describe("TaskLoop.reattach", () => {
  test("a Job that finished while no worker ran is reported once, recorded, then deleted; a reported one only has its cleanup finished", async () => {
    const { loop, sent, calls } = harness([
      job("done-job", "t-done", { complete: true }),
      job("old-job", "t-old", { complete: true, reported: JSON.stringify({ result: "succeeded" }) }),
      job("running-job", "t-running"),
    ]);
    expect(loop.reattach()).toBe(2);
    await loop.drain();
    expect(sent.map((m) => `${m.type} ${m.data.task_id}`)).toEqual(["task_completed t-done"]);
    expect(calls).toEqual(["delete old-job", "mark done-job succeeded", "delete done-job"]);
    expect(loop.activeCount).toBe(1);
  });

  test("a suspended Job whose Secret exists is resumed and keeps running", async () => {
    const { loop, sent, calls } = harness([job("held-job", "t-held", { suspended: true })], "resumed");
    expect(loop.reattach()).toBe(1);
    await loop.drain();
    expect(calls).toEqual(["resume held-job -> resumed"]);
    expect(sent).toEqual([]);
    expect(loop.activeCount).toBe(1);
  });

  test("a suspended Job whose Secret never came fails once with job_create, is recorded, then deleted", async () => {
    const { loop, sent, calls } = harness([job("held-job", "t-held", { suspended: true })], "secret_missing");
    loop.reattach();
    await loop.drain();
    expect(sent.map((m) => [m.type, m.data.task_id, m.data.failure_reason])).toEqual([["task_failed", "t-held", "job_create"]]);
    expect(String(sent[0]?.data.message)).toContain("never ran");
    expect(calls).toEqual(["resume held-job -> secret_missing", "mark held-job failed job_create", "delete held-job"]);
    expect(loop.activeCount).toBe(0);
  });

  test("recording the outcome is retried when the API server fails (else a restarted worker would report it again); a Job that is gone is not retried", async () => {
    const unavailable = Object.assign(new Error("connect ECONNREFUSED"), { status: 0 });
    const flaky = harness([job("done-job", "t-done", { complete: true })], "resumed", [unavailable, unavailable]);
    flaky.loop.reattach();
    await flaky.loop.drain();
    expect(flaky.sent.map((m) => m.type)).toEqual(["task_completed"]);
    expect(flaky.calls).toEqual(["mark done-job succeeded", "mark done-job succeeded", "mark done-job succeeded", "delete done-job"]);

    const gone = Object.assign(new Error("jobs done-job not found"), { status: 404, notFound: true });
    const deleted = harness([job("done-job", "t-done", { complete: true })], "resumed", [gone]);
    deleted.loop.reattach();
    await deleted.loop.drain();
    expect(deleted.calls).toEqual(["mark done-job succeeded"]);
  });

  test("resuming a held Job is retried when the API server fails; a held Job already reported is only deleted", async () => {
    const unavailable = new Error("connect ECONNREFUSED");
    const flaky = harness([job("held-job", "t-held", { suspended: true })], "resumed", [], [unavailable]);
    flaky.loop.reattach();
    await flaky.loop.drain();
    expect(flaky.calls).toEqual(["resume held-job -> error", "resume held-job -> resumed"]);
    expect(flaky.loop.activeCount).toBe(1);

    const reported = harness([job("held-job", "t-held", { suspended: true, reported: JSON.stringify({ result: "failed", reason: "job_create" }) })]);
    expect(reported.loop.reattach()).toBe(0);
    await reported.loop.drain();
    expect(reported.calls).toEqual(["delete held-job"]);
    expect(reported.sent).toEqual([]);
  });
});

describe("TaskLoop.reattach: secrets of a re-adopted task", () => {
  test("its Secret's values are registered for redaction before a failed container's log is written, and released after", async () => {
    const failedJob = job("failed-job", "t-failed");
    const hash = failedJob.metadata!.labels![EXECUTION_HASH_LABEL]!;
    const pod: V1Pod = {
      metadata: { name: "failed-job-pod", namespace: "warp-oz", creationTimestamp: new Date() },
      status: {
        phase: "Failed",
        containerStatuses: [
          { name: "task", image: "x", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 3, reason: "Error" } } },
        ],
      },
    };
    const order: string[] = [];
    let readSecret!: (values: string[]) => void;
    const loop = new TaskLoop({
      config: makeConfig({ inlineTaskEnv: false }),
      cluster: {
        createTaskJob: async () => {
          throw new Error("not expected");
        },
        deleteJob: async () => true,
        markReported: async () => ({}),
        suspendJob: async () => ({}),
        readLogs: async (podName, container) => {
          order.push(`logs ${podName}/${container}`);
          return { text: "token s3cr3t-value", totalBytes: 18, truncatedBytes: 0, timedOut: false };
        },
        // The Secret answers only after the outcome is known: the log must still wait for it.
        readTaskSecretValues: () => new Promise((resolve) => (readSecret = resolve)),
      },
      observer: {
        jobs: () => [failedJob],
        snapshot: () => ({ executionHash: hash, job: failedJob, pods: [pod], events: [], jobDeleted: false }),
        subscribe: () => () => undefined,
      },
      send: async () => undefined,
      metrics: { taskStarted() {}, taskFinished() {}, taskRejected() {} },
      logger: silentLogger,
      secrets: {
        registerAll: (values) => {
          order.push(`register ${[...values].join(",")}`);
          return () => order.push("release");
        },
      },
      markRetryDelayMs: 1,
    });
    loop.reattach();
    await new Promise((r) => setTimeout(r, 0));
    expect(order).toEqual([]);
    readSecret(["s3cr3t-value"]);
    await loop.drain();
    await new Promise((r) => setTimeout(r, 0));
    expect(order).toEqual(["register s3cr3t-value", "logs failed-job-pod/task", "release"]);
  });
});
