// src/kube against the sandbox's real API server: the shared Job/Pod watch (one connection per
// kind, counted by our counters AND the API server's own apiserver_longrunning_requests),
// resume after the server ends a stream, relist after 410 Gone, Events for a troubled pod,
// Job creation with adoption and an owned Secret, typed errors, and log tails.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, RbacAuthorizationV1Api, type V1Job, type V1Pod, type V1Secret } from "@kubernetes/client-node";
import { decideOutcome, type Outcome } from "../../src/core/outcome.ts";
import { KubeApiError } from "../../src/kube/api-errors.ts";
import { loadKubeClient, type KubeClient } from "../../src/kube/client.ts";
import { readReportedOutcome, TaskJobs } from "../../src/kube/jobs.ts";
import { readContainerLogs } from "../../src/kube/logs.ts";
import { TaskWatch, type ExecutionSnapshot, type TaskWatchOptions } from "../../src/kube/task-watch.ts";
import { ADMIN_KUBECONFIG, ensureSandbox, expireResourceVersions, freshNamespace as createNamespace, type Namespace, serviceAccountKubeconfig, waitFor } from "../support/sandbox.ts";
import { api } from "../support/kube-api.ts";

let admin: KubeClient;
const namespaces: Namespace[] = [];
const watches: TaskWatch[] = [];

/** A fresh namespace (deleted in afterAll); returns its name. */
async function freshNamespace(prefix = "kw"): Promise<string> {
  const ns = await createNamespace(prefix);
  namespaces.push(ns);
  return ns.name;
}

/** A new cluster-admin client, with its own request counters. */
const adminClient = () => loadKubeClient({ kubeconfig: ADMIN_KUBECONFIG });

const hex16 = () => crypto.randomUUID().replaceAll("-", "").slice(0, 16);

function taskJob(name: string, workerHash: string, execHash: string, image: string, extra: { env?: Record<string, string>; nodeSelector?: Record<string, string>; secretEnv?: string } = {}): V1Job {
  const labels = {
    "oz-worker-id": "e2e-worker",
    "oz-worker-hash": workerHash,
    "oz-task-id": name,
    "oz-task-hash": execHash,
    "oz-execution-id": name,
    "oz-execution-hash": execHash,
  };
  const env = Object.entries(extra.env ?? {}).map(([n, value]) => ({ name: n, value }));
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, labels },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: "Never",
          ...(extra.nodeSelector ? { nodeSelector: extra.nodeSelector } : {}),
          containers: [
            {
              name: "task",
              image,
              env,
              ...(extra.secretEnv ? { envFrom: [{ secretRef: { name: extra.secretEnv } }] } : {}),
            },
          ],
        },
      },
    },
  };
}

function startWatch(client: KubeClient, namespace: string, workerHash: string, opts: Partial<TaskWatchOptions> = {}): TaskWatch {
  const tw = new TaskWatch({ client, namespace, workerHash, unschedulableTimeoutMs: 2_000, ...opts }).start();
  watches.push(tw);
  return tw;
}

/** A fresh namespace with a new worker hash, a new admin client and a synced TaskWatch of them. */
async function watchedNamespace(opts: Partial<TaskWatchOptions> = {}): Promise<{ ns: string; worker: string; client: KubeClient; tw: TaskWatch; jobs: TaskJobs }> {
  const ns = await freshNamespace();
  const worker = hex16();
  const client = adminClient();
  const tw = startWatch(client, ns, worker, opts);
  await tw.synced;
  return { ns, worker, client, tw, jobs: new TaskJobs(client, ns) };
}

/** Resolves with the first non-running outcome of an execution, and records every snapshot. */
function outcomeOf(tw: TaskWatch, execHash: string, unschedulableTimeoutMs = 2_000): { done: Promise<Outcome>; seen: ExecutionSnapshot[] } {
  const seen: ExecutionSnapshot[] = [];
  const done = new Promise<Outcome>((resolveDone) => {
    const unsubscribe = tw.subscribe(execHash, (snap) => {
      seen.push(snap);
      const o = decideOutcome({ ...(snap.job ? { job: snap.job } : {}), pods: snap.pods, events: snap.events, now: Date.now(), unschedulableTimeoutMs });
      if (o.state !== "running") {
        unsubscribe();
        resolveDone(o);
      }
    });
  });
  return { done, seen };
}

/** apiserver_longrunning_requests{verb="WATCH", scope="namespace"} for jobs and pods, from the API server itself. */
async function namespacedWatchGauge(): Promise<{ jobs: number; pods: number }> {
  const res = await admin.fetch("/metrics");
  const text = await res.text();
  const read = (resource: string) => {
    const line = text
      .split("\n")
      .find((l) => l.startsWith("apiserver_longrunning_requests{") && l.includes(`resource="${resource}"`) && l.includes('scope="namespace"') && l.includes('verb="WATCH"') && l.includes('subresource=""'));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  };
  return { jobs: read("jobs"), pods: read("pods") };
}

beforeAll(async () => {
  await ensureSandbox();
  admin = adminClient();
}, 40 * 60_000);

afterEach(async () => {
  await Promise.all(watches.splice(0).map((w) => w.close()));
});

afterAll(async () => {
  await Promise.allSettled(namespaces.map((ns) => ns.cleanup()));
});

describe("client", () => {
  test("an explicit kubeconfig: source, server, context, version", async () => {
    const c = loadKubeClient({ kubeconfig: ADMIN_KUBECONFIG });
    expect(c.source).toBe(`explicit file ${ADMIN_KUBECONFIG}`);
    expect(c.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const v = await c.checkReachable();
    expect(v.gitVersion).toMatch(/^v1\.\d+/);
  });

  test("default rules via KUBECONFIG name the variable and the context", () => {
    const c = loadKubeClient({ env: { KUBECONFIG: `/nonexistent/a:${ADMIN_KUBECONFIG}`, HOME: "/nonexistent" } });
    expect(c.source).toBe(`default rules (KUBECONFIG=/nonexistent/a:${ADMIN_KUBECONFIG}), context ${c.context}`);
  });

  test("an unreachable server → ClusterUnreachableError naming the source and server", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kube-watch-"));
    await Bun.write(
      `${dir}/dead.kubeconfig`,
      (await Bun.file(ADMIN_KUBECONFIG).text()).replace(/server: https:\/\/127\.0\.0\.1:\d+/, "server: https://127.0.0.1:1"),
    );
    const c = loadKubeClient({ kubeconfig: `${dir}/dead.kubeconfig` });
    const err = await c.checkReachable({ timeoutMs: 3_000 }).catch((e: unknown) => e);
    expect((err as Error).name).toBe("ClusterUnreachableError");
    expect((err as Error).message).toContain("https://127.0.0.1:1");
    expect((err as Error).message).toContain(`explicit file ${dir}/dead.kubeconfig`);
  });
});

describe("task watch", () => {
  test("sees a Job's and its Pod's whole lifecycle, then the deletion", async () => {
    const { worker, tw, jobs } = await watchedNamespace();
    const exec = hex16();
    const { done, seen } = outcomeOf(tw, exec);
    await jobs.createTaskJob(taskJob("lifecycle", worker, exec, "busybox:1.36"));
    const o = await done;
    expect(o.state).toBe("succeeded");
    const phases = seen.flatMap((s) => s.pods.map((p) => p.status?.phase ?? "none"));
    expect(phases).toContain("Succeeded");
    expect(phases.some((p) => p === "Pending" || p === "Running")).toBe(true);
    // Jobs and Pods come on two watches, so the first snapshot may hold only the pod.
    expect(seen.find((s) => s.job)?.job?.metadata?.name).toBe("lifecycle");

    // Deletion reaches the subscriber too (jobDeleted), then the execution leaves the cache.
    const deleted = new Promise<ExecutionSnapshot>((r) => tw.subscribe(exec, (s) => s.jobDeleted && r(s)));
    expect(await jobs.deleteJob("lifecycle", { propagation: "Background" })).toBe(true);
    expect((await deleted).job).toBeUndefined();
    await waitFor("the execution to leave the cache", () => (tw.snapshot(exec) === undefined ? true : undefined), { timeoutMs: 20_000 });
    expect(await jobs.deleteJob("lifecycle")).toBe(false);
  }, 30_000);

  test("many Jobs, exactly one watch connection per kind (our counters and the API server's gauge)", async () => {
    const ns = await freshNamespace();
    const worker = hex16();
    const client = adminClient();
    const base = await namespacedWatchGauge();
    const tw = startWatch(client, ns, worker);
    await tw.synced;
    const jobs = new TaskJobs(client, ns);
    const N = 40;
    const execs = Array.from({ length: N }, () => hex16());
    const outcomes = execs.map((e) => outcomeOf(tw, e).done);
    await Promise.all(execs.map((e, i) => jobs.createTaskJob(taskJob(`many-${i}`, worker, e, i % 2 ? "x:sleep-3" : "x:sleep-4"))));

    // While all of them run: one Jobs watch and one Pods watch, whatever N is. Sampled a few
    // times: never more than one each (a reconnect replaces its connection, never adds one).
    await waitFor("the pods to run", () => (execs.every((e) => tw.snapshot(e)?.pods.some((p) => p.status?.phase === "Running")) ? true : undefined), { timeoutMs: 20_000 });
    const samples: { jobs: number; pods: number }[] = [];
    for (let i = 0; i < 8; i++) {
      samples.push(await namespacedWatchGauge());
      await Bun.sleep(100);
    }
    expect(Math.max(...samples.map((x) => x.jobs - base.jobs))).toBe(1);
    expect(Math.max(...samples.map((x) => x.pods - base.pods))).toBe(1);
    expect(tw.counters.watchesOpen.jobs).toBeLessThanOrEqual(1);
    expect(tw.counters.watchesOpen.pods).toBeLessThanOrEqual(1);

    const results = await Promise.all(outcomes);
    expect(results.every((r) => r.state === "succeeded")).toBe(true);
    // No per-task requests: one list per kind, the watch requests (a busy API server may close a
    // watch early; it is resumed, not relisted), N creates, nothing else. Events lists only if a
    // pod was slow to start on a loaded machine.
    expect(tw.counters.lists).toEqual({ jobs: 1, pods: 1 });
    const watchRequests = tw.counters.watchRequests.jobs + tw.counters.watchRequests.pods;
    expect(client.counters.byVerb).toEqual({ list: 2 + tw.counters.eventLists, watch: watchRequests, create: N });

    // Closing releases both: the API server counts a watch until it sees its connection end.
    await tw.close();
    await waitFor(
      "the API server's watch gauge back to where it was",
      async () => {
        const now = await namespacedWatchGauge();
        return now.jobs === base.jobs && now.pods === base.pods ? true : undefined;
      },
      { timeoutMs: 15_000 },
    );
  }, 60_000);

  test("a watch started after the fact (a restarted worker) lists existing Jobs page by page", async () => {
    const ns = await freshNamespace();
    const worker = hex16();
    const setup = adminClient();
    const jobs = new TaskJobs(setup, ns);
    const execs = Array.from({ length: 12 }, () => hex16());
    await Promise.all(execs.map((e, i) => jobs.createTaskJob(taskJob(`before-${i}`, worker, e, i === 5 ? "x:exit-9" : "busybox:1.36"))));
    // Someone else's Job in the same namespace stays out of the cache.
    await jobs.createTaskJob(taskJob("other-worker", hex16(), hex16(), "busybox:1.36"));
    await waitFor("the pods to exist", async () => ((await api(setup, CoreV1Api).listNamespacedPod({ namespace: ns })).items.length >= 13 ? true : undefined), { timeoutMs: 20_000 });

    const client = adminClient();
    const tw = startWatch(client, ns, worker, { pageSize: 5 });
    await tw.waitForSync(10_000);
    expect(tw.executionHashes().sort()).toEqual([...execs].sort());
    expect(tw.jobs().map((j) => j.metadata?.name).sort()).toEqual(execs.map((_, i) => `before-${i}`).sort());
    expect(client.counters.byVerb.list).toBe(6); // 12 Jobs and 12 Pods in pages of 5, 5, 2
    expect(tw.counters.lists).toEqual({ jobs: 1, pods: 1 });
    const results = await Promise.all(execs.map((e) => outcomeOf(tw, e).done));
    expect(results.filter((r) => r.state === "failed")).toEqual([expect.objectContaining({ reason: "container_exit", exitCode: 9 })]);
  }, 60_000);

  test("resumes from the last resourceVersion when the server ends the stream, missing nothing", async () => {
    // The API server ends every watch after 1 s: Jobs created in between must all be seen.
    const { worker, client, tw, jobs } = await watchedNamespace({ watchTimeoutSeconds: 1 });
    const execs: string[] = [];
    const outcomes: Promise<Outcome>[] = [];
    for (let i = 0; i < 6; i++) {
      const e = hex16();
      execs.push(e);
      outcomes.push(outcomeOf(tw, e).done);
      await jobs.createTaskJob(taskJob(`resume-${i}`, worker, e, i === 3 ? "x:exit-5" : "busybox:1.36"));
      await Bun.sleep(700);
    }
    const results = await Promise.all(outcomes);
    expect(results.map((r) => r.state)).toEqual(["succeeded", "succeeded", "succeeded", "failed", "succeeded", "succeeded"]);
    expect(results[3]).toMatchObject({ reason: "container_exit", exitCode: 5 });
    expect(tw.counters.watchResumes.jobs).toBeGreaterThanOrEqual(3);
    expect(tw.counters.watchResumes.pods).toBeGreaterThanOrEqual(3);
    // Resumed, never relisted.
    expect(tw.counters.lists).toEqual({ jobs: 1, pods: 1 });
    expect(tw.counters.expired).toEqual({ jobs: 0, pods: 0 });
    expect(client.counters.byVerb.list).toBe(2);
  }, 60_000);

  test("410 Gone for an expired resourceVersion → relist, and the cache is right afterwards", async () => {
    const { worker, tw, jobs } = await watchedNamespace();
    const e1 = hex16();
    const first = outcomeOf(tw, e1).done;
    await jobs.createTaskJob(taskJob("gone-1", worker, e1, "busybox:1.36"));
    expect((await first).state).toBe("succeeded");

    // Resume both watches from resourceVersion 1 once it is expired (etcd compacted, the API
    // server's watch cache restarted past it): the real API server answers 410 Gone and the
    // watcher must relist.
    await expireResourceVersions();
    tw.resumeFromForTest("jobs", "1");
    tw.resumeFromForTest("pods", "1");
    await waitFor("both relists", () => (tw.counters.relists.jobs >= 1 && tw.counters.relists.pods >= 1 ? true : undefined), { timeoutMs: 60_000 });
    expect(tw.counters.expired.jobs).toBeGreaterThanOrEqual(1);
    expect(tw.counters.expired.pods).toBeGreaterThanOrEqual(1);

    // Deleted while the watch was away? The relist diff reports it; new Jobs still arrive.
    const e2 = hex16();
    const second = outcomeOf(tw, e2).done;
    await jobs.createTaskJob(taskJob("gone-2", worker, e2, "x:exit-7"));
    expect(await second).toMatchObject({ state: "failed", reason: "container_exit", exitCode: 7 });
    expect(tw.snapshot(e1)?.job?.metadata?.name).toBe("gone-1");
  }, 180_000);

  test("an unschedulable pod fails after the timeout although nothing in the cluster changes", async () => {
    const { ns, worker, tw, jobs } = await watchedNamespace({ unschedulableTimeoutMs: 2_000 });
    const exec = hex16();
    const { done } = outcomeOf(tw, exec, 2_000);
    const t0 = Date.now();
    await jobs.createTaskJob(taskJob("nowhere", worker, exec, "busybox:1.36", { nodeSelector: { "oz-e2e/no-such-node": "true" } }));
    const o = await done;
    expect(o).toMatchObject({ state: "failed", reason: "unschedulable" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
    expect((o as { message: string }).message).toContain(ns);
  }, 30_000);

  test("Events are read only for a pod stuck creating; a FailedMount decides volume_mount", async () => {
    const { ns, worker, tw, jobs } = await watchedNamespace({ eventsSlowAfterMs: 1_000, eventsMinIntervalMs: 1_000 });
    const exec = hex16();
    const core = api(admin, CoreV1Api);
    // A healthy task first: no Events read for it.
    const okExec = hex16();
    const ok = outcomeOf(tw, okExec).done;
    await jobs.createTaskJob(taskJob("healthy", worker, okExec, "busybox:1.36"));
    expect((await ok).state).toBe("succeeded");
    expect(tw.counters.eventLists).toBe(0);

    // The sandbox's simulated kubelet cannot get stuck mounting, so play the kubelet of a node
    // nobody runs: a pod bound to it, a status saying "scheduled, containers creating", and the
    // FailedMount warning a kubelet would record.
    const labels = { "oz-worker-hash": worker, "oz-execution-hash": exec };
    const pod: V1Pod = {
      metadata: { name: "stuck-mount", labels },
      spec: { nodeName: "ghost-node", containers: [{ name: "task", image: "busybox:1.36" }], volumes: [{ name: "cfg", configMap: { name: "missing" } }] },
    };
    const created = await core.createNamespacedPod({ namespace: ns, body: pod });
    const since = new Date(Date.now() - 1_000).toISOString();
    const statusPatch = await admin.fetch(`/api/v1/namespaces/${ns}/pods/stuck-mount/status`, {
      method: "PATCH",
      headers: { "Content-Type": "application/merge-patch+json" },
      body: JSON.stringify({
        status: {
          phase: "Pending",
          conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: since }],
          containerStatuses: [{ name: "task", image: "busybox:1.36", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } } }],
        },
      }),
    });
    expect(statusPatch.status).toBe(200);
    const { done } = outcomeOf(tw, exec);
    await core.createNamespacedEvent({
      namespace: ns,
      body: {
        metadata: { name: "stuck-mount.failedmount" },
        involvedObject: { kind: "Pod", namespace: ns, name: "stuck-mount", uid: created.metadata!.uid!, apiVersion: "v1" },
        reason: "FailedMount",
        message: 'MountVolume.SetUp failed for volume "cfg" : configmap "missing" not found',
        type: "Warning",
        source: { component: "kubelet", host: "ghost-node" },
        firstTimestamp: new Date(),
        lastTimestamp: new Date(),
        count: 1,
      },
    });
    const o = await done;
    expect(o).toMatchObject({ state: "failed", reason: "volume_mount", podName: "stuck-mount" });
    expect((o as { message: string }).message).toContain('configmap "missing" not found');
    expect(tw.counters.eventLists).toBeGreaterThanOrEqual(1);
    await core.deleteNamespacedPod({ name: "stuck-mount", namespace: ns, gracePeriodSeconds: 0 });
  }, 30_000);
});

describe("jobs", () => {
  test("createTaskJob adopts an existing Job (never two), owns the Secret, refuses another execution's name", async () => {
    const { ns, worker, tw, jobs } = await watchedNamespace();
    const exec = hex16();
    const { done } = outcomeOf(tw, exec);
    const secret: V1Secret = { metadata: { name: "adopt-env" }, stringData: { OZ_TOKEN: "s3cr3t" } };
    const job = taskJob("adopt", worker, exec, "busybox:1.36", { secretEnv: "adopt-env" });

    const a = await jobs.createTaskJob(job, secret);
    expect(a.adopted).toBe(false);
    expect(a.secretAdopted).toBe(false);
    expect(a.job?.spec?.suspend).toBe(false);
    expect(a.job?.metadata?.uid).toBeDefined();
    const b = await jobs.createTaskJob(job, secret);
    expect(b.adopted).toBe(true);
    expect(b.secretAdopted).toBe(true);
    expect(b.job?.metadata?.uid).toBe(a.job?.metadata?.uid);
    expect((await jobs.listWorkerJobs(worker)).map((j) => j.metadata?.name)).toEqual(["adopt"]);

    const s = await api(admin, CoreV1Api).readNamespacedSecret({ name: "adopt-env", namespace: ns });
    expect(s.metadata?.ownerReferences).toEqual([{ apiVersion: "batch/v1", kind: "Job", name: "adopt", uid: a.job!.metadata!.uid! }]);
    expect((await done).state).toBe("succeeded");

    const other = taskJob("adopt", worker, hex16(), "busybox:1.36");
    const err = await jobs.createTaskJob(other).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(409);

    await jobs.markReported("adopt", { result: "succeeded" });
    expect(readReportedOutcome((await jobs.getJob("adopt"))!)).toMatchObject({ result: "succeeded" });

    // Deleting the Job takes its Secret along (garbage collector, ownerReference).
    expect(await jobs.deleteJob("adopt", { propagation: "Foreground" })).toBe(true);
    await waitFor(
      "the owned Secret to be garbage-collected",
      async () => ((await api(admin, CoreV1Api).listNamespacedSecret({ namespace: ns })).items.some((x) => x.metadata?.name === "adopt-env") ? undefined : true),
      { timeoutMs: 30_000 },
    );
  }, 60_000);

  test("suspendJob stops the pod, keeps the Job and records the outcome in the same patch", async () => {
    const { worker, client, tw, jobs } = await watchedNamespace();
    const exec = hex16();
    await jobs.createTaskJob(taskJob("long", worker, exec, "x:sleep-120"));
    await waitFor("the pod to run", () => (tw.snapshot(exec)?.pods.some((p) => p.status?.phase === "Running") ? true : undefined), { timeoutMs: 20_000 });
    await jobs.suspendJob("long", { result: "cancelled" });
    const suspended = (await jobs.getJob("long"))!;
    expect(suspended.spec?.suspend).toBe(true);
    expect(readReportedOutcome(suspended)).toMatchObject({ result: "cancelled" });
    await waitFor("the pod to go", () => (tw.snapshot(exec)?.pods.length === 0 ? true : undefined), { timeoutMs: 30_000 });
    expect(tw.snapshot(exec)?.job?.metadata?.name).toBe("long");
    expect(client.counters.byVerb.delete ?? 0).toBe(0);
  }, 60_000);

  test("forbidden → a KubeApiError naming the verb and resource and pointing at the Role", async () => {
    const ns = await freshNamespace();
    const path = await serviceAccountKubeconfig(ns, "no-rights");
    const c = loadKubeClient({ kubeconfig: path });
    const err = await new TaskJobs(c, ns).createTaskJob(taskJob("denied", hex16(), hex16(), "busybox:1.36")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    const e = err as KubeApiError;
    expect(e.status).toBe(403);
    expect(e.message).toContain("create jobs");
    expect(e.message).toContain("Role");
    expect(e.message).toContain(ns);

    // The watch cannot sync either; waitForSync says why instead of hanging.
    const tw = startWatch(c, ns, hex16(), { backoffInitialMs: 100 });
    const syncErr = await tw.waitForSync(2_000).catch((x: unknown) => x);
    expect((syncErr as Error).message).toContain("did not sync");
    expect((syncErr as Error).message).toContain("forbidden: cannot list");

    // Jobs allowed, Secrets not: the Job created (suspended) for the Secret is taken back.
    const rbac = api(admin, RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: "jobs-only" }, rules: [{ apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "delete", "patch"] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "jobs-only" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "jobs-only" },
        subjects: [{ kind: "ServiceAccount", name: "no-rights", namespace: ns }],
      },
    });
    const jobs = new TaskJobs(c, ns);
    const secretErr = await waitFor("the Role to apply", async () => {
      const x = await jobs.createTaskJob(taskJob("needs-secret", hex16(), hex16(), "busybox:1.36"), { metadata: { name: "needs-secret-env" }, stringData: { A: "b" } }).catch((e: unknown) => e);
      return x instanceof KubeApiError && x.resource === "secrets" ? x : undefined;
    }, { timeoutMs: 20_000 });
    expect(secretErr.status).toBe(403);
    expect(secretErr.message).toContain("create secrets");
    expect(await jobs.getJob("needs-secret")).toBeUndefined();
  }, 30_000);
});

describe("logs", () => {
  test("the tail of a big log, with a truncation marker; small logs whole", async () => {
    const { ns, worker, client, tw, jobs } = await watchedNamespace();
    const exec = hex16();
    const { done } = outcomeOf(tw, exec);
    const lines = Array.from({ length: 6_000 }, (_, i) => `line ${String(i).padStart(5, "0")} ${"x".repeat(40)}`);
    const big = lines.join("\n");
    await jobs.createTaskJob(taskJob("chatty", worker, exec, "busybox:1.36", { env: { SANDBOX_LOG: big } }));
    expect((await done).state).toBe("succeeded");
    const pod = tw.snapshot(exec)!.pods[0]!.metadata!.name!;

    const maxBytes = 64 * 1024;
    const tail = await readContainerLogs(client, ns, pod, "task", { maxBytes });
    expect(tail.totalBytes).toBeGreaterThan(big.length);
    expect(tail.truncatedBytes).toBe(tail.totalBytes - maxBytes);
    expect(tail.text.startsWith(`[... ${tail.truncatedBytes} bytes truncated ...]\n`)).toBe(true);
    expect(tail.text.trimEnd().endsWith(lines[lines.length - 1]!)).toBe(true);
    expect(tail.text).not.toContain("line 00000");

    const whole = await readContainerLogs(client, ns, pod, "task");
    expect(whole.truncatedBytes).toBe(0);
    expect(whole.text).toContain(`sandbox: ${pod}/task ran busybox:1.36`);
    expect(whole.text).toContain("line 00000");

    const missing = await readContainerLogs(client, ns, "no-such-pod", "task").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(KubeApiError);
    expect((missing as KubeApiError).status).toBe(404);
  }, 60_000);
});
