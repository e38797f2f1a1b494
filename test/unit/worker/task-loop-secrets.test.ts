// A task's env_var values stay registered as secrets until everything the worker logs about the
// task has been written: the failed container's log (read after the outcome is reported) may
// echo a value, and must still come out redacted. The loop runs with its ports in memory; the
// failed Job and pod are objects as the API server reports them.
import { describe, expect, test } from "bun:test";
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";
import type { ContainerLogs } from "../../../src/kube/logs.ts";
import type { ExecutionSnapshot, SnapshotListener } from "../../../src/kube/task-watch.ts";
import { createLogger } from "../../../src/telemetry/log.ts";
import { REDACTED, SecretRegistry } from "../../../src/telemetry/secrets.ts";
import type { TaskFinished } from "../../../src/telemetry/metrics.ts";
import { TaskLoop } from "../../../src/worker/task-loop.ts";
import { makeAssignment, makeConfig } from "../core/fixtures.ts";

const SECRET = "sk-live-0123456789abcdefMARKER";
const JOB = "oz-task-x-exec-1";
const POD = `${JOB}-abcde`;

function failedJob(): V1Job {
  const cond = (type: string) => ({
    type,
    status: "True",
    reason: "BackoffLimitExceeded",
    message: "Job has reached the specified backoff limit",
    lastTransitionTime: "2025-03-14T09:27:23Z",
  });
  return ObjectSerializer.deserialize(
    {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: JOB, namespace: "warp-oz", creationTimestamp: "2025-03-14T09:26:53Z" },
      spec: { backoffLimit: 0, template: { spec: { restartPolicy: "Never", containers: [{ name: "task", image: "x:exit-3" }] } } },
      status: { failed: 1, conditions: [cond("FailureTarget"), cond("Failed")] },
    },
    "V1Job",
    "",
  ) as V1Job;
}

function failedPod(): V1Pod {
  return ObjectSerializer.deserialize(
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: POD, namespace: "warp-oz", creationTimestamp: "2025-03-14T09:26:54Z" },
      spec: { restartPolicy: "Never", containers: [{ name: "task", image: "x:exit-3" }] },
      status: {
        phase: "Failed",
        containerStatuses: [
          {
            name: "task",
            image: "x:exit-3",
            imageID: "",
            ready: false,
            restartCount: 0,
            state: {
              terminated: {
                exitCode: 3,
                reason: "Error",
                startedAt: "2025-03-14T09:26:55Z",
                finishedAt: "2025-03-14T09:26:56Z",
              },
            },
          },
        ],
      },
    },
    "V1Pod",
    "",
  ) as V1Pod;
}

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = probe();
    if (v !== undefined) return v;
    await Bun.sleep(2);
  }
  throw new Error(`never happened: ${what}`);
}

describe("TaskLoop: secrets of a failed task", () => {
  test("stay registered until the failed container's log is written, then are released", async () => {
    const lines: string[] = [];
    const registry = new SecretRegistry();
    const logger = createLogger({ level: "debug", format: "json", secrets: registry, stream: { write: (l: string) => lines.push(l) } });
    const listeners: SnapshotListener[] = [];
    const finished: TaskFinished[] = [];
    let releaseLog!: (logs: ContainerLogs) => void;
    const logRead = new Promise<ContainerLogs>((resolve) => {
      releaseLog = resolve;
    });

    const loop = new TaskLoop({
      config: makeConfig(),
      observer: {
        subscribe: (_hash, listener) => {
          listeners.push(listener);
          return () => {};
        },
        snapshot: () => undefined,
        jobs: () => [],
      },
      cluster: {
        createTaskJob: async (job) => ({ job, adopted: false }),
        deleteJob: async () => true,
        markReported: async () => undefined,
        suspendJob: async () => undefined,
        // The log arrives only after the outcome was reported and the task is done.
        readLogs: () => logRead,
      },
      send: async () => {},
      metrics: { taskStarted() {}, taskFinished: (info) => void finished.push(info), taskRejected() {} },
      logger,
      secrets: registry,
    });

    loop.handleAssignment(makeAssignment({ docker_image: "x:exit-3", env_vars: { SANDBOX_LOG: SECRET } }));
    expect(registry.has(SECRET)).toBe(true);
    const listener = await until("the task's watch subscription", () => listeners[0]);
    const snap: ExecutionSnapshot = { executionHash: "h", job: failedJob(), pods: [failedPod()], events: [], jobDeleted: false };
    listener(snap);

    // The task is done (counted) while its container log is still being read.
    await until("the task to finish", () => finished[0]);
    expect(finished[0]).toMatchObject({ result: "failed", failure: { reason: "container_exit" } });
    expect(registry.has(SECRET)).toBe(true);

    releaseLog({ text: `sandbox: ${POD}/task ran x:exit-3\n${SECRET}\n`, totalBytes: 80, truncatedBytes: 0, timedOut: false });
    await loop.drain();
    const logLine = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "container log of the failed task");
    expect(logLine?.log).toBe(`sandbox: ${POD}/task ran x:exit-3\n${REDACTED}\n`);
    expect(lines.join("")).not.toContain(SECRET);
    // Released once written.
    await until("the secret to be released", () => (registry.has(SECRET) ? undefined : true));
  });
});
