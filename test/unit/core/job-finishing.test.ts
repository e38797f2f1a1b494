// isJobFinishing / podsStillRun (src/core/job-predicates.ts): whether the worker still has to stop a failed task's pods itself, on Job
// statuses as the API server reports them (Kubernetes ≥ 1.31 sets FailureTarget and
// SuccessCriteriaMet before Failed / Complete, while the Job controller ends the pods).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";
import { isJobFinishing, podsStillRun } from "../../../src/core/job-predicates.ts";

function job(...conditions: [type: string, status: string, reason?: string][]): V1Job {
  return {
    metadata: { name: "oz-task-x" },
    status: { conditions: conditions.map(([type, status, reason]) => ({ type, status, ...(reason ? { reason } : {}) })) },
  };
}

describe("isJobFinishing", () => {
  test("an active Job (no condition, or only Suspended) is not: its pods must be stopped", () => {
    expect(isJobFinishing(job())).toBe(false);
    expect(isJobFinishing(job(["Suspended", "False"]))).toBe(false);
    expect(isJobFinishing({ metadata: { name: "j" } })).toBe(false);
    expect(isJobFinishing(undefined)).toBe(false);
  });
  test("FailureTarget (DeadlineExceeded, before Failed) is: the Job controller is ending the pods", () => {
    expect(isJobFinishing(job(["FailureTarget", "True", "DeadlineExceeded"]))).toBe(true);
  });
  test("Failed, Complete and SuccessCriteriaMet are", () => {
    expect(isJobFinishing(job(["FailureTarget", "True"], ["Failed", "True", "BackoffLimitExceeded"]))).toBe(true);
    expect(isJobFinishing(job(["Complete", "True"]))).toBe(true);
    expect(isJobFinishing(job(["SuccessCriteriaMet", "True"]))).toBe(true);
  });
  test("a condition that is not True does not count", () => {
    expect(isJobFinishing(job(["Failed", "False"], ["FailureTarget", "Unknown"]))).toBe(false);
  });
});

describe("podsStillRun", () => {
  const pod = (phase: string): V1Pod => ({ metadata: { name: `p-${phase}` }, status: { phase } });
  test("a pod that never started (Pending: image pull, unschedulable) or still runs: yes", () => {
    expect(podsStillRun(job(), [pod("Pending")])).toBe(true);
    expect(podsStillRun(job(), [pod("Failed"), pod("Running")])).toBe(true);
  });
  test("no pod at all (the Job could not create one): yes, the Job is still active", () => {
    expect(podsStillRun(job(), [])).toBe(true);
    expect(podsStillRun(undefined, [])).toBe(true);
  });
  test("every pod ended (a container exited non-zero): no, the Job controller fails the Job itself", () => {
    expect(podsStillRun(job(), [pod("Failed")])).toBe(false);
    expect(podsStillRun(job(), [pod("Failed"), pod("Succeeded")])).toBe(false);
  });
  test("the Job controller already finishing the Job: no", () => {
    expect(podsStillRun(job(["FailureTarget", "True", "DeadlineExceeded"]), [pod("Running")])).toBe(false);
  });
});

describe("on captured Jobs and pods (test/fixtures/kube/*.json, as the sandbox's API server sent them)", () => {
  const FIXTURES = join(import.meta.dir, "../../fixtures/kube");
  function captured(kind: string): { job: V1Job; pod: V1Pod } {
    const raw = JSON.parse(readFileSync(join(FIXTURES, `${kind}.json`), "utf8")) as { job: object; pod: object };
    return {
      job: ObjectSerializer.deserialize(raw.job, "V1Job", "") as V1Job,
      pod: ObjectSerializer.deserialize(raw.pod, "V1Pod", "") as V1Pod,
    };
  }

  test("a container that exited non-zero or was OOM-killed: the Job controller fails the Job (FailureTarget, Failed) and ends its pods", () => {
    for (const kind of ["exit-3", "oom"]) {
      const { job, pod } = captured(kind);
      expect(isJobFinishing(job)).toBe(true);
      expect(podsStillRun(job, [pod])).toBe(false);
      // Without the Job (not yet in the cache), the ended pod alone says the same.
      expect(podsStillRun(undefined, [pod])).toBe(false);
    }
  });

  test("a succeeded Job (SuccessCriteriaMet, Complete) is finishing; its pod ran to the end", () => {
    const { job, pod } = captured("succeeded");
    expect(isJobFinishing(job)).toBe(true);
    expect(podsStillRun(job, [pod])).toBe(false);
  });

  test("an image that cannot be pulled or a container config error: the pod waits Pending and only the worker would stop it", () => {
    for (const kind of ["pull-error", "config-error"]) {
      const { job, pod } = captured(kind);
      expect(pod.status?.phase).toBe("Pending");
      expect(isJobFinishing(job)).toBe(false);
      expect(podsStillRun(job, [pod])).toBe(true);
    }
  });
});
