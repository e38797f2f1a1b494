import { describe, expect, test } from "bun:test";
import { decideAtTimeout, decidePreflight, type EventLike, type PodLike, type PreflightObservation } from "../../../src/preflight/decide.ts";
import { PSA_REJECTION } from "./fixtures.ts";

const JOB = "oz-preflight-0f3a9c2e5b7d1e48-17329";
const POD = `${JOB}-x7k2p`;

function obs(over: Partial<PreflightObservation> = {}): PreflightObservation {
  return { namespace: "tasks", jobName: JOB, image: "busybox:1.36", useImageVolumes: false, pods: [], events: [], ...over };
}

function pod(status: NonNullable<PodLike["status"]>): PodLike {
  return { metadata: { name: POD }, status };
}

const scheduled = { type: "PodScheduled", status: "True" };

function jobEvent(reason: string, message: string, type = "Warning"): EventLike {
  return { type, reason, message, involvedObject: { kind: "Job", name: JOB } };
}

describe("decidePreflight: failures", () => {
  test("FailedCreate by Pod Security: names the namespace, the policy and every violated rule; quotes the event", () => {
    const v = decidePreflight(obs({ events: [jobEvent("FailedCreate", `Error creating: ${PSA_REJECTION}`)] }));
    expect(v.state).toBe("fail");
    if (v.state === "pending") throw new Error();
    expect(v.summary).toBe(
      'Pod Security "restricted:latest" in namespace "tasks" rejected the preflight pod: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, runAsUser=0, seccompProfile',
    );
    expect(v.details?.[0]).toBe(`FailedCreate: ${PSA_REJECTION}`);
    expect(v.details).toContain('violated: runAsUser=0 (container "root-init-preflight" must not set runAsUser=0)');
    expect(v.fix).toContain("use_image_volumes: true");
    expect(v.fix).toContain("kubectl label namespace tasks --overwrite pod-security.kubernetes.io/enforce=baseline");
  });

  test("FailedCreate by a webhook, a quota, a missing ServiceAccount, anything else", () => {
    const cases: [string, RegExp][] = [
      ['admission webhook "validation.gatekeeper.sh" denied the request: [psp-root] root is not allowed', /admission webhook "validation.gatekeeper.sh"/],
      ['pods "x" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10', /ResourceQuota/],
      ['pods "x" is forbidden: error looking up service account tasks/runner: serviceaccount "runner" not found', /ServiceAccount does not exist/],
      ["something new", /could not create the preflight pod/],
    ];
    for (const [message, summary] of cases) {
      const v = decidePreflight(obs({ events: [jobEvent("FailedCreate", `Error creating: ${message}`)] }));
      if (v.state !== "fail") throw new Error(message);
      expect(v.summary).toMatch(summary);
      expect(v.details?.[0]).toBe(`FailedCreate: ${message}`);
      expect(v.fix).toBeTruthy();
    }
  });

  test("image pull failures from container states: the image, and preflight_image / imagePullSecrets", () => {
    for (const reason of ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"]) {
      const v = decidePreflight(
        obs({
          image: "x:pull-error",
          pods: [
            pod({
              phase: "Pending",
              conditions: [scheduled],
              initContainerStatuses: [{ name: "root-init-preflight", image: "x:pull-error", state: { waiting: { reason, message: "pull access denied" } } }],
            }),
          ],
        }),
      );
      if (v.state !== "fail") throw new Error(reason);
      expect(v.summary).toBe(`cannot pull the preflight image "x:pull-error" (${reason})`);
      expect(v.details).toEqual([`init container "root-init-preflight" of pod ${POD}: ${reason}: pull access denied`]);
      expect(v.fix).toContain("preflight_image");
      expect(v.fix).toContain("imagePullSecrets");
    }
  });

  test("image pull failure from a kubelet event", () => {
    const v = decidePreflight(
      obs({ pods: [pod({ phase: "Pending" })], events: [{ type: "Warning", reason: "Failed", message: 'Failed to pull image "busybox:1.36": 429 Too Many Requests', involvedObject: { kind: "Pod", name: POD } }] }),
    );
    expect(v).toMatchObject({ state: "fail", summary: 'cannot pull the preflight image "busybox:1.36" (Failed)' });
  });

  test("FailedMount in image-volume mode points at image volume support", () => {
    const v = decidePreflight(
      obs({ useImageVolumes: true, pods: [pod({ phase: "Pending" })], events: [{ type: "Warning", reason: "FailedMount", message: "MountVolume.SetUp failed for volume \"preflight-image\"", involvedObject: { kind: "Pod", name: POD } }] }),
    );
    if (v.state !== "fail") throw new Error();
    expect(v.summary).toContain("FailedMount");
    expect(v.details?.[0]).toContain('MountVolume.SetUp failed for volume "preflight-image"');
    expect(v.fix).toContain("image volumes");
  });

  test("a failed pod names the container and exit code", () => {
    const v = decidePreflight(
      obs({
        useImageVolumes: true,
        pods: [pod({ phase: "Failed", conditions: [scheduled], containerStatuses: [{ name: "main", state: { terminated: { exitCode: 1, reason: "Error" } } }] })],
      }),
    );
    if (v.state !== "fail") throw new Error();
    expect(v.summary).toBe(`the preflight pod ${POD} failed: container "main" exited 1 (Error)`);
    expect(v.details).toEqual(['container "main" exited 1 (Error)']);
  });

  test("a container that exited non-zero fails at once, before the pod's phase says so", () => {
    const v = decidePreflight(
      obs({
        pods: [pod({ phase: "Pending", conditions: [scheduled], initContainerStatuses: [{ name: "root-init-preflight", state: { terminated: { exitCode: 127, reason: "Error", message: "/bin/sh: not found" } } }] })],
      }),
    );
    if (v.state !== "fail") throw new Error();
    expect(v.summary).toBe(`the preflight pod ${POD} failed: init container "root-init-preflight" exited 127 (Error): /bin/sh: not found`);
    expect(v.fix).toContain("/bin/sh");
  });

  test("CreateContainerConfigError", () => {
    const v = decidePreflight(obs({ pods: [pod({ phase: "Pending", containerStatuses: [{ name: "main", state: { waiting: { reason: "CreateContainerConfigError", message: "bad" } } }] })] }));
    expect(v).toMatchObject({ state: "fail" });
  });

  test("Normal events do not decide anything", () => {
    const v = decidePreflight(obs({ events: [jobEvent("SuccessfulCreate", `Created pod: ${POD}`, "Normal")] }));
    expect(v).toEqual({ state: "pending", lastSeen: `no pod created yet; last event SuccessfulCreate: Created pod: ${POD}` });
  });
});

describe("decidePreflight: passing", () => {
  test("default mode: passes once a container started (admitted, image pulled)", () => {
    const pending = decidePreflight(obs({ pods: [pod({ phase: "Pending" })] }));
    expect(pending).toEqual({ state: "pending", lastSeen: `pod ${POD} Pending; not scheduled yet` });
    const waiting = decidePreflight(
      obs({ pods: [pod({ phase: "Pending", conditions: [scheduled], initContainerStatuses: [{ name: "root-init-preflight", state: { waiting: { reason: "PodInitializing" } } }] })] }),
    );
    expect(waiting).toEqual({ state: "pending", lastSeen: `pod ${POD} Pending; init container "root-init-preflight" waiting (PodInitializing)` });
    const running = decidePreflight(
      obs({ pods: [pod({ phase: "Pending", conditions: [scheduled], initContainerStatuses: [{ name: "root-init-preflight", state: { running: { startedAt: "now" } } }] })] }),
    );
    expect(running).toMatchObject({ state: "pass", summary: expect.stringContaining(`pod ${POD} was admitted and started`) });
  });

  test("default mode: an unschedulable pod passes with a note (admission is what it proves)", () => {
    const v = decidePreflight(
      obs({ pods: [pod({ phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/2 nodes are available" }] })] }),
    );
    if (v.state !== "pass") throw new Error();
    expect(v.summary).toContain("not scheduled yet");
    expect(v.details?.[0]).toBe(`pod ${POD} is Unschedulable: 0/2 nodes are available`);
  });

  test("image-volume mode: passes only when the pod succeeded", () => {
    const running = decidePreflight(
      obs({ useImageVolumes: true, pods: [pod({ phase: "Running", conditions: [scheduled], containerStatuses: [{ name: "main", state: { running: {} } }] })] }),
    );
    expect(running.state).toBe("pending");
    const done = decidePreflight(obs({ useImageVolumes: true, pods: [pod({ phase: "Succeeded" })] }));
    expect(done).toMatchObject({ state: "pass", summary: expect.stringContaining("mounted as an image volume") });
  });

  test("a deleted pod is not counted", () => {
    const v = decidePreflight(obs({ pods: [{ metadata: { name: POD, deletionTimestamp: "now" }, status: { phase: "Succeeded" } }] }));
    expect(v.state).toBe("pending");
  });
});

describe("decideAtTimeout", () => {
  test("no pod: fails naming what was last seen", () => {
    const v = decideAtTimeout(obs(), 15_000);
    expect(v.state).toBe("fail");
    expect(v.summary).toBe(`no verdict within 15 s: no pod created yet and no event about Job ${JOB} (is the Job controller running?)`);
    expect(v.fix).toContain("--timeout");
  });

  test("default mode with a pod that never started: passes (the pod was created), pull not verified", () => {
    const v = decideAtTimeout(obs({ pods: [pod({ phase: "Pending" })] }), 2_500);
    expect(v.state).toBe("pass");
    expect(v.summary).toContain("did not start within 2.5 s");
    expect(v.details).toEqual([`last seen: pod ${POD} Pending; not scheduled yet`]);
  });

  test("image-volume mode with a running pod: fails", () => {
    const v = decideAtTimeout(obs({ useImageVolumes: true, pods: [pod({ phase: "Running", conditions: [scheduled], containerStatuses: [{ name: "main", state: { running: {} } }] })] }), 15_000);
    expect(v.state).toBe("fail");
    expect(v.summary).toBe(`no verdict within 15 s: pod ${POD} Running; container "main" running`);
  });

  test("an earlier verdict wins", () => {
    expect(decideAtTimeout(obs({ events: [jobEvent("FailedCreate", `Error creating: ${PSA_REJECTION}`)] }), 15_000).summary).toContain("Pod Security");
  });
});
