// decideOutcome / needsEvents / nextRecheckAt / failurePhase on realistic objects: raw JSON as the
// API server sends it (kubectl get -o json shapes), slimmed to what the watch cache keeps
// (src/kube/slim.ts), exactly as the watcher hands them over.
import { describe, expect, test } from "bun:test";
import type { CoreV1Event, V1Job, V1Pod } from "@kubernetes/client-node";
import {
  decideOutcome,
  failurePhase,
  needsEvents,
  nextRecheckAt,
  type FailedOutcome,
  type Outcome,
} from "../../../src/core/outcome.ts";
import { slimEvent, slimJob, slimPod } from "../../../src/kube/slim.ts";

const NS = "oz-tasks";
const JOB = "oz-task-fix-login-bug-exec-a1b2c3d4";
const POD = `${JOB}-x7k2p`;
const T0 = Date.parse("2025-03-14T09:26:53Z");
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const at = (s: number) => iso(T0 + s * 1000);

const LABELS = {
  "oz-worker-id": "my-worker",
  "oz-task-id": "fix-login-bug",
  "oz-execution-id": "exec-a1b2c3d4",
  "oz-worker-hash": "0123456789abcdef",
  "oz-task-hash": "89abcdef01234567",
  "oz-execution-hash": "fedcba9876543210",
};

type Json = Record<string, unknown>;

const SLIM = { V1Job: slimJob, V1Pod: slimPod, CoreV1Event: slimEvent };

function model<T>(raw: Json, type: "V1Job" | "V1Pod" | "CoreV1Event"): T {
  return SLIM[type](raw) as T;
}

function job(conditions: Json[] = [], extra: Json = {}): V1Job {
  return model<V1Job>(
    {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: JOB, namespace: NS, uid: "0b7c-job-uid", resourceVersion: "1042", labels: LABELS, creationTimestamp: at(0) },
      spec: {
        backoffLimit: 0,
        activeDeadlineSeconds: 28800,
        ttlSecondsAfterFinished: 86400,
        template: { metadata: { labels: LABELS }, spec: { restartPolicy: "Never", containers: [{ name: "task", image: "ubuntu:22.04" }] } },
      },
      status: { startTime: at(0), active: conditions.length ? 0 : 1, ready: 0, terminating: 0, conditions, ...extra },
    },
    "V1Job",
  );
}

const cond = (type: string, reason: string, message: string, s = 30): Json => ({
  type,
  status: "True",
  reason,
  message,
  lastProbeTime: at(s),
  lastTransitionTime: at(s),
});
const COMPLETE = [cond("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"), cond("Complete", "CompletionsReached", "Reached expected number of succeeded pods")];
const BACKOFF = [cond("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"), cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")];
const DEADLINE = [cond("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"), cond("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")];

interface PodOpts {
  phase?: string;
  image?: string;
  initContainers?: Json[];
  initStatuses?: Json[];
  statuses?: Json[];
  conditions?: Json[];
  reason?: string;
  message?: string;
  deletionTimestamp?: string;
  nodeName?: string | null;
  name?: string;
}

const running = (s = 2): Json => ({ running: { startedAt: at(s) } });
const terminated = (exitCode: number, reason: string, s = 5, extra: Json = {}): Json => ({
  terminated: { exitCode, reason, startedAt: at(s - 3), finishedAt: at(s), containerID: "containerd://9f3e", ...extra },
});
const waiting = (reason: string, message?: string): Json => ({ waiting: message ? { reason, message } : { reason } });
const status = (name: string, state: Json, image = "ubuntu:22.04"): Json => ({
  name,
  state,
  lastState: {},
  ready: "running" in state,
  restartCount: 0,
  image,
  imageID: "",
  started: "running" in state,
});
const scheduled = (s = 0): Json[] => [
  { type: "PodReadyToStartContainers", status: "True", lastProbeTime: null, lastTransitionTime: at(s + 1) },
  { type: "Initialized", status: "True", lastProbeTime: null, lastTransitionTime: at(s + 1) },
  { type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: at(s) },
];

function pod(o: PodOpts = {}): V1Pod {
  const nodeName = o.nodeName === null ? undefined : (o.nodeName ?? "sim-node-1");
  return model<V1Pod>(
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: o.name ?? POD,
        generateName: `${JOB}-`,
        namespace: NS,
        uid: "5d2e-pod-uid",
        resourceVersion: "1077",
        creationTimestamp: at(0),
        ...(o.deletionTimestamp ? { deletionTimestamp: o.deletionTimestamp, deletionGracePeriodSeconds: 30 } : {}),
        labels: { ...LABELS, "batch.kubernetes.io/job-name": JOB, "batch.kubernetes.io/controller-uid": "0b7c-job-uid", "controller-uid": "0b7c-job-uid", "job-name": JOB },
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: JOB, uid: "0b7c-job-uid", controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        restartPolicy: "Never",
        ...(nodeName ? { nodeName } : {}),
        initContainers: o.initContainers ?? [],
        containers: [{ name: "task", image: o.image ?? "ubuntu:22.04", command: ["/bin/sh", "-c"], workingDir: "/workspace" }],
      },
      status: {
        phase: o.phase ?? "Running",
        ...(o.reason ? { reason: o.reason } : {}),
        ...(o.message ? { message: o.message } : {}),
        conditions: o.conditions ?? scheduled(),
        hostIP: "10.0.0.1",
        podIP: "10.244.1.7",
        startTime: at(0),
        initContainerStatuses: o.initStatuses,
        containerStatuses: o.statuses ?? [status("task", running())],
        qosClass: "BestEffort",
      },
    },
    "V1Pod",
  );
}

function event(reason: string, type: string, message: string, s: number, podName = POD): CoreV1Event {
  return model<CoreV1Event>(
    {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${podName}.1820a1b2c3d4${s}`, namespace: NS, creationTimestamp: at(s) },
      involvedObject: { kind: "Pod", namespace: NS, name: podName, uid: "5d2e-pod-uid", apiVersion: "v1", resourceVersion: "1070" },
      reason,
      message,
      source: { component: "kubelet", host: "sim-node-1" },
      firstTimestamp: at(s),
      lastTimestamp: at(s),
      count: 1,
      type,
      reportingComponent: "kubelet",
      reportingInstance: "sim-node-1",
    },
    "CoreV1Event",
  );
}

const SIDECAR_COPY = { name: "agent-sidecar", image: "warpdotdev/agent:latest", securityContext: { runAsUser: 0, runAsGroup: 0 } };
const SETUP = { name: "setup", image: "x:exit-1", command: ["/bin/sh", "-c", "make deps"] };
const NATIVE = { name: "proxy", image: "envoy:v1", restartPolicy: "Always" };

function decide(p: { job?: V1Job; pods?: V1Pod[]; events?: CoreV1Event[]; nowS?: number; timeoutMs?: number }): Outcome {
  return decideOutcome({
    ...(p.job ? { job: p.job } : {}),
    pods: p.pods ?? [],
    events: p.events ?? [],
    now: T0 + (p.nowS ?? 10) * 1000,
    unschedulableTimeoutMs: p.timeoutMs ?? 30_000,
  });
}

function failed(o: Outcome): FailedOutcome {
  if (o.state !== "failed") throw new Error(`expected failed, got ${JSON.stringify(o)}`);
  return o;
}

describe("decideOutcome: success", () => {
  test("Job Complete → succeeded", () => {
    const o = decide({ job: job(COMPLETE), pods: [pod({ phase: "Succeeded", statuses: [status("task", terminated(0, "Completed"))] })] });
    expect(o.state).toBe("succeeded");
    if (o.state === "succeeded") expect(o.message).toContain(JOB);
  });

  test("a native sidecar stopped with 143 never fails a task", () => {
    const p = pod({
      phase: "Succeeded",
      initContainers: [SIDECAR_COPY, NATIVE],
      initStatuses: [status("agent-sidecar", terminated(0, "Completed", 2)), status("proxy", terminated(143, "Error", 9), "envoy:v1")],
      statuses: [status("task", terminated(0, "Completed", 8))],
    });
    // Succeeded from the pod alone (before the Job controller writes Complete), and after.
    expect(decide({ job: job(), pods: [p] }).state).toBe("succeeded");
    expect(decide({ job: job(COMPLETE), pods: [p] }).state).toBe("succeeded");
  });

  test("Complete wins over anything a pod shows", () => {
    const p = pod({ phase: "Failed", reason: "Evicted", message: "The node was low on resource: memory." });
    expect(decide({ job: job(COMPLETE), pods: [p] }).state).toBe("succeeded");
  });
});

describe("decideOutcome: running", () => {
  test("Job just created, no pod yet", () => {
    expect(decide({ job: job() })).toEqual({ state: "running" });
  });
  test("pod Pending, containers being created", () => {
    const p = pod({ phase: "Pending", statuses: [status("task", waiting("ContainerCreating"))], initStatuses: [] });
    expect(decide({ job: job(), pods: [p], nowS: 2 })).toEqual({ state: "running" });
  });
  test("init containers running, task waiting PodInitializing", () => {
    const p = pod({
      phase: "Pending",
      initContainers: [SIDECAR_COPY, SETUP],
      initStatuses: [status("agent-sidecar", terminated(0, "Completed", 2)), status("setup", running(3), "x:sleep-5")],
      statuses: [status("task", waiting("PodInitializing"))],
    });
    expect(decide({ job: job(), pods: [p] })).toEqual({ state: "running" });
  });
  test("task container running next to a running native sidecar", () => {
    const p = pod({
      initContainers: [NATIVE],
      initStatuses: [status("proxy", running(1), "envoy:v1")],
      statuses: [status("task", running(2))],
    });
    expect(decide({ job: job(), pods: [p] })).toEqual({ state: "running" });
  });
  test("task exited 0 but its pod is not Succeeded yet (a sidecar still stopping)", () => {
    const p = pod({
      phase: "Running",
      initContainers: [NATIVE],
      initStatuses: [status("proxy", running(1), "envoy:v1")],
      statuses: [status("task", terminated(0, "Completed"))],
    });
    expect(decide({ job: job(), pods: [p] })).toEqual({ state: "running" });
  });
  test("pod Succeeded before the Job's Complete condition → succeeded at once", () => {
    const p = pod({ phase: "Succeeded", statuses: [status("task", terminated(0, "Completed"))] });
    const outcome = decide({ job: job(), pods: [p] });
    expect(outcome.state).toBe("succeeded");
    expect((outcome as { message: string }).message).toContain(NS);
  });
  test("a Succeeded pod being deleted does not decide", () => {
    const p = pod({ phase: "Succeeded", deletionTimestamp: at(9), statuses: [status("task", terminated(0, "Completed"))] });
    expect(decide({ job: job(), pods: [p] })).toEqual({ state: "running" });
  });
  test("a pod being deleted (its containers killed by the deletion) waits for the Job's verdict", () => {
    const p = pod({ deletionTimestamp: at(9), statuses: [status("task", terminated(143, "Error", 9))] });
    expect(decide({ job: job(), pods: [p] })).toEqual({ state: "running" });
  });
});

describe("decideOutcome: Job conditions", () => {
  test("DeadlineExceeded → active_deadline, even though the killed pod shows an exit code", () => {
    const p = pod({ phase: "Failed", deletionTimestamp: at(31), statuses: [status("task", terminated(137, "Error", 31))] });
    const f = failed(decide({ job: job(DEADLINE), pods: [p] }));
    expect(f.reason).toBe("active_deadline");
    expect(f.exitCode).toBeUndefined();
    expect(f.message).toContain("28800s");
    expect(f.message).toContain(NS);
    expect(f.message).toContain("active_deadline_seconds");
    // The message names the pod that was stopped, not only the Job.
    expect(f.message).toContain(`pod ${p.metadata!.name}`);
    expect(f.podName).toBe(p.metadata!.name);
  });
  test("FailureTarget alone (before Failed) already decides", () => {
    const f = failed(decide({ job: job([DEADLINE[0]!]), pods: [] }));
    expect(f.reason).toBe("active_deadline");
    expect(f.message).not.toContain("pod ");
  });
  test("BackoffLimitExceeded → the pod's real cause", () => {
    const p = pod({ phase: "Failed", statuses: [status("task", terminated(3, "Error"))] });
    const f = failed(decide({ job: job(BACKOFF), pods: [p] }));
    expect(f.reason).toBe("container_exit");
    expect(f.exitCode).toBe(3);
  });
  test("BackoffLimitExceeded with the pod gone → job_failed", () => {
    const f = failed(decide({ job: job(BACKOFF), pods: [] }));
    expect(f.reason).toBe("job_failed");
    expect(f.message).toContain("BackoffLimitExceeded");
    expect(f.message).toContain(`kubectl describe job -n ${NS} ${JOB}`);
  });
  test("BackoffLimitExceeded with a deleted pod still looks at its containers", () => {
    const p = pod({ phase: "Failed", deletionTimestamp: at(9), statuses: [status("task", terminated(2, "Error", 8))] });
    expect(failed(decide({ job: job(BACKOFF), pods: [p] })).exitCode).toBe(2);
  });
  test("BackoffLimitExceeded with an unexplained failed pod → job_failed naming the pod", () => {
    const p = pod({ phase: "Failed", reason: "UnexpectedAdmissionError", message: "Allocate failed", statuses: [status("task", waiting("ContainerCreating"))] });
    const f = failed(decide({ job: job(BACKOFF), pods: [p] }));
    expect(f.reason).toBe("job_failed");
    expect(f.podName).toBe(POD);
    expect(f.message).toContain("UnexpectedAdmissionError");
  });
});

describe("decideOutcome: containers", () => {
  test("exit code 3 → container_exit 3 with a kubectl logs hint", () => {
    const p = pod({ phase: "Failed", image: "x:exit-3", statuses: [status("task", terminated(3, "Error"), "x:exit-3")] });
    const f = failed(decide({ job: job(), pods: [p] }));
    expect(f).toMatchObject({ reason: "container_exit", exitCode: 3, podName: POD, containerName: "task" });
    expect(f.message).toContain(`container task in pod ${POD} (namespace ${NS}) exited with code 3`);
    expect(f.message).toContain(`kubectl logs -n ${NS} ${POD} -c task`);
  });
  test("OOMKilled → container_oom 137", () => {
    const p = pod({ phase: "Failed", image: "x:oom", statuses: [status("task", terminated(137, "OOMKilled"), "x:oom")] });
    const f = failed(decide({ job: job(), pods: [p] }));
    expect(f).toMatchObject({ reason: "container_oom", exitCode: 137, containerName: "task" });
    expect(f.message).toContain("memory");
  });
  test("a signal: exit code as reported (128+n) is kept", () => {
    const p = pod({ phase: "Failed", statuses: [status("task", terminated(137, "Error"))] });
    const f = failed(decide({ job: job(), pods: [p] }));
    expect(f).toMatchObject({ reason: "container_exit", exitCode: 137 });
    expect(f.message).toContain("signal 9");
  });
  test("a signal with exit code 0 → 128+signal", () => {
    const p = pod({ phase: "Failed", statuses: [status("task", terminated(0, "Error", 5, { signal: 15 }))] });
    expect(failed(decide({ job: job(), pods: [p] }))).toMatchObject({ reason: "container_exit", exitCode: 143 });
  });
  test("ErrImagePull → image_pull", () => {
    const p = pod({ phase: "Pending", image: "x:pull-error", statuses: [status("task", waiting("ErrImagePull", 'failed to pull image "x:pull-error": pull access denied'), "x:pull-error")] });
    const f = failed(decide({ job: job(), pods: [p], nowS: 3 }));
    expect(f).toMatchObject({ reason: "image_pull", containerName: "task" });
    expect(f.exitCode).toBeUndefined();
    expect(f.message).toContain("x:pull-error");
    expect(f.message).toContain("imagePullSecrets");
  });
  test("ImagePullBackOff → image_pull", () => {
    const p = pod({ phase: "Pending", image: "x:pull-error", statuses: [status("task", waiting("ImagePullBackOff", 'Back-off pulling image "x:pull-error"'), "x:pull-error")] });
    expect(failed(decide({ job: job(), pods: [p] })).reason).toBe("image_pull");
  });
  test("InvalidImageName → invalid_image", () => {
    const p = pod({ phase: "Pending", image: "x:invalid-image", statuses: [status("task", waiting("InvalidImageName", 'Failed to apply default image tag "x:invalid-image"'), "x:invalid-image")] });
    const f = failed(decide({ job: job(), pods: [p] }));
    expect(f.reason).toBe("invalid_image");
    expect(f.message).toContain("x:invalid-image");
  });
  test("CreateContainerConfigError → container_create", () => {
    const p = pod({ phase: "Pending", statuses: [status("task", waiting("CreateContainerConfigError", `secret "${JOB}-env" not found`))] });
    const f = failed(decide({ job: job(), pods: [p] }));
    expect(f).toMatchObject({ reason: "container_create", containerName: "task" });
    expect(f.message).toContain("not found");
  });
  test("CreateContainerError → container_create", () => {
    const p = pod({ phase: "Pending", statuses: [status("task", waiting("CreateContainerError", "failed to reserve container name"))] });
    expect(failed(decide({ job: job(), pods: [p] })).reason).toBe("container_create");
  });
});

describe("decideOutcome: init containers and sidecars", () => {
  test("the setup init container exiting 1 → init_container 1", () => {
    const p = pod({
      phase: "Failed",
      initContainers: [SIDECAR_COPY, SETUP],
      initStatuses: [status("agent-sidecar", terminated(0, "Completed", 2)), status("setup", terminated(1, "Error", 4), "x:exit-1")],
      statuses: [status("task", waiting("PodInitializing"))],
    });
    const f = failed(decide({ job: job(), pods: [p] }));
    expect(f).toMatchObject({ reason: "init_container", exitCode: 1, containerName: "setup" });
    expect(f.message).toContain(`kubectl logs -n ${NS} ${POD} -c setup`);
  });
  test("a sidecar copy init container failing → init_container", () => {
    const p = pod({
      phase: "Failed",
      initContainers: [SIDECAR_COPY],
      initStatuses: [status("agent-sidecar", terminated(2, "Error", 2))],
      statuses: [status("task", waiting("PodInitializing"))],
    });
    expect(failed(decide({ job: job(), pods: [p] }))).toMatchObject({ reason: "init_container", exitCode: 2, containerName: "agent-sidecar" });
  });
  test("an init container with CreateContainerConfigError → init_container", () => {
    const p = pod({
      phase: "Pending",
      initContainers: [SETUP],
      initStatuses: [status("setup", waiting("CreateContainerConfigError", 'configmap "setup" not found'))],
      statuses: [status("task", waiting("PodInitializing"))],
    });
    expect(failed(decide({ job: job(), pods: [p] }))).toMatchObject({ reason: "init_container", containerName: "setup" });
  });
  test("an init container that cannot pull its image → image_pull", () => {
    const p = pod({
      phase: "Pending",
      initContainers: [SIDECAR_COPY],
      initStatuses: [status("agent-sidecar", waiting("ImagePullBackOff", "Back-off pulling image"))],
      statuses: [status("task", waiting("PodInitializing"))],
    });
    expect(failed(decide({ job: job(), pods: [p] }))).toMatchObject({ reason: "image_pull", containerName: "agent-sidecar" });
  });
  test("a native sidecar's non-zero exit is ignored while the task fails for its own reason", () => {
    const p = pod({
      phase: "Failed",
      initContainers: [NATIVE],
      initStatuses: [status("proxy", terminated(143, "Error", 9), "envoy:v1")],
      statuses: [status("task", terminated(4, "Error", 8))],
    });
    expect(failed(decide({ job: job(), pods: [p] }))).toMatchObject({ reason: "container_exit", exitCode: 4, containerName: "task" });
  });
});

describe("decideOutcome: eviction", () => {
  test("status.reason Evicted → evicted", () => {
    const p = pod({ phase: "Failed", reason: "Evicted", message: "The node was low on resource: ephemeral-storage.", statuses: [status("task", terminated(137, "Error"))] });
    const f = failed(decide({ job: job(), pods: [p] }));
    expect(f.reason).toBe("evicted");
    expect(f.message).toContain("ephemeral-storage");
    expect(f.message).toContain("kubectl describe node sim-node-1");
  });
  test("DisruptionTarget condition → evicted (also while the pod is being deleted)", () => {
    const p = pod({
      deletionTimestamp: at(8),
      conditions: [...scheduled(), { type: "DisruptionTarget", status: "True", reason: "EvictionByEvictionAPI", message: "Eviction API: evicting", lastTransitionTime: at(8) }],
      statuses: [status("task", terminated(143, "Error", 9))],
    });
    expect(failed(decide({ job: job(), pods: [p] })).reason).toBe("evicted");
  });
});

describe("decideOutcome: unschedulable", () => {
  const unsched = () =>
    pod({
      phase: "Pending",
      nodeName: null,
      conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", lastProbeTime: null, lastTransitionTime: at(0), message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling." }],
      statuses: [],
    });
  test("before the timeout → running", () => {
    expect(decide({ job: job(), pods: [unsched()], nowS: 1, timeoutMs: 2000 })).toEqual({ state: "running" });
    expect(decide({ job: job(), pods: [unsched()], nowS: 2, timeoutMs: 2000 })).toEqual({ state: "running" });
  });
  test("after the timeout (measured from lastTransitionTime) → unschedulable", () => {
    const f = failed(decide({ job: job(), pods: [unsched()], nowS: 3, timeoutMs: 2000 }));
    expect(f.reason).toBe("unschedulable");
    expect(f.message).toContain("node affinity/selector");
    expect(f.message).toContain(NS);
    expect(f.message).toContain(POD);
  });
  test("timeout 0 disables the rule", () => {
    expect(decide({ job: job(), pods: [unsched()], nowS: 3600, timeoutMs: 0 })).toEqual({ state: "running" });
  });
  test("nextRecheckAt says when the timeout passes", () => {
    // lastTransitionTime has whole seconds; counted from the end of that second, never early.
    expect(nextRecheckAt({ pods: [unsched()], now: T0 + 500, unschedulableTimeoutMs: 2000 })).toBe(T0 + 2999);
    expect(nextRecheckAt({ pods: [unsched()], now: T0 + 500, unschedulableTimeoutMs: 0 })).toBeUndefined();
  });
});

describe("decideOutcome: volume mounts (Events)", () => {
  const stuck = () => pod({ phase: "Pending", statuses: [status("task", waiting("ContainerCreating"))] });
  const failedMount = event("FailedMount", "Warning", 'MountVolume.SetUp failed for volume "config" : configmap "team-config" not found', 3);
  test("a FailedMount warning for the pod → volume_mount", () => {
    const f = failed(decide({ job: job(), pods: [stuck()], events: [event("Scheduled", "Normal", "Successfully assigned", 0), failedMount] }));
    expect(f.reason).toBe("volume_mount");
    expect(f.message).toContain('configmap "team-config" not found');
    expect(f.message).toContain(POD);
  });
  test("a FailedMount followed by progress (image pulling) was transient → running", () => {
    const events = [failedMount, event("Pulling", "Normal", 'Pulling image "ubuntu:22.04"', 4)];
    expect(decide({ job: job(), pods: [stuck()], events })).toEqual({ state: "running" });
  });
  test("a FailedMount of another pod is ignored", () => {
    const other = event("FailedMount", "Warning", "MountVolume.SetUp failed", 3, "someone-else-abc12");
    expect(decide({ job: job(), pods: [stuck()], events: [other] })).toEqual({ state: "running" });
  });
  test("a FailedMount on a pod whose containers already run is ignored", () => {
    expect(decide({ job: job(), pods: [pod()], events: [failedMount] })).toEqual({ state: "running" });
  });
});

describe("needsEvents", () => {
  const creating = (phase = "Pending") => pod({ phase, statuses: [status("task", waiting("ContainerCreating"))] });
  test("false for a running pod, a fresh pod and an unscheduled pod", () => {
    expect(needsEvents([pod()], T0 + 60_000)).toBe(false);
    expect(needsEvents([creating()], T0 + 2_000)).toBe(false);
    const unscheduled = pod({ phase: "Pending", nodeName: null, statuses: [], conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", lastTransitionTime: at(0) }] });
    expect(needsEvents([unscheduled], T0 + 60_000)).toBe(false);
  });
  test("true when containers have not started long after scheduling", () => {
    expect(needsEvents([creating()], T0 + 6_000)).toBe(true);
    expect(needsEvents([creating()], T0 + 6_000, 10_000)).toBe(false);
  });
  test("true for an unusual waiting reason, false for decisive ones", () => {
    expect(needsEvents([pod({ phase: "Pending", statuses: [status("task", waiting("RunContainerError"))] })], T0 + 1_000)).toBe(true);
    expect(needsEvents([pod({ phase: "Pending", statuses: [status("task", waiting("ErrImagePull"))] })], T0 + 60_000)).toBe(false);
  });
  test("false for terminal pods", () => {
    expect(needsEvents([pod({ phase: "Succeeded", statuses: [status("task", terminated(0, "Completed"))] })], T0 + 60_000)).toBe(false);
  });
  test("nextRecheckAt says when a pod becomes slow", () => {
    expect(nextRecheckAt({ pods: [creating()], now: T0 + 1_000, unschedulableTimeoutMs: 30_000 })).toBe(T0 + 5_000);
    expect(nextRecheckAt({ pods: [pod()], now: T0 + 1_000, unschedulableTimeoutMs: 30_000 })).toBeUndefined();
  });
});

describe("raw JSON timestamps work as well as Date objects", () => {
  test("unschedulable from a plain object", () => {
    const raw = {
      metadata: { name: POD, namespace: NS, creationTimestamp: at(0) },
      status: { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", lastTransitionTime: at(0) }] },
    } as unknown as V1Pod;
    expect(failed(decideOutcome({ pods: [raw], now: T0 + 5000, unschedulableTimeoutMs: 2000 })).reason).toBe("unschedulable");
  });
});

describe("failurePhase", () => {
  test("create, run, watch, cleanup", () => {
    expect(failurePhase("job_create")).toBe("create");
    expect(failurePhase("image_pull")).toBe("run");
    expect(failurePhase("container_exit")).toBe("run");
    expect(failurePhase("pod_watch")).toBe("watch");
    expect(failurePhase("cleanup")).toBe("cleanup");
  });
});
