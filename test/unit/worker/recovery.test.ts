// Restart recovery (src/worker/recovery.ts) on Jobs as the sandbox's API server reported them
// (test/fixtures/kube/*.json): which Jobs a new worker re-adopts, which only need their
// cleanup, and the retried resume of a Job held suspended.
import { describe, expect, test } from "bun:test";
import type { V1Job } from "@kubernetes/client-node";
import { REPORTED_OUTCOME_ANNOTATION } from "../../../src/core/naming.ts";
import { silentLogger } from "../../../src/telemetry/log.ts";
import { classifyLeftJob, neverRanOutcome, registerAdoptedSecrets, reportedJobToDelete, resumeHeldJob } from "../../../src/worker/recovery.ts";
import { captured } from "./loop-fixture.ts";

function withAnnotations(job: V1Job, annotations: Record<string, string>): V1Job {
  return { ...job, metadata: { ...job.metadata, annotations: { ...job.metadata?.annotations, ...annotations } } };
}

describe("classifyLeftJob", () => {
  test("an unreported Job is re-adopted under its task and execution, from its creation time", () => {
    const { job } = captured("exit-3");
    expect(classifyLeftJob(job)).toEqual({
      kind: "adopt",
      name: "oz-task-fixture-exit-3-exec-t-3-exec",
      taskId: "fixture-exit-3",
      executionId: "fixture-exit-3-exec",
      createdAt: Date.parse(String(job.metadata?.creationTimestamp)),
      held: false,
    });
  });

  test("a suspended one is held (for its Secret); one without execution-id is its task's only run", () => {
    const { job } = captured("succeeded");
    const held = { ...job, spec: { ...job.spec!, suspend: true } };
    expect(classifyLeftJob(held)).toMatchObject({ kind: "adopt", held: true });
    const bare = { ...job, metadata: { ...job.metadata, annotations: { "oz.warp.dev/task-id": "t-bare" } } };
    expect(classifyLeftJob(bare)).toMatchObject({ kind: "adopt", taskId: "t-bare", executionId: "t-bare" });
  });

  test("a reported Job only has its cleanup left; one being deleted, or not a task Job, is skipped", () => {
    const { job } = captured("succeeded");
    const reported = withAnnotations(job, { [REPORTED_OUTCOME_ANNOTATION]: JSON.stringify({ result: "succeeded" }) });
    expect(classifyLeftJob(reported)).toEqual({ kind: "reported", name: job.metadata!.name! });
    expect(classifyLeftJob({ ...job, metadata: { ...job.metadata, deletionTimestamp: new Date() } })).toEqual({ kind: "skip" });
    expect(classifyLeftJob({ ...job, metadata: { ...job.metadata, annotations: {} } })).toEqual({ kind: "skip" });
  });
});

describe("reportedJobToDelete", () => {
  test("with cleanup on: a succeeded Job, or a suspended one that never ran; a failed one stays for its TTL", () => {
    expect(reportedJobToDelete(captured("succeeded").job, true)).toBe(true);
    expect(reportedJobToDelete(captured("exit-3").job, true)).toBe(false);
    const held = captured("config-error").job;
    expect(reportedJobToDelete({ ...held, spec: { ...held.spec!, suspend: true } }, true)).toBe(true);
    expect(reportedJobToDelete(captured("succeeded").job, false)).toBe(false);
  });
});

describe("resumeHeldJob", () => {
  const { job } = captured("config-error");
  const opts = { log: silentLogger, retryDelayMs: 1, stillRunning: () => true, accepting: () => true };

  test("retried while the API server fails, then answers what the cluster did", async () => {
    const failures = [new Error("connect ECONNREFUSED"), new Error("connect ECONNREFUSED")];
    let calls = 0;
    const result = await resumeHeldJob(
      async () => {
        calls++;
        const err = failures.shift();
        if (err) throw err;
        return "secret_missing";
      },
      job,
      opts,
    );
    expect([result, calls]).toEqual(["secret_missing", 3]);
  });

  test("not tried once the task ended otherwise; a failure not retried once the worker stops accepting", async () => {
    expect(await resumeHeldJob(async () => "resumed", job, { ...opts, stillRunning: () => false })).toBeUndefined();
    const failing = async (): Promise<"resumed"> => {
      throw new Error("connect ECONNREFUSED");
    };
    await expect(resumeHeldJob(failing, job, { ...opts, accepting: () => false })).rejects.toThrow("ECONNREFUSED");
  });

  test("a held Job whose Secret never came fails as job_create, naming the Job and namespace", () => {
    expect(neverRanOutcome("oz-task-x", "warp-oz")).toMatchObject({ state: "failed", reason: "job_create" });
    expect(neverRanOutcome("oz-task-x", "warp-oz").message).toStartWith("Job oz-task-x (namespace warp-oz) never ran");
  });
});

describe("registerAdoptedSecrets", () => {
  const { job } = captured("exit-3");
  test("registers the Secret's values and returns their release; a failed read withholds the logs; no reader, nothing", async () => {
    const registered: string[] = [];
    const release = () => undefined;
    const registry = { registerAll: (v: Iterable<string>) => (registered.push(...v), release) };
    expect(await registerAdoptedSecrets(async () => ["s3cr3t"], job, registry, silentLogger)).toBe(release);
    expect(registered).toEqual(["s3cr3t"]);
    expect(await registerAdoptedSecrets(() => Promise.reject(new Error("forbidden")), job, registry, silentLogger)).toBe("withhold");
    expect(await registerAdoptedSecrets(undefined, job, registry, silentLogger)).toBeUndefined();
  });
});
