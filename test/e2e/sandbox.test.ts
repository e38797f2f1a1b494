// The sandbox cluster (scripts/sandbox) against its contract
// (../shared/sandbox-contract.md): real control-plane behaviour (Job
// controller conditions, Pod Security admission, RBAC, TTL, scheduler) and the
// simulated nodes' behaviour table, logs and throughput.
//
// Run: node_modules/.bin/bun test test/e2e/sandbox.test.ts
// (starts the sandbox if it is not running; the first run builds it).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  apiFetch,
  ensureSandbox,
  freshNamespace,
  getJson,
  kubectl,
  kubectlApply,
  kubectlResult,
  type Namespace,
  serviceAccountKubeconfig,
  waitFor,
  watchPath,
} from "../support/sandbox.ts";

// Kubernetes objects as kubectl prints them (JSON)
type Json = any;

interface C {
  name: string;
  image: string;
  env?: { name: string; value: string }[];
  restartPolicy?: "Always";
  securityContext?: object;
}

function podSpec(containers: C[], init: C[] = [], extra: object = {}): object {
  return { restartPolicy: "Never", containers, ...(init.length ? { initContainers: init } : {}), ...extra };
}

function pod(name: string, containers: C[], init: C[] = [], extra: object = {}): object {
  return { apiVersion: "v1", kind: "Pod", metadata: { name }, spec: podSpec(containers, init, extra) };
}

function job(name: string, containers: C[], init: C[] = [], jobSpec: object = {}, podExtra: object = {}): object {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name },
    spec: { backoffLimit: 0, ...jobSpec, template: { spec: podSpec(containers, init, podExtra) } },
  };
}

const terminal = (p: Json) => p?.status?.phase === "Succeeded" || p?.status?.phase === "Failed";
const cs = (p: Json, name: string) =>
  [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])].find((s: Json) => s.name === name);
const cond = (o: Json, type: string) => (o?.status?.conditions ?? []).find((c: Json) => c.type === type);
const seconds = (a: string, b: string) => (Date.parse(b) - Date.parse(a)) / 1000;

/** Records every version of every pod in a namespace, from before the pods exist. */
class PodRecorder {
  readonly history = new Map<string, Json[]>();
  private watch: { stop(): void } | undefined;
  async start(namespace: string) {
    this.watch = await watchPath(`/api/v1/namespaces/${namespace}/pods`, (_type, obj) => {
      const name = obj.metadata.name as string;
      const list = this.history.get(name) ?? [];
      list.push(obj);
      this.history.set(name, list);
    });
  }
  stop() {
    this.watch?.stop();
  }
  phases(name: string): string[] {
    const out: string[] = [];
    for (const p of this.history.get(name) ?? []) {
      const phase = p.status?.phase ?? "";
      if (out[out.length - 1] !== phase) out.push(phase);
    }
    return out;
  }
  waitingReasons(name: string, container: string): string[] {
    const out: string[] = [];
    for (const p of this.history.get(name) ?? []) {
      const r = p.status && cs(p, container)?.state?.waiting?.reason;
      if (r && out[out.length - 1] !== r) out.push(r);
    }
    return out;
  }
  some(name: string, pred: (p: Json) => boolean): boolean {
    return (this.history.get(name) ?? []).some(pred);
  }
}

// each test waits with its own deadlines (waitFor); this only bounds a test
setDefaultTimeout(120_000);

let ns: Namespace;

beforeAll(async () => {
  await ensureSandbox();
  ns = await freshNamespace("sandbox-e2e");
}, 60 * 60_000);

afterAll(async () => {
  await ns?.cleanup();
});

async function podJson(name: string, namespace = ns.name): Promise<Json> {
  return getJson("pod", name, "-n", namespace);
}

async function waitPod(name: string, pred: (p: Json) => boolean, what: string, timeoutMs = 30_000): Promise<Json> {
  return waitFor(
    async () => {
      const p = await podJson(name);
      return p && pred(p) ? p : undefined;
    },
    { what: `pod ${name}: ${what}`, timeoutMs },
  );
}

async function waitJobCondition(name: string, type: string, namespace = ns.name, timeoutMs = 60_000): Promise<Json> {
  return waitFor(
    async () => {
      const j = await getJson("job", name, "-n", namespace);
      return cond(j, type)?.status === "True" ? j : undefined;
    },
    { what: `job ${name} condition ${type}`, timeoutMs },
  );
}

describe("cluster", () => {
  test("at least two simulated nodes are Ready with the contract's labels and capacity", async () => {
    // the simulated ones (the real node, sandbox-real-1, has its own machine's capacity)
    const nodes = (await getJson("nodes", "-l", "sandbox.oz-worker/node=true")).items as Json[];
    const ready = nodes.filter((n) => cond(n, "Ready")?.status === "True");
    expect(ready.length).toBeGreaterThanOrEqual(2);
    for (const n of ready) {
      expect(n.metadata.labels["kubernetes.io/os"]).toBe("linux");
      expect(n.status.allocatable.cpu).toBe("8");
      expect(n.status.allocatable.memory).toBe("32Gi");
      expect(n.status.allocatable.pods).toBe("500");
    }
    const table = await kubectl("get", "nodes");
    expect(table.match(/\bReady\b/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
  });

  test("the apiserver is a real kube-apiserver of the kubectl's version", async () => {
    const v = JSON.parse(await kubectl("version", "-o", "json"));
    expect(v.serverVersion.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(v.clientVersion.gitVersion).toBe(v.serverVersion.gitVersion);
    const metrics = await kubectl("get", "--raw", "/metrics");
    expect(metrics).toContain("apiserver_request_total");
  });
});

describe("behaviour table", () => {
  const rec = new PodRecorder();
  const names = {
    busybox: "t-busybox",
    ubuntu: "t-ubuntu",
    exit3: "t-exit3",
    sleep3: "t-sleep3",
    oom: "t-oom",
    pull: "t-pull-error",
    invalid: "t-invalid-image",
    config: "t-config-error",
    initOrder: "t-init-order",
    initFail: "t-init-fail",
    initPull: "t-init-pull",
  };

  beforeAll(async () => {
    await rec.start(ns.name);
    const m = (image: string): C[] => [{ name: "main", image }];
    await kubectlApply([
      pod(names.busybox, m("busybox:1.36")),
      pod(names.ubuntu, m("ubuntu:22.04")),
      pod(names.exit3, m("x:exit-3")),
      pod(names.sleep3, m("x:sleep-3")),
      pod(names.oom, m("x:oom")),
      pod(names.pull, m("x:pull-error")),
      pod(names.invalid, m("x:invalid-image")),
      pod(names.config, m("x:config-error")),
      pod(names.initOrder, m("busybox:1.36"), [
        { name: "first", image: "busybox:1.36" },
        { name: "second", image: "busybox:1.36" },
      ]),
      pod(names.initFail, m("busybox:1.36"), [{ name: "setup", image: "x:exit-1" }]),
      pod(names.initPull, m("busybox:1.36"), [{ name: "setup", image: "x:pull-error" }]),
    ], "-n", ns.name);
  });
  afterAll(() => rec.stop());

  test("an ordinary image runs about 1 s and exits 0 (Completed); phases Pending, Running, Succeeded", async () => {
    for (const name of [names.busybox, names.ubuntu]) {
      const p = await waitPod(name, terminal, "terminal");
      expect(p.status.phase).toBe("Succeeded");
      const t = cs(p, "main").state.terminated;
      expect(t.exitCode).toBe(0);
      expect(t.reason).toBe("Completed");
      expect(seconds(t.startedAt, t.finishedAt)).toBeGreaterThanOrEqual(0);
      expect(seconds(t.startedAt, t.finishedAt)).toBeLessThanOrEqual(2);
      expect(rec.phases(name)).toEqual(["Pending", "Running", "Succeeded"]);
      expect(rec.some(name, (v) => cs(v, "main")?.state?.running?.startedAt !== undefined)).toBe(true);
      for (const type of ["PodScheduled", "Initialized"]) expect(cond(p, type)?.status).toBe("True");
      for (const type of ["ContainersReady", "Ready"]) {
        expect(cond(p, type)?.status).toBe("False");
        expect(cond(p, type)?.reason).toBe("PodCompleted");
      }
      expect(rec.some(name, (v) => cond(v, "Ready")?.status === "True")).toBe(true);
    }
  });

  test("exit-<N> exits N (Error)", async () => {
    const p = await waitPod(names.exit3, terminal, "terminal");
    expect(p.status.phase).toBe("Failed");
    const t = cs(p, "main").state.terminated;
    expect(t.exitCode).toBe(3);
    expect(t.reason).toBe("Error");
    expect(t.startedAt).toBeString();
    expect(t.finishedAt).toBeString();
  });

  test("sleep-<S> runs S seconds, then exits 0", async () => {
    const p = await waitPod(names.sleep3, terminal, "terminal");
    expect(p.status.phase).toBe("Succeeded");
    const t = cs(p, "main").state.terminated;
    expect(t.exitCode).toBe(0);
    expect(seconds(t.startedAt, t.finishedAt)).toBeGreaterThanOrEqual(2);
    expect(seconds(t.startedAt, t.finishedAt)).toBeLessThanOrEqual(4);
  });

  test("oom is OOMKilled with exit code 137", async () => {
    const p = await waitPod(names.oom, terminal, "terminal");
    expect(p.status.phase).toBe("Failed");
    const t = cs(p, "main").state.terminated;
    expect(t.reason).toBe("OOMKilled");
    expect(t.exitCode).toBe(137);
  });

  test("pull-error waits ErrImagePull, then ImagePullBackOff; the pod stays Pending", async () => {
    const p = await waitPod(
      names.pull,
      (v) => cs(v, "main")?.state?.waiting?.reason === "ImagePullBackOff",
      "ImagePullBackOff",
    );
    expect(p.status.phase).toBe("Pending");
    expect(rec.waitingReasons(names.pull, "main")).toEqual(["ErrImagePull", "ImagePullBackOff"]);
  });

  test("invalid-image waits InvalidImageName; config-error waits CreateContainerConfigError", async () => {
    for (const [name, reason] of [
      [names.invalid, "InvalidImageName"],
      [names.config, "CreateContainerConfigError"],
    ] as const) {
      const p = await waitPod(name, (v) => cs(v, "main")?.state?.waiting?.reason === reason, reason);
      expect(p.status.phase).toBe("Pending");
      expect(cs(p, "main").state.waiting.message).toBeString();
    }
  });

  test("init containers run first, in order, then the regular containers", async () => {
    const p = await waitPod(names.initOrder, terminal, "terminal");
    expect(p.status.phase).toBe("Succeeded");
    const first = cs(p, "first").state.terminated;
    const second = cs(p, "second").state.terminated;
    const main = cs(p, "main").state.terminated;
    expect(first.exitCode).toBe(0);
    expect(second.exitCode).toBe(0);
    expect(Date.parse(second.startedAt)).toBeGreaterThanOrEqual(Date.parse(first.finishedAt));
    expect(Date.parse(main.startedAt)).toBeGreaterThanOrEqual(Date.parse(second.finishedAt));
    // while the first ran, the second and main were waiting
    expect(
      rec.some(
        names.initOrder,
        (v) =>
          cs(v, "first")?.state?.running &&
          cs(v, "second")?.state?.waiting?.reason === "PodInitializing" &&
          cs(v, "main")?.state?.waiting?.reason === "PodInitializing" &&
          cond(v, "Initialized")?.status === "False",
      ),
    ).toBe(true);
  });

  test("a failing init container (x:exit-1) fails the pod; the main container never starts", async () => {
    const p = await waitPod(names.initFail, terminal, "terminal");
    expect(p.status.phase).toBe("Failed");
    expect(cs(p, "setup").state.terminated.exitCode).toBe(1);
    expect(cs(p, "setup").state.terminated.reason).toBe("Error");
    expect(cs(p, "main").state.waiting.reason).toBe("PodInitializing");
    expect(cond(p, "Initialized")?.status).toBe("False");
  });

  test("an init container with pull-error keeps the pod Pending with waiting reasons", async () => {
    const p = await waitPod(
      names.initPull,
      (v) => cs(v, "setup")?.state?.waiting?.reason === "ImagePullBackOff",
      "init ImagePullBackOff",
    );
    expect(p.status.phase).toBe("Pending");
    expect(cs(p, "main").state.waiting.reason).toBe("PodInitializing");
    expect(rec.waitingReasons(names.initPull, "setup")).toEqual(["ErrImagePull", "ImagePullBackOff"]);
  });
});

describe("jobs and controllers", () => {
  test("a Job with busybox:1.36 reaches Complete", async () => {
    await kubectlApply(job("j-complete", [{ name: "main", image: "busybox:1.36" }]), "-n", ns.name);
    const j = await waitJobCondition("j-complete", "Complete");
    expect(j.status.succeeded).toBe(1);
  });

  test("a Job with x:exit-3 reaches Failed and its pod shows terminated exit code 3", async () => {
    await kubectlApply(job("j-exit3", [{ name: "main", image: "x:exit-3" }]), "-n", ns.name);
    const j = await waitJobCondition("j-exit3", "Failed");
    expect(cond(j, "Failed").reason).toBe("BackoffLimitExceeded");
    const pods = (await getJson("pods", "-n", ns.name, "-l", "job-name=j-exit3")).items as Json[];
    expect(pods.length).toBeGreaterThanOrEqual(1);
    expect(cs(pods[0], "main").state.terminated.exitCode).toBe(3);
  });

  test("a native sidecar runs alongside, ends with 143 and does not fail the Job", async () => {
    const rec = new PodRecorder();
    await rec.start(ns.name);
    try {
      await kubectlApply(
        job(
          "j-sidecar",
          [{ name: "main", image: "x:sleep-2" }],
          [
            { name: "setup", image: "busybox:1.36" },
            { name: "proxy", image: "envoy:sidecar", restartPolicy: "Always" },
          ],
        ),
        "-n",
        ns.name,
      );
      await waitJobCondition("j-sidecar", "Complete");
      const p = ((await getJson("pods", "-n", ns.name, "-l", "job-name=j-sidecar")).items as Json[])[0];
      expect(p.status.phase).toBe("Succeeded");
      const proxy = cs(p, "proxy").state.terminated;
      expect(proxy.exitCode).toBe(143);
      expect(cs(p, "main").state.terminated.exitCode).toBe(0);
      expect(Date.parse(proxy.finishedAt)).toBeGreaterThanOrEqual(Date.parse(cs(p, "main").state.terminated.finishedAt));
      expect(
        rec.some(
          p.metadata.name,
          (v) => cs(v, "proxy")?.state?.running && cs(v, "main")?.state?.running && v.status.phase === "Running",
        ),
      ).toBe(true);
    } finally {
      rec.stop();
    }
  });

  test("with a sidecar, a failing main container still fails the pod (and the sidecar ends with 143)", async () => {
    await kubectlApply(
      pod("t-sidecar-fail", [{ name: "main", image: "x:exit-4" }], [
        { name: "proxy", image: "envoy:sidecar", restartPolicy: "Always" },
      ]),
      "-n",
      ns.name,
    );
    const p = await waitPod("t-sidecar-fail", terminal, "terminal");
    expect(p.status.phase).toBe("Failed");
    expect(cs(p, "main").state.terminated.exitCode).toBe(4);
    expect(cs(p, "proxy").state.terminated.exitCode).toBe(143);
  });

  test("activeDeadlineSeconds fails a Job with DeadlineExceeded and its pod is deleted", async () => {
    await kubectlApply(
      job("j-deadline", [{ name: "main", image: "x:sleep-300" }], [], { activeDeadlineSeconds: 2 }),
      "-n",
      ns.name,
    );
    const j = await waitJobCondition("j-deadline", "Failed", ns.name, 30_000);
    expect(cond(j, "Failed").reason).toBe("DeadlineExceeded");
    await waitFor(async () => ((await getJson("pods", "-n", ns.name, "-l", "job-name=j-deadline")).items as Json[]).length === 0, {
      what: "the deadline Job's pod to be deleted",
      timeoutMs: 20_000,
    });
  });

  test("ttlSecondsAfterFinished deletes a finished Job", async () => {
    await kubectlApply(
      job("j-ttl", [{ name: "main", image: "busybox:1.36" }], [], { ttlSecondsAfterFinished: 2 }),
      "-n",
      ns.name,
    );
    await waitJobCondition("j-ttl", "Complete");
    await waitFor(async () => (await getJson("job", "j-ttl", "-n", ns.name)) === undefined, {
      what: "the TTL controller to delete job j-ttl",
      timeoutMs: 30_000,
    });
  });

  test("restartPolicy OnFailure restarts a failing container until the Job's backoffLimit", async () => {
    await kubectlApply(
      job("j-onfailure", [{ name: "main", image: "x:exit-2" }], [], { backoffLimit: 1 }, { restartPolicy: "OnFailure" }),
      "-n",
      ns.name,
    );
    const j = await waitJobCondition("j-onfailure", "Failed", ns.name, 60_000);
    expect(cond(j, "Failed").reason).toBe("BackoffLimitExceeded");
  });

  test("deleting a running pod completes promptly", async () => {
    await kubectlApply(pod("t-delete", [{ name: "main", image: "x:sleep-300" }]), "-n", ns.name);
    await waitPod("t-delete", (p) => p.status?.phase === "Running", "Running");
    const started = performance.now();
    await kubectl("delete", "pod", "t-delete", "-n", ns.name, "--timeout=20s");
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(await podJson("t-delete")).toBeUndefined();
  });

  test("a Deployment's pods run until deleted and become available", async () => {
    await kubectlApply(
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "d-web" },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: "d-web" } },
          template: {
            metadata: { labels: { app: "d-web" } },
            spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
          },
        },
      },
      "-n",
      ns.name,
    );
    await waitFor(async () => (await getJson("deployment", "d-web", "-n", ns.name))?.status?.availableReplicas === 2, {
      what: "deployment d-web available",
      timeoutMs: 60_000,
    });
  });

  test("a pod whose nodeSelector fits no node stays Pending with the scheduler's Unschedulable condition", async () => {
    await kubectlApply(
      [
        pod("t-unsched-selector", [{ name: "main", image: "busybox:1.36" }], [], {
          nodeSelector: { "sandbox.oz-worker/no-such-label": "true" },
        }),
        pod("t-unsched-cpu", [{ name: "main", image: "busybox:1.36" }], [], {
          containers: [{ name: "main", image: "busybox:1.36", resources: { requests: { cpu: "64" } } }],
        }),
      ],
      "-n",
      ns.name,
    );
    for (const name of ["t-unsched-selector", "t-unsched-cpu"]) {
      const p = await waitPod(name, (v) => cond(v, "PodScheduled")?.status === "False", "PodScheduled False");
      expect(cond(p, "PodScheduled").reason).toBe("Unschedulable");
      expect(p.status.phase).toBe("Pending");
    }
  });
});

describe("admission and RBAC", () => {
  test("Pod Security 'restricted' rejects a Job's root init container with a FailedCreate warning", async () => {
    const restricted = await freshNamespace("sandbox-psa", { "pod-security.kubernetes.io/enforce": "restricted" });
    try {
      const ok = {
        allowPrivilegeEscalation: false,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      };
      await kubectlApply(
        job(
          "j-root-init",
          [{ name: "main", image: "busybox:1.36", securityContext: { ...ok, runAsUser: 1000 } }],
          [{ name: "setup", image: "busybox:1.36", securityContext: { runAsUser: 0 } }],
        ),
        "-n",
        restricted.name,
      );
      const event = await waitFor(
        async () =>
          ((await getJson("events", "-n", restricted.name)).items as Json[]).find(
            (e) => e.reason === "FailedCreate" && e.involvedObject?.name === "j-root-init",
          ),
        { what: "a FailedCreate event for job j-root-init", timeoutMs: 30_000 },
      );
      expect(event.type).toBe("Warning");
      expect(event.involvedObject.kind).toBe("Job");
      expect(event.message).toContain("violates PodSecurity");
      expect(((await getJson("pods", "-n", restricted.name)).items as Json[]).length).toBe(0);
    } finally {
      await restricted.cleanup();
    }
  });

  test("a ServiceAccount without a Role is denied; a Role grants exactly its rules", async () => {
    const kubeconfig = await serviceAccountKubeconfig(ns.name, "no-role");
    const denied = await kubectlResult(["get", "pods", "-n", ns.name], { kubeconfig });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain("Forbidden");
    expect(denied.stderr).toContain(`system:serviceaccount:${ns.name}:no-role`);

    await kubectlApply(
      [
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "Role",
          metadata: { name: "pod-reader" },
          rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] }],
        },
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "pod-reader" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pod-reader" },
          subjects: [{ kind: "ServiceAccount", name: "no-role", namespace: ns.name }],
        },
      ],
      "-n",
      ns.name,
    );
    await waitFor(async () => (await kubectlResult(["get", "pods", "-n", ns.name], { kubeconfig })).code === 0, {
      what: "the RoleBinding to take effect",
    });
    const jobs = await kubectlResult(["get", "jobs", "-n", ns.name], { kubeconfig });
    expect(jobs.code).not.toBe(0);
    expect(jobs.stderr).toContain("Forbidden");
  });
});

describe("logs", () => {
  test("kubectl logs returns the contract's line, then SANDBOX_LOG", async () => {
    await kubectlApply(
      pod(
        "t-logs",
        [{ name: "main", image: "busybox:1.36", env: [{ name: "SANDBOX_LOG", value: "line one\nline two" }] }],
        [{ name: "setup", image: "alpine:3.20" }],
      ),
      "-n",
      ns.name,
    );
    await waitPod("t-logs", terminal, "terminal");
    expect(await kubectl("logs", "t-logs", "-n", ns.name, "-c", "main")).toBe(
      "sandbox: t-logs/main ran busybox:1.36\nline one\nline two\n",
    );
    expect(await kubectl("logs", "t-logs", "-n", ns.name, "-c", "setup")).toBe("sandbox: t-logs/setup ran alpine:3.20\n");
    expect(await kubectl("logs", "t-logs", "-n", ns.name, "-c", "main", "--tail=1")).toBe("line two\n");
    expect(await kubectl("logs", "t-logs", "-n", ns.name, "-c", "main", "--limit-bytes=7")).toBe("sandbox");
  });

  test("kubectl logs of a Job works, and a container that never started answers an error", async () => {
    await kubectlApply(job("j-logs", [{ name: "main", image: "x:exit-5" }]), "-n", ns.name);
    await waitJobCondition("j-logs", "Failed");
    expect(await kubectl("logs", "job/j-logs", "-n", ns.name)).toContain("/main ran x:exit-5");

    await kubectlApply(pod("t-logs-waiting", [{ name: "main", image: "x:invalid-image" }]), "-n", ns.name);
    await waitPod("t-logs-waiting", (v) => cs(v, "main")?.state?.waiting?.reason === "InvalidImageName", "waiting");
    const r = await kubectlResult(["logs", "t-logs-waiting", "-n", ns.name]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("waiting to start");
  });
});

describe("throughput", () => {
  test("500 pods created within seconds all reach a terminal phase within 10 s of their scripted end", async () => {
    const bulk = await freshNamespace("sandbox-bulk");
    try {
      const count = 500;
      const started = performance.now();
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          const body = {
            metadata: { name: `bulk-${i}` },
            spec: { restartPolicy: "Never", containers: [{ name: "main", image: "busybox:1.36" }] },
          };
          const res = await apiFetch(`/api/v1/namespaces/${bulk.name}/pods`, { method: "POST", body: JSON.stringify(body) });
          if (res.status !== 201) throw new Error(`create bulk-${i}: HTTP ${res.status} ${await res.text()}`);
        }
      };
      await Promise.all(Array.from({ length: 25 }, worker));
      const created = performance.now();
      // each pod's scripted end is about 1 s after it starts
      const deadline = created + 1_000 + 10_000;
      let terminalCount = 0;
      await waitFor(
        async () => {
          const list = (await (await apiFetch(`/api/v1/namespaces/${bulk.name}/pods`)).json()) as Json;
          terminalCount = (list.items as Json[]).filter((p) => p.status?.phase === "Succeeded").length;
          return terminalCount === count;
        },
        { what: `${count} pods Succeeded (last count: see error)`, timeoutMs: deadline - performance.now(), intervalMs: 500 },
      ).catch((e) => {
        throw new Error(`${String(e)}; ${terminalCount}/${count} Succeeded`);
      });
      const done = performance.now();
      console.log(
        `throughput: created ${count} pods in ${((created - started) / 1000).toFixed(1)} s; all Succeeded ${((done - created) / 1000).toFixed(1)} s after the last was created`,
      );
      expect((created - started) / 1000).toBeLessThan(30);
    } finally {
      await bulk.cleanup();
    }
  }, 120_000);
});
