// The watch cache's transform (src/kube/slim.ts) on real objects: task Jobs and their pods as
// the sandbox's API server sent them (test/fixtures/kube/*.json, captured from runs of the
// worker's own Job spec with the simulator's images). Every rule must decide the same on the
// slimmed objects as on the full ones, and re-adoption must find the same Secret.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { CoreV1Event, V1Job, V1Pod } from "@kubernetes/client-node";
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";
import { isReported } from "../../../src/core/job-predicates.ts";
import { decideOutcome, nextRecheckAt, podNeedsEvents } from "../../../src/core/outcome.ts";
import { EXECUTION_HASH_LABEL, REPORTED_OUTCOME_ANNOTATION, TASK_ID_ANNOTATION } from "../../../src/core/naming.ts";
import { readReportedOutcome, referencedTaskSecret } from "../../../src/kube/jobs.ts";
import { reportedJobStub, reportedPodStub, slimEvent, slimJob, slimPod, withoutManagedFields } from "../../../src/kube/slim.ts";
import { isJobFinishing, podsStillRun } from "../../../src/core/job-predicates.ts";

type Json = Record<string, any>;
const FIXTURES = join(import.meta.dir, "../../fixtures/kube");
const KINDS = ["succeeded", "exit-3", "oom", "pull-error", "config-error"] as const;

function fixture(kind: string): { job: Json; pod: Json } {
  return JSON.parse(readFileSync(join(FIXTURES, `${kind}.json`), "utf8"));
}

/** What the cache held before: the client's model classes. */
const full = {
  job: (raw: Json) => ObjectSerializer.deserialize(structuredClone(raw), "V1Job", "") as V1Job,
  pod: (raw: Json) => ObjectSerializer.deserialize(structuredClone(raw), "V1Pod", "") as V1Pod,
  event: (raw: Json) => ObjectSerializer.deserialize(structuredClone(raw), "CoreV1Event", "") as CoreV1Event,
};

function bothWays(job: Json | undefined, pods: Json[], events: Json[] = [], now: number, unschedulableTimeoutMs = 30_000) {
  const a = decideOutcome({ ...(job ? { job: full.job(job) } : {}), pods: pods.map(full.pod), events: events.map(full.event), now, unschedulableTimeoutMs });
  const b = decideOutcome({ ...(job ? { job: slimJob(job) } : {}), pods: pods.map(slimPod), events: events.map(slimEvent), now, unschedulableTimeoutMs });
  return [a, b] as const;
}

const later = (pod: Json, s: number) => Date.parse(pod.metadata.creationTimestamp) + s * 1000;

describe("slim objects decide every rule as the full ones", () => {
  for (const kind of KINDS) {
    test(`${kind}: the outcome with and without the Job, and the rechecks`, () => {
      const { job, pod } = fixture(kind);
      for (const s of [1, 10, 120]) {
        const [a, b] = bothWays(job, [pod], [], later(pod, s));
        expect(b).toEqual(a);
        const [c, d] = bothWays(undefined, [pod], [], later(pod, s));
        expect(d).toEqual(c);
        expect(podNeedsEvents(slimPod(pod), later(pod, s))).toBe(podNeedsEvents(full.pod(pod), later(pod, s)));
      }
      expect(nextRecheckAt({ pods: [slimPod(pod)], now: later(pod, 0), unschedulableTimeoutMs: 30_000 })).toBe(
        nextRecheckAt({ pods: [full.pod(pod)], now: later(pod, 0), unschedulableTimeoutMs: 30_000 }),
      );
      expect(isJobFinishing(slimJob(job))).toBe(isJobFinishing(full.job(job)));
      expect(podsStillRun(slimJob(job), [slimPod(pod)])).toBe(podsStillRun(full.job(job), [full.pod(pod)]));
    });
  }

  test("the fixtures cover success, exit codes, OOM and waiting failures (so the comparison means something)", () => {
    const outcome = (kind: string) => {
      const { job, pod } = fixture(kind);
      return bothWays(job, [pod], [], later(pod, 10))[1];
    };
    expect(outcome("succeeded").state).toBe("succeeded");
    expect(outcome("exit-3")).toMatchObject({ state: "failed", reason: "container_exit", exitCode: 3, containerName: "task" });
    expect(outcome("oom")).toMatchObject({ state: "failed", reason: "container_oom", exitCode: 137 });
    expect(outcome("pull-error")).toMatchObject({ state: "failed", reason: "image_pull" });
    expect((outcome("pull-error") as { message: string }).message).toContain("x:pull-error");
    expect(outcome("config-error")).toMatchObject({ state: "failed", reason: "container_create" });
  });

  test("evicted, deleted and unschedulable pods", () => {
    const { job, pod } = fixture("exit-3");
    const evicted = structuredClone(pod);
    evicted.status.conditions.push({ type: "DisruptionTarget", status: "True", reason: "TerminationByKubelet", message: "The node was low on resource: memory.", lastTransitionTime: pod.metadata.creationTimestamp });
    const [a, b] = bothWays(undefined, [evicted], [], later(pod, 5));
    expect(b).toEqual(a);
    expect(b).toMatchObject({ state: "failed", reason: "evicted" });

    const pending = structuredClone(fixture("pull-error").pod);
    pending.spec.nodeName = undefined;
    pending.status = {
      phase: "Pending",
      conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.", lastProbeTime: null, lastTransitionTime: pending.metadata.creationTimestamp }],
      qosClass: "BestEffort",
    };
    for (const s of [10, 31]) {
      const [c, d] = bothWays(job, [pending], [], later(pending, s));
      expect(d).toEqual(c);
    }
    expect(bothWays(job, [pending], [], later(pending, 31))[1]).toMatchObject({ state: "failed", reason: "unschedulable" });

    const deleting = structuredClone(fixture("exit-3").pod);
    deleting.metadata.deletionTimestamp = deleting.metadata.creationTimestamp;
    expect(slimPod(deleting).metadata?.deletionTimestamp).toBe(deleting.metadata.creationTimestamp);
  });

  test("FailedMount from Events: slim Events decide as full ones", () => {
    const { pod } = fixture("pull-error");
    const stuck = structuredClone(pod);
    stuck.status.initContainerStatuses = stuck.status.initContainerStatuses.map((s: Json) => ({ ...s, state: { waiting: { reason: "PodInitializing" } } }));
    stuck.status.containerStatuses = stuck.status.containerStatuses.map((s: Json) => ({ ...s, state: { waiting: { reason: "PodInitializing" } } }));
    const at = (s: number) => new Date(later(pod, s)).toISOString().replace(/\.\d{3}Z$/, "Z");
    const event = (reason: string, type: string, s: number, message: string): Json => ({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${pod.metadata.name}.${reason}`, namespace: pod.metadata.namespace, resourceVersion: "4242", creationTimestamp: at(s), managedFields: [{ manager: "kubelet" }] },
      involvedObject: { kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid, apiVersion: "v1", resourceVersion: "1" },
      reason,
      message,
      source: { component: "kubelet", host: "sandbox-node-1" },
      firstTimestamp: at(s),
      lastTimestamp: at(s),
      count: 1,
      type,
      eventTime: null,
      reportingComponent: "kubelet",
      reportingInstance: "sandbox-node-1",
    });
    const mount = event("FailedMount", "Warning", 2, 'MountVolume.SetUp failed for volume "creds" : secret "creds" not found');
    for (const events of [[mount], [mount, event("Pulling", "Normal", 8, "Pulling image")]]) {
      const [a, b] = bothWays(undefined, [stuck], events, later(pod, 10));
      expect(b).toEqual(a);
    }
    expect(bothWays(undefined, [stuck], [mount], later(pod, 10))[1]).toMatchObject({ state: "failed", reason: "volume_mount" });
    expect(slimEvent(mount)).not.toHaveProperty("metadata.managedFields");
  });
});

describe("what re-adoption and the cache read survives", () => {
  test("the Job keeps its identity, task annotations, execution hash and the reference to its Secret", () => {
    const { job } = fixture("succeeded");
    const reported = structuredClone(job);
    reported.metadata.annotations[REPORTED_OUTCOME_ANNOTATION] = '{"result":"succeeded"}';
    reported.spec.suspend = true;
    const s = slimJob(reported);
    expect(s.metadata?.name).toBe(job.metadata.name);
    expect(s.metadata?.resourceVersion).toBe(job.metadata.resourceVersion);
    expect(s.metadata?.creationTimestamp as unknown).toBe(job.metadata.creationTimestamp);
    expect(s.metadata?.labels).toEqual({ [EXECUTION_HASH_LABEL]: job.metadata.labels[EXECUTION_HASH_LABEL] });
    expect(s.metadata?.annotations?.[TASK_ID_ANNOTATION]).toBe(job.metadata.annotations[TASK_ID_ANNOTATION]);
    expect(s.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBe('{"result":"succeeded"}');
    expect(s.spec?.suspend).toBe(true);
    const secret = referencedTaskSecret(full.job(job));
    expect(secret).toBe(`${job.metadata.name}-env`);
    expect(referencedTaskSecret(s)).toBe(secret);
  });

  test("a Job whose pods take the Secret through envFrom, or none at all", () => {
    const { job } = fixture("exit-3");
    const viaEnvFrom = structuredClone(job);
    const task = viaEnvFrom.spec.template.spec.containers[0];
    task.env = task.env.filter((e: Json) => !e.valueFrom);
    task.envFrom = [{ configMapRef: { name: "team-config" } }, { secretRef: { name: `${job.metadata.name}-env` } }];
    expect(referencedTaskSecret(slimJob(viaEnvFrom))).toBe(`${job.metadata.name}-env`);
    const none = structuredClone(viaEnvFrom);
    none.spec.template.spec.containers[0].envFrom = [];
    expect(referencedTaskSecret(slimJob(none))).toBeUndefined();
    expect(slimJob(none).spec?.template).toBeUndefined();
  });

  test("no env value, argument or managedFields is kept, and the pair is a fraction of its size", () => {
    const { job, pod } = fixture("succeeded");
    const text = JSON.stringify([slimJob(job), slimPod(pod)]);
    const env = Object.fromEntries((job.spec.template.spec.containers[0].env as Json[]).map((e) => [e.name, e.value]));
    expect(env.WARP_SERVER_ROOT_URL).toBe("https://app.warp.dev");
    expect(text).not.toContain(env.WARP_SERVER_ROOT_URL);
    expect(text).not.toContain(env.OZ_ENVIRONMENT_FILE);
    expect(text).not.toContain("managedFields");
    expect(text).not.toContain("--task-id");
    const before = JSON.stringify(job).length + JSON.stringify(pod).length;
    expect(before).toBeGreaterThan(15_000);
    expect(text.length).toBeLessThan(before / 8);
  });
});

describe("a reported execution nobody follows", () => {
  test("the Job stub keeps what re-adoption reads after a restart", () => {
    const { job } = fixture("exit-3");
    const raw = structuredClone(job);
    raw.metadata.annotations[REPORTED_OUTCOME_ANNOTATION] = '{"result":"failed","reason":"container_exit","exitCode":3}';
    const slim = slimJob(raw);
    expect(isReported(slimJob(job))).toBe(false);
    expect(isReported(slim)).toBe(true);
    const stub = reportedJobStub(slim);
    expect(isReported(stub)).toBe(true);
    expect(stub.metadata?.name).toBe(job.metadata.name);
    expect(stub.metadata?.resourceVersion).toBe(job.metadata.resourceVersion);
    expect(stub.metadata?.labels).toEqual(slim.metadata?.labels);
    expect(stub.metadata?.annotations?.[TASK_ID_ANNOTATION]).toBe(job.metadata.annotations[TASK_ID_ANNOTATION]);
    expect(stub.spec?.suspend).toBe(false);
    // The cleanup of a reported Job and podsStillRun read the conditions' types and statuses.
    expect(isJobFinishing(stub)).toBe(true);
    expect(stub.status?.conditions?.map((c) => `${c.type}=${c.status}`)).toEqual(job.status.conditions.map((c: Json) => `${c.type}=${c.status}`));
    expect(reportedJobStub(stub)).toEqual(stub);
    expect(JSON.stringify(stub).length).toBeLessThan(JSON.stringify(slim).length);
  });

  test("of the reported outcome the Job stub keeps the result, one string for all Jobs with it", () => {
    const { job } = fixture("succeeded");
    const stubOf = (value: string) => {
      const raw = structuredClone(job);
      raw.metadata.annotations[REPORTED_OUTCOME_ANNOTATION] = value;
      return reportedJobStub(slimJob(raw));
    };
    const a = stubOf('{"result":"succeeded","reportedAt":"2026-12-06T09:37:48.466Z"}');
    const b = stubOf('{"result":"succeeded","reportedAt":"2026-12-06T10:01:02.003Z"}');
    expect(a.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBe('{"result":"succeeded"}');
    expect(readReportedOutcome(a)).toEqual({ result: "succeeded" });
    expect(isReported(b)).toBe(true);
    expect(stubOf('{"result":"failed","reason":"container_exit","exitCode":3}').metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBe('{"result":"failed"}');
    // A value of another shape (an older worker's, a hand-written one) stays as it is.
    expect(stubOf("true").metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBe("true");
    expect(stubOf("not json").metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBe("not json");
  });

  test("the pod stub keeps identity and phase", () => {
    const { pod } = fixture("succeeded");
    const stub = reportedPodStub(slimPod(pod));
    expect(stub).toEqual({
      metadata: {
        name: pod.metadata.name,
        namespace: pod.metadata.namespace,
        resourceVersion: pod.metadata.resourceVersion,
        labels: { [EXECUTION_HASH_LABEL]: pod.metadata.labels[EXECUTION_HASH_LABEL] },
      },
      status: { phase: "Succeeded" },
    } as V1Pod);
    expect(podsStillRun(undefined, [stub])).toBe(false);
  });
});

describe("managedFields are cut from the JSON text before it is parsed", () => {
  const withoutMf = (o: Json): Json => {
    const copy = structuredClone(o);
    delete copy.metadata.managedFields;
    return copy;
  };

  test.each([...KINDS])("%s: the Job and the pod parse to the same objects less managedFields, alone and in a list", (kind) => {
    const { job, pod } = fixture(kind);
    for (const o of [job, pod]) {
      expect(o.metadata.managedFields.length).toBeGreaterThan(0);
      const text = JSON.stringify(o);
      const cut = withoutManagedFields(text);
      expect(cut.length).toBeLessThan(text.length * 0.8);
      expect(JSON.parse(cut)).toEqual(withoutMf(o));
      // The slim object is the same either way (the rules never read managedFields).
      expect(o.kind === "Job" ? slimJob(JSON.parse(cut)) : slimPod(JSON.parse(cut))).toEqual(o.kind === "Job" ? slimJob(o) : slimPod(o));
    }
    const event = JSON.stringify({ type: "MODIFIED", object: pod });
    expect(JSON.parse(withoutManagedFields(event))).toEqual({ type: "MODIFIED", object: withoutMf(pod) });
    const list = JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: "9" }, items: [pod, job, pod] });
    expect(JSON.parse(withoutManagedFields(list)).items).toEqual([withoutMf(pod), withoutMf(job), withoutMf(pod)]);
  });

  test("text of another shape is left as it is", () => {
    const { pod } = fixture("succeeded");
    // managedFields not followed by spec (an object without spec), then one that is: only the second is cut.
    const noSpec = { metadata: { name: "a", managedFields: [{ manager: "m", fieldsV1: { "f:x": {} } }] }, status: { phase: "Running" } };
    const list = JSON.stringify({ items: [noSpec, pod] });
    expect(JSON.parse(withoutManagedFields(list)).items).toEqual([noSpec, withoutMf(pod)]);
    // A string value that looks like the pattern is not structure: JSON escapes its quotes.
    const tricky = { metadata: { name: "b", annotations: { note: '"managedFields":[1]},"spec":{' } }, spec: { x: 1 } };
    expect(JSON.parse(withoutManagedFields(JSON.stringify(tricky)))).toEqual(tricky);
    expect(withoutManagedFields('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}}')).toBe('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"5"}}}');
  });
});
