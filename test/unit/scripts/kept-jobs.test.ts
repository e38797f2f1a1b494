// The bench's kept Jobs are what a worker with cleanup off leaves behind: its own Job spec,
// reported, Complete, with a Succeeded pod the watch of that worker selects.
import { expect, test } from "bun:test";
import { KEPT_MANAGED_BY, keptPair } from "../../../scripts/lib/kept-jobs.ts";
import { EXECUTION_HASH_LABEL, PREFLIGHT_LABEL, REPORTED_OUTCOME_ANNOTATION, TASK_ID_ANNOTATION, WORKER_HASH_LABEL, shortHash } from "../../../src/core/naming.ts";
import { slimJob, slimPod } from "../../../src/kube/slim.ts";
import { decideOutcome } from "../../../src/core/outcome.ts";
import { makeConfig } from "../core/fixtures.ts";

// As the config loader resolves cleanup: false: no TTL.
const config = makeConfig({ ttlSecondsAfterFinished: undefined }, { workerId: "bench-1234", cleanup: false });
const finishedAt = Date.parse("2026-01-02T03:04:05Z");

test("a kept pair: the worker's Job, reported and Complete, with a Succeeded pod of the same execution", () => {
  const p = keptPair(config, 7, finishedAt, "r1");
  const job = p.job as any;
  const pod = p.pod as any;
  expect(job.metadata.labels[WORKER_HASH_LABEL]).toBe(shortHash("bench-1234"));
  expect(job.metadata.labels[PREFLIGHT_LABEL]).toBeUndefined();
  expect(job.metadata.annotations[TASK_ID_ANNOTATION]).toBe("kept-r1-7");
  expect(JSON.parse(job.metadata.annotations[REPORTED_OUTCOME_ANNOTATION])).toEqual({ result: "succeeded", reportedAt: "2026-01-02T03:04:05Z" });
  expect(job.spec.managedBy).toBe(KEPT_MANAGED_BY);
  expect(job.spec.ttlSecondsAfterFinished).toBeUndefined();
  expect(pod.metadata.labels[EXECUTION_HASH_LABEL]).toBe(job.metadata.labels[EXECUTION_HASH_LABEL]);
  expect(pod.metadata.labels[WORKER_HASH_LABEL]).toBe(job.metadata.labels[WORKER_HASH_LABEL]);
  expect(pod.spec.containers.map((c: any) => c.name)).toEqual(job.spec.template.spec.containers.map((c: any) => c.name));
  expect(pod.spec.nodeName).toBeUndefined();
  expect(pod.spec.schedulingGates).toHaveLength(1);
  // As the worker would see them once the statuses are written: a succeeded task.
  const seenJob = slimJob({ ...job, ...(p.jobStatus as object) });
  const seenPod = slimPod({ ...pod, ...(p.podStatus as object) });
  expect(decideOutcome({ job: seenJob, pods: [seenPod], now: finishedAt, unschedulableTimeoutMs: 30_000 }).state).toBe("succeeded");
  expect(decideOutcome({ pods: [seenPod], now: finishedAt, unschedulableTimeoutMs: 30_000 }).state).toBe("succeeded");
  expect(keptPair(config, 8, finishedAt, "r1").job).not.toEqual(job);
});
