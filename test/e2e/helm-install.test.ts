// The product page's install path, played as a user would on the sandbox: the worker image
// (scripts/image, loaded into the real node), `kubectl create namespace warp-oz`, the API-key
// Secret, `helm install` of charts/oz-agent-worker with only what the sandbox needs (image
// repository and tag, the dispatch server's URLs on the real node's host address, scheduling
// onto the real node), then the worker pod on the real node with in-cluster auth (no
// kubeconfig): Ready, connected, preflight passed in the pod; real tasks; `helm upgrade`
// rolling the pod; the pod deleted mid-task and the Job re-adopted; `helm uninstall`.
// The tests run in order and share the release.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { taskJobName } from "../../src/core/naming.ts";
import { startDispatchServer, type DispatchServer, type TaskRecord } from "../support/dispatch.ts";
import { chartDir, ensureHelm, helm, valuesFile } from "../support/helm.ts";
import { buildImage } from "../support/image.ts";
import { hostAddress, REAL_IMAGES, REAL_NODE_ENABLED, REAL_NODE_NAME, REAL_NODE_POD_TEMPLATE } from "../support/real-node.ts";
import { ADMIN_KUBECONFIG, ensureSandbox, getJson, kubectl, kubectlResult, waitFor } from "../support/sandbox.ts";
import { isTerminalState, terminalEvents } from "../support/worker.ts";

const NS = "warp-oz";
const RELEASE = "oz-agent-worker";
const WORKER_ID = "oz-k8s-worker";
const DEPLOYMENT = RELEASE;
const TEST_TIMEOUT_MS = 240_000;

let dispatch: DispatchServer;
/** helm as the cluster admin (a user's kubeconfig); the worker itself uses none. */
const helmAdmin = (...args: string[]) => helm(...args, "--kubeconfig", ADMIN_KUBECONFIG);
let imageRef: string;
let values: string;

interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec: { nodeName?: string; containers: { name: string; image: string; args?: string[] }[] };
  status?: { phase?: string; conditions?: { type: string; status: string }[]; containerStatuses?: { name: string; state?: { running?: object; terminated?: { exitCode: number } } }[] };
}

/** The worker pods of the release, oldest first. */
async function workerPods(): Promise<Pod[]> {
  const list = (await getJson("pods", "-n", NS, "-l", `app.kubernetes.io/instance=${RELEASE}`)) as { items: Pod[] } | undefined;
  return (list?.items ?? []).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

const isReady = (p: Pod) => !p.metadata.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");

/** Waits for a Ready worker pod other than `except`, returning it. */
function readyWorkerPod(except?: string, timeoutMs = 180_000): Promise<Pod> {
  let last: Pod[] = [];
  return waitFor(
    `a Ready worker pod${except ? ` other than ${except}` : ""}`,
    async () => {
      last = await workerPods();
      return last.find((p) => isReady(p) && p.metadata.name !== except);
    },
    { timeoutMs, intervalMs: 250, detail: () => JSON.stringify(last.map((p) => ({ name: p.metadata.name, status: p.status })), null, 1) },
  );
}

/** The worker container's log (the pod's only container, whatever the chart names it). */
async function workerLog(pod: string): Promise<string> {
  const result = await kubectlResult(["-n", NS, "logs", pod]);
  if (result.code !== 0) throw new Error(`kubectl logs ${pod} failed: ${result.stderr}`);
  return result.stdout;
}

/** A task for the installed worker: the real node's dev image and stand-in agent. */
async function createTask(mode: string): Promise<{ task: TaskRecord; jobName: string }> {
  const task = await dispatch.createTask({ worker_id: WORKER_ID, docker_image: REAL_IMAGES.dev, sidecar_image: REAL_IMAGES.agent, env_vars: { SANDBOX_AGENT: mode } });
  return { task, jobName: taskJobName(task.task_id, task.execution_id) };
}

const finished = (taskId: string, timeoutMs = 90_000) => dispatch.waitForTask(taskId, (t) => isTerminalState(t.state), { timeoutMs });

/** The task's pod runs its task container (a real process on the real node). */
function whenTaskRuns(jobName: string): Promise<true> {
  return waitFor(`the task container of Job ${jobName} to run`, async () => {
    const list = (await getJson("pods", "-n", NS, "-l", `batch.kubernetes.io/job-name=${jobName}`)) as { items: Pod[] } | undefined;
    return list?.items.some((p) => p.status?.containerStatuses?.some((c) => c.name === "task" && c.state?.running)) ? true : undefined;
  }, { timeoutMs: 90_000, intervalMs: 250 });
}

function reportedOnce(task: TaskRecord, type: "task_completed" | "task_failed", state?: string): void {
  const terminal = terminalEvents(task);
  expect(terminal.map((e) => e.type)).toEqual([type]);
  if (state) expect(terminal[0]?.data.task_state).toBe(state);
}

/** RSS of the worker process in the pod, read on this machine (the pod runs here). */
function workerRssKiB(podUid: string): number | undefined {
  for (const entry of new Bun.Glob("[0-9]*").scanSync({ cwd: "/proc", onlyFiles: false })) {
    try {
      const cgroup = readFileSync(`/proc/${entry}/cgroup`, "utf8");
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (!cgroup.includes(podUid) || !cmdline.includes("oz-worker")) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry}/status`, "utf8"))?.[1];
      if (rss) return Number(rss);
    } catch {
      // the process ended while being read
    }
  }
  return undefined;
}

beforeAll(async () => {
  if (!REAL_NODE_ENABLED) return;
  await ensureSandbox();
  await ensureHelm();
  imageRef = (await buildImage({ load: true })).ref;
  dispatch = await startDispatchServer({ host: await hostAddress() });
  // a release left by an interrupted run
  if ((await kubectlResult(["get", "namespace", NS])).code === 0) {
    await helmAdmin("uninstall", RELEASE, "--namespace", NS, "--wait");
    await kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s");
  }
  const [repository, tag] = [imageRef.slice(0, imageRef.lastIndexOf(":")), imageRef.slice(imageRef.lastIndexOf(":") + 1)];
  // only what the sandbox needs beside the product page's --set flags
  values = valuesFile("helm-install", {
    image: { repository, tag, pullPolicy: "Never" },
    warp: { webSocketURL: dispatch.wsUrl, serverRootURL: dispatch.url },
    worker: { nodeSelector: REAL_NODE_POD_TEMPLATE.nodeSelector, tolerations: REAL_NODE_POD_TEMPLATE.tolerations, logLevel: "debug" },
    kubernetesBackend: { podTemplate: REAL_NODE_POD_TEMPLATE },
  });
}, 60 * 60_000);

afterAll(async () => {
  await dispatch?.stop();
  if (REAL_NODE_ENABLED) await kubectlResult(["delete", "namespace", NS, "--wait=false"]);
}, 60_000);

describe.skipIf(!REAL_NODE_ENABLED)("helm install on the sandbox, as the product page says", () => {
  let firstPod: Pod | undefined;
  /** The tests share the release: each needs the install to have worked. */
  const installed = (): Pod => {
    if (!firstPod) throw new Error("the release is not installed (see the install test)");
    return firstPod;
  };

  test("install: the worker pod on the real node becomes Ready with in-cluster auth, connected, its preflight passed", async () => {
    await kubectl("create", "namespace", NS);
    await kubectl("create", "secret", "generic", "oz-agent-worker", `--from-literal=WARP_API_KEY=${dispatch.apiKey}`, "-n", NS);
    const t0 = performance.now();
    const install = await helmAdmin("install", RELEASE, chartDir, "--namespace", NS, "--set", `worker.workerId=${WORKER_ID}`, "--set", `image.tag=${imageRef.slice(imageRef.lastIndexOf(":") + 1)}`, "-f", values);
    expect(install.code, install.stderr).toBe(0);
    firstPod = await readyWorkerPod();
    const readySeconds = (performance.now() - t0) / 1000;
    console.log(`helm install to worker pod Ready: ${readySeconds.toFixed(1)} s`);
    expect(firstPod.spec.nodeName).toBe(REAL_NODE_NAME);
    expect(firstPod.spec.containers[0]?.image).toBe(imageRef);
    // no kubeconfig anywhere: the chart's config has none and the pod uses its ServiceAccount
    expect(firstPod.spec.containers[0]?.args?.join(" ")).not.toContain("kubeconfig");
    const log = await workerLog(firstPod.metadata.name);
    expect(log).toContain("Connected to Oz. Listening for tasks");
    expect(log).toContain("in-cluster");
    expect(log).toMatch(/preflight passed/i);
    expect((await dispatch.workers()).map((w) => w.worker_id)).toContain(WORKER_ID);
    const rss = workerRssKiB(firstPod.metadata.uid);
    console.log(`worker RSS in the pod: ${rss === undefined ? "unknown" : `${(rss / 1024).toFixed(0)} MiB`}`);
  }, TEST_TIMEOUT_MS);

  test("tasks run as real containers on the real node: a success, a failure (exit 3) and a cancellation, each reported once", async () => {
    installed();
    const ok = await createTask("ok");
    const fail = await createTask("exit-3");
    const cancel = await createTask("sleep-600");
    await whenTaskRuns(cancel.jobName);
    await dispatch.cancel(cancel.task.task_id);
    const [okDone, failDone, cancelDone] = await Promise.all([finished(ok.task.task_id), finished(fail.task.task_id), finished(cancel.task.task_id)]);
    expect(okDone.state).toBe("succeeded");
    reportedOnce(okDone, "task_completed");
    expect({ state: failDone.state, reason: failDone.failure_reason, code: failDone.exit_code }).toEqual({ state: "failed", reason: "container_exit", code: 3 });
    reportedOnce(failDone, "task_failed");
    expect(cancelDone.state).toBe("cancelled");
    reportedOnce(cancelDone, "task_completed", "CANCELLED");
  }, TEST_TIMEOUT_MS);

  test("helm upgrade --set worker.maxConcurrentTasks=1 rolls the pod, and the new pod rejects a second concurrent task", async () => {
    installed();
    const before = (await getJson("deployment", DEPLOYMENT, "-n", NS)) as { spec: { template: { metadata: { annotations: Record<string, string> } } } };
    const upgrade = await helmAdmin("upgrade", RELEASE, chartDir, "--namespace", NS, "--reuse-values", "--set", "worker.maxConcurrentTasks=1");
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const after = (await getJson("deployment", DEPLOYMENT, "-n", NS)) as typeof before;
    expect(after.spec.template.metadata.annotations["checksum/config"]).not.toBe(before.spec.template.metadata.annotations["checksum/config"]);
    const pod = await readyWorkerPod(installed().metadata.name);
    firstPod = pod;
    const first = await createTask("sleep-600");
    await whenTaskRuns(first.jobName);
    const second = await createTask("ok");
    await waitFor("the worker to reject the second task", async () => {
      const t = await dispatch.getTask(second.task.task_id);
      return t.events.some((e) => e.direction === "from_worker" && e.type === "task_rejected") ? t : undefined;
    }, { timeoutMs: 30_000 });
    await dispatch.cancel(first.task.task_id);
    expect((await finished(first.task.task_id)).state).toBe("cancelled");
    // once the slot is free the rejected task is offered again and runs
    expect((await finished(second.task.task_id)).state).toBe("succeeded");
  }, TEST_TIMEOUT_MS);

  test("deleting the worker pod mid-task: the new pod re-adopts the Job, the outcome is reported once; the old pod exits within its grace period", async () => {
    const running = await createTask("sleep-25");
    await whenTaskRuns(running.jobName);
    const old = installed();
    const t0 = performance.now();
    const deletion = kubectl("-n", NS, "delete", "pod", old.metadata.name, "--wait=true", "--timeout=120s");
    const replacement = await readyWorkerPod(old.metadata.name);
    const newReady = (performance.now() - t0) / 1000;
    await deletion;
    const oldGone = (performance.now() - t0) / 1000;
    console.log(`worker pod deleted: old pod gone after ${oldGone.toFixed(1)} s (grace 30 s), new pod Ready after ${newReady.toFixed(1)} s`);
    expect(oldGone).toBeLessThan(30);
    const done = await finished(running.task.task_id, 120_000);
    expect(done.state).toBe("succeeded");
    reportedOnce(done, "task_completed");
    expect(await workerLog(replacement.metadata.name)).toContain(running.task.task_id);
    firstPod = replacement;
  }, TEST_TIMEOUT_MS);

  test("helm uninstall removes the chart's objects and leaves a running task Job alone", async () => {
    installed();
    const running = await createTask("sleep-600");
    await whenTaskRuns(running.jobName);
    const uninstall = await helmAdmin("uninstall", RELEASE, "--namespace", NS, "--wait");
    expect(uninstall.code, uninstall.stderr).toBe(0);
    for (const kind of ["deployment", "configmap", "serviceaccount", "role", "rolebinding"]) {
      const left = (await kubectl("get", kind, "-n", NS, "-l", `app.kubernetes.io/instance=${RELEASE}`, "-o", "name")).trim();
      expect(left, kind).toBe("");
    }
    await waitFor("the worker pods to be gone", async () => ((await workerPods()).length === 0 ? true : undefined), { timeoutMs: 60_000 });
    // the task Job and its pod keep running: nobody reports them any more (docs/helm.md)
    const job = await getJson("job", running.jobName, "-n", NS);
    expect(job?.metadata?.deletionTimestamp).toBeUndefined();
    await whenTaskRuns(running.jobName);
  }, TEST_TIMEOUT_MS);
});
