// The watch cache's per-execution index (src/kube/execution-index.ts) on real objects: task
// Jobs and pods as the sandbox's API server sent them (test/fixtures/kube/*.json), slimmed as
// the reflectors slim them.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CoreV1Event } from "@kubernetes/client-node";
import { EXECUTION_HASH_LABEL, REPORTED_OUTCOME_ANNOTATION } from "../../../src/core/naming.ts";
import { ExecutionIndex } from "../../../src/kube/execution-index.ts";
import { slimEvent, slimJob, slimPod } from "../../../src/kube/slim.ts";

type Json = Record<string, any>;
const FIXTURES = join(import.meta.dir, "../../fixtures/kube");

function fixture(kind: string): { job: Json; pod: Json } {
  return JSON.parse(readFileSync(join(FIXTURES, `${kind}.json`), "utf8"));
}

/** A second pod of the same Job (a retry), created `s` seconds after the fixture's pod. */
function retryPod(pod: Json, s: number): Json {
  const p = structuredClone(pod);
  p.metadata.name = `${pod.metadata.name}-retry`;
  p.metadata.uid = `${pod.metadata.uid}-retry`;
  p.metadata.creationTimestamp = new Date(Date.parse(pod.metadata.creationTimestamp) + s * 1000).toISOString();
  return p;
}

describe("ExecutionIndex", () => {
  const { job, pod } = fixture("oom");
  const hash = job.metadata.labels[EXECUTION_HASH_LABEL] as string;

  test("indexes a Job and its pods under the execution hash label", () => {
    const idx = new ExecutionIndex();
    expect(idx.apply("jobs", "ADDED", slimJob(job))).toBe(hash);
    expect(idx.apply("pods", "ADDED", slimPod(pod))).toBe(hash);
    expect(idx.hashes()).toEqual([hash]);
    const snap = idx.snapshot(hash)!;
    expect(snap.executionHash).toBe(hash);
    expect(snap.job?.metadata?.name).toBe(job.metadata.name);
    expect(snap.pods.map((p) => p.metadata?.name)).toEqual([pod.metadata.name]);
    expect(snap.events).toEqual([]);
    expect(snap.jobDeleted).toBe(false);
  });

  test("objects without an execution hash, and deletions of unknown executions, change nothing", () => {
    const idx = new ExecutionIndex();
    const unlabelled = structuredClone(job);
    delete unlabelled.metadata.labels[EXECUTION_HASH_LABEL];
    expect(idx.apply("jobs", "ADDED", slimJob(unlabelled))).toBeUndefined();
    expect(idx.apply("pods", "DELETED", slimPod(pod))).toBeUndefined();
    expect(idx.hashes()).toEqual([]);
    expect(idx.snapshot(hash)).toBeUndefined();
  });

  test("pods come oldest first, whatever the order they arrived in", () => {
    const idx = new ExecutionIndex();
    const second = retryPod(pod, 30);
    idx.apply("pods", "ADDED", slimPod(second));
    idx.apply("pods", "ADDED", slimPod(pod));
    expect(idx.snapshot(hash)!.pods.map((p) => p.metadata?.name)).toEqual([pod.metadata.name, second.metadata.name]);
    idx.apply("pods", "DELETED", slimPod(pod));
    expect(idx.snapshot(hash)!.pods.map((p) => p.metadata?.name)).toEqual([second.metadata.name]);
  });

  test("an update replaces the pod it names, and a snapshot taken before does not change", () => {
    const idx = new ExecutionIndex();
    const second = retryPod(pod, 30);
    idx.apply("pods", "ADDED", slimPod(pod));
    idx.apply("pods", "ADDED", slimPod(second));
    const before = idx.snapshot(hash)!;
    const updated = structuredClone(pod);
    updated.metadata.resourceVersion = `${pod.metadata.resourceVersion}1`;
    idx.apply("pods", "MODIFIED", slimPod(updated));
    idx.apply("pods", "DELETED", slimPod(second));
    expect(idx.snapshot(hash)!.pods.map((p) => p.metadata?.resourceVersion)).toEqual([updated.metadata.resourceVersion]);
    expect(before.pods.map((p) => p.metadata?.resourceVersion)).toEqual([pod.metadata.resourceVersion, second.metadata.resourceVersion]);
  });

  test("a Job deleted after it was seen says jobDeleted; one never seen does not", () => {
    const idx = new ExecutionIndex();
    idx.apply("pods", "ADDED", slimPod(pod));
    idx.apply("jobs", "DELETED", slimJob(job));
    expect(idx.snapshot(hash)!.jobDeleted).toBe(false);
    idx.apply("jobs", "ADDED", slimJob(job));
    idx.apply("jobs", "DELETED", slimJob(job));
    const snap = idx.snapshot(hash)!;
    expect(snap.job).toBeUndefined();
    expect(snap.jobDeleted).toBe(true);
    // Re-created (same execution): no longer deleted.
    idx.apply("jobs", "ADDED", slimJob(job));
    expect(idx.snapshot(hash)!.jobDeleted).toBe(false);
  });

  test("deleting another Job of the same execution keeps the indexed one", () => {
    const idx = new ExecutionIndex();
    idx.apply("jobs", "ADDED", slimJob(job));
    const other = structuredClone(job);
    other.metadata.name = `${job.metadata.name}-old`;
    idx.apply("jobs", "DELETED", slimJob(other));
    const snap = idx.snapshot(hash)!;
    expect(snap.job?.metadata?.name).toBe(job.metadata.name);
    expect(snap.jobDeleted).toBe(false);
  });

  test("an execution is forgotten only once neither Job nor pods are left", () => {
    const idx = new ExecutionIndex();
    idx.apply("jobs", "ADDED", slimJob(job));
    idx.apply("pods", "ADDED", slimPod(pod));
    idx.apply("jobs", "DELETED", slimJob(job));
    expect(idx.forgetIfEmpty(hash)).toBe(false);
    idx.apply("pods", "DELETED", slimPod(pod));
    expect(idx.forgetIfEmpty(hash)).toBe(true);
    expect(idx.has(hash)).toBe(false);
    expect(idx.hashes()).toEqual([]);
  });

  test("snapshots carry the Events kept for the execution's pods, in pod order", () => {
    const idx = new ExecutionIndex();
    const second = retryPod(pod, 30);
    idx.apply("pods", "ADDED", slimPod(second));
    idx.apply("pods", "ADDED", slimPod(pod));
    const ev = (name: string): CoreV1Event => slimEvent({ metadata: { name, resourceVersion: "1" }, reason: "BackOff", involvedObject: { kind: "Pod", name } });
    const kept = new Map([
      [pod.metadata.name as string, [ev("a")]],
      [second.metadata.name as string, [ev("b"), ev("c")]],
    ]);
    const snap = idx.snapshot(hash, (name) => kept.get(name))!;
    expect(snap.events.map((e) => e.metadata?.name)).toEqual(["a", "b", "c"]);
  });

  test("taskIds reads the Job's annotations; execution_id falls back to task_id", () => {
    const idx = new ExecutionIndex();
    expect(idx.taskIds(hash)).toEqual({});
    idx.apply("jobs", "ADDED", slimJob(job));
    expect(idx.taskIds(hash)).toEqual({ task_id: "fixture-oom", execution_id: "fixture-oom-exec" });
    const noExec = structuredClone(job);
    delete noExec.metadata.annotations["oz.warp.dev/execution-id"];
    idx.apply("jobs", "MODIFIED", slimJob(noExec));
    expect(idx.taskIds(hash)).toEqual({ task_id: "fixture-oom", execution_id: "fixture-oom" });
  });

  test("compact swaps a reported execution's Job and pods for stubs and says what it swapped", () => {
    const idx = new ExecutionIndex();
    const reported = structuredClone(job);
    reported.metadata.annotations[REPORTED_OUTCOME_ANNOTATION] = "failed";
    const slimJ = slimJob(job);
    idx.apply("jobs", "ADDED", slimJ);
    expect(idx.isReported(hash)).toBe(false);
    const slimR = slimJob(reported);
    const slimP = slimPod(pod);
    idx.apply("jobs", "MODIFIED", slimR);
    idx.apply("pods", "ADDED", slimP);
    expect(idx.isReported(hash)).toBe(true);

    const swapped = idx.compact(hash);
    expect(swapped.map(({ kind, name }) => [kind, name])).toEqual([
      ["jobs", job.metadata.name],
      ["pods", pod.metadata.name],
    ]);
    expect(swapped[0]!.from).toBe(slimR);
    expect(swapped[1]!.from).toBe(slimP);
    const snap = idx.snapshot(hash)!;
    expect(snap.job).toBe(swapped[0]!.to);
    expect(snap.pods[0]).toBe(swapped[1]!.to);
    // The stubs keep what re-adoption and the index read, with one shared labels object.
    expect(snap.job?.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBe("failed");
    expect(snap.job?.metadata?.labels).toEqual({ [EXECUTION_HASH_LABEL]: hash });
    expect(snap.pods[0]!.metadata?.labels).toBe(snap.job?.metadata?.labels);
    expect(snap.pods[0]!.status?.phase).toBe(pod.status.phase);
    expect(snap.job?.spec?.template).toBeUndefined();
    expect(idx.isReported(hash)).toBe(true);
    expect(idx.taskIds(hash)).toEqual({ task_id: "fixture-oom", execution_id: "fixture-oom" });
  });

  test("compact without a Job swaps nothing", () => {
    const idx = new ExecutionIndex();
    idx.apply("pods", "ADDED", slimPod(pod));
    expect(idx.compact(hash)).toEqual([]);
    expect(idx.snapshot(hash)!.pods[0]!.spec).toBeDefined();
  });
});
