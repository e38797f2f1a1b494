// The task loop (src/worker/task-loop.ts) against the sandbox's real API server, wired as
// `oz-worker run` wires it (TaskJobs, the shared TaskWatch, container logs), with the Oz side
// as a recording `send` port. For what the dispatch server cannot produce: a follow-up run of
// a task (same task_id, new execution_id) while the previous run is alive, an assignment
// repeated while its outcome is being sent, and a cancellation whose Job delete the API
// server refuses (a Role without `delete jobs`).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { REPORTED_OUTCOME_ANNOTATION, shortHash, taskJobName } from "../../src/core/naming.ts";
import { type KubeClient, loadKubeClient } from "../../src/kube/client.ts";
import { TaskJobs } from "../../src/kube/jobs.ts";
import { readContainerLogs } from "../../src/kube/logs.ts";
import { TaskWatch } from "../../src/kube/task-watch.ts";
import type { TaskAssignment } from "../../src/oz/protocol.ts";
import { REQUIRED_PERMISSIONS, roleRules, samePermission } from "../../src/preflight/permissions.ts";
import { createLogger } from "../../src/telemetry/log.ts";
import { SecretRegistry } from "../../src/telemetry/secrets.ts";
import { TaskLoop } from "../../src/worker/task-loop.ts";
import { ADMIN_KUBECONFIG, ensureSandbox, freshNamespace, grantRole, type Namespace, serviceAccountKubeconfig, waitFor } from "../support/sandbox.ts";
import { makeAssignment, makeConfig } from "../unit/core/fixtures.ts";

const TEST_TIMEOUT_MS = 90_000;
const namespaces: Namespace[] = [];
const watches: TaskWatch[] = [];
let admin: KubeClient;

beforeAll(async () => {
  await ensureSandbox();
  admin = loadKubeClient({ kubeconfig: ADMIN_KUBECONFIG });
}, 40 * 60_000);

afterAll(async () => {
  await Promise.allSettled(watches.map((w) => w.close()));
  await Promise.allSettled(namespaces.map((ns) => ns.cleanup()));
}, 30_000);

interface Sent {
  type: string;
  data: Record<string, unknown>;
}

interface Harness {
  ns: string;
  loop: TaskLoop;
  sent: Sent[];
  /** The worker's JSON log lines. */
  lines: Record<string, unknown>[];
  assign(taskId: string, executionId: string, image: string): TaskAssignment;
}

/**
 * A task loop for a fresh namespace. `kubeconfig` defaults to a ServiceAccount with exactly
 * the worker's Role; `hold` may return a promise that a sent message waits for (a connection
 * that has not flushed it yet).
 */
async function harness(opts: { rules?: object[]; hold?: (m: Sent) => Promise<void> | undefined } = {}): Promise<Harness> {
  const namespace = await freshNamespace("task-loop");
  namespaces.push(namespace);
  const ns = namespace.name;
  await grantRole(ns, "oz-worker", opts.rules ?? roleRules(REQUIRED_PERMISSIONS));
  const kube = loadKubeClient({ kubeconfig: await serviceAccountKubeconfig(ns, "oz-worker") });
  const workerId = `loop-${crypto.randomUUID().slice(0, 8)}`;
  const config = makeConfig({ namespace: ns, inlineTaskEnv: false }, { workerId, cleanup: true });
  const secrets = new SecretRegistry();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    format: "json",
    level: "debug",
    secrets,
    stream: { write: (s: string) => lines.push(...s.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)) },
  });
  const watch = new TaskWatch({ client: kube, namespace: ns, workerHash: shortHash(workerId), unschedulableTimeoutMs: 60_000, logger }).start();
  watches.push(watch);
  await watch.synced;
  const jobs = new TaskJobs(kube, ns);
  const sent: Sent[] = [];
  const loop = new TaskLoop({
    config,
    observer: watch,
    cluster: {
      createTaskJob: (job, secret) => jobs.createTaskJob(job, secret),
      deleteJob: (name, o) => jobs.deleteJob(name, o),
      markReported: (name, outcome, o) => jobs.markReported(name, outcome, o),
      suspendJob: (name, outcome) => jobs.suspendJob(name, outcome),
      readLogs: (pod, container) => readContainerLogs(kube, ns, pod, container, { secrets }),
      resumeHeldJob: (job) => jobs.resumeHeldJob(job),
      readTaskSecretValues: (job) => jobs.readTaskSecretValues(job),
    },
    send: (message) => {
      const m = message as Sent;
      sent.push(m);
      return opts.hold?.(m) ?? Promise.resolve();
    },
    metrics: { taskStarted() {}, taskFinished() {}, taskRejected() {} },
    logger,
    secrets,
    markRetryDelayMs: 100,
  });
  const assign = (taskId: string, executionId: string, image: string): TaskAssignment =>
    makeAssignment({ task_id: taskId, execution_id: executionId, docker_image: image, sidecar_image: undefined, env_vars: {} });
  return { ns, loop, sent, lines, assign };
}

const cancelled = (taskId: string) => (m: Sent) => m.type === "task_completed" && m.data.task_id === taskId && m.data.task_state === "CANCELLED";

async function jobOf(ns: string, name: string): Promise<{ metadata: { annotations?: Record<string, string> }; status?: { conditions?: { type: string; status: string; reason?: string }[] } } | undefined> {
  const res = await admin.fetch(`/apis/batch/v1/namespaces/${ns}/jobs/${name}`);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET job ${ns}/${name}: ${res.status} ${await res.text()}`);
  return JSON.parse(await res.text()) as never;
}

async function runningPods(ns: string, jobName: string): Promise<number> {
  const res = await admin.fetch(`/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(`batch.kubernetes.io/job-name=${jobName}`)}`);
  const list = JSON.parse(await res.text()) as { items: { status?: { phase?: string } }[] };
  return list.items.filter((p) => p.status?.phase === "Running").length;
}

/** Waits for `probe`; false (instead of failing) when the deadline passes, so a test can report what it saw. */
async function within(what: string, timeoutMs: number, probe: () => Promise<boolean> | boolean): Promise<boolean> {
  try {
    await waitFor(what, async () => ((await probe()) ? true : undefined), { timeoutMs, intervalMs: 100 });
    return true;
  } catch {
    return false;
  }
}

describe("task loop on the sandbox: runs of one task", () => {
  // Issue 15 item 1: the loop kept one entry per task_id, so a follow-up overwrote the running
  // run and the previous run's end deleted the follow-up's entry.
  test("a follow-up run while the previous run is alive: both counted, the previous run's end leaves the follow-up counted and cancellable", async () => {
    const h = await harness();
    const taskId = `follow-${crypto.randomUUID().slice(0, 8)}`;
    const first = crypto.randomUUID();
    const followUp = crypto.randomUUID();
    h.loop.handleAssignment(h.assign(taskId, first, "busybox:1.36"));
    h.loop.handleAssignment(h.assign(taskId, followUp, "x:sleep-120"));
    const activeWithBoth = h.loop.activeCount;
    await waitFor("the first run's task_completed", () => h.sent.some((m) => m.type === "task_completed" && m.data.task_state === undefined) || undefined, { timeoutMs: 30_000 });
    // The first run's report and cleanup are done (its entry is gone from the loop).
    await h.loop.drain();
    await waitFor("the first run's Job to be deleted", async () => ((await jobOf(h.ns, taskJobName(taskId, first))) ? undefined : true), { timeoutMs: 20_000 });
    const followUpJob = taskJobName(taskId, followUp);
    await waitFor("the follow-up's pod to run", async () => ((await runningPods(h.ns, followUpJob)) > 0 ? true : undefined), { timeoutMs: 30_000 });
    const activeAfterFirst = h.loop.activeCount;
    h.loop.handleCancellation(taskId);
    const stopped = await within("the follow-up's Job to be deleted", 20_000, async () => (await jobOf(h.ns, followUpJob)) === undefined);
    await h.loop.drain();
    expect({
      activeWithBoth,
      activeAfterFirst,
      followUpJobStopped: stopped,
      cancellationsSent: h.sent.filter(cancelled(taskId)).length,
      cancellationIgnored: h.lines.some((l) => String(l.msg).startsWith("cancellation for a task this worker is not running")),
      activeAtEnd: h.loop.activeCount,
    }).toEqual({ activeWithBoth: 2, activeAfterFirst: 1, followUpJobStopped: true, cancellationsSent: 1, cancellationIgnored: false, activeAtEnd: 0 });
  }, TEST_TIMEOUT_MS);

  // The decision for item 1: a cancellation names only the task, so it stops every run of that
  // task this worker holds, and Oz is answered once.
  test("a cancellation while two runs of the task are alive stops both Jobs and sends one cancellation", async () => {
    const h = await harness();
    const taskId = `both-${crypto.randomUUID().slice(0, 8)}`;
    const runs = [crypto.randomUUID(), crypto.randomUUID()];
    for (const e of runs) h.loop.handleAssignment(h.assign(taskId, e, "x:sleep-120"));
    for (const e of runs) {
      await waitFor(`run ${e} to have a running pod`, async () => ((await runningPods(h.ns, taskJobName(taskId, e))) > 0 ? true : undefined), { timeoutMs: 30_000 });
    }
    h.loop.handleCancellation(taskId);
    const gone = await Promise.all(
      runs.map((e) => within(`Job of run ${e} to be deleted`, 20_000, async () => (await jobOf(h.ns, taskJobName(taskId, e))) === undefined)),
    );
    await h.loop.drain();
    expect({ gone, cancellationsSent: h.sent.filter(cancelled(taskId)).length, active: h.loop.activeCount }).toEqual({
      gone: [true, true],
      cancellationsSent: 1,
      active: 0,
    });
  }, TEST_TIMEOUT_MS);

  // Issue 15 item 4: the repeated-assignment check `state !== "done"` included "finishing".
  test("an assignment repeated after the outcome was sent is not claimed again", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    // The outcome has been handed to the connection, which has not flushed it yet.
    const h = await harness({ hold: (m) => (m.type === "task_completed" ? released : undefined) });
    const taskId = `repeat-${crypto.randomUUID().slice(0, 8)}`;
    const executionId = crypto.randomUUID();
    const assignment = h.assign(taskId, executionId, "busybox:1.36");
    h.loop.handleAssignment(assignment);
    await waitFor("the task_completed", () => h.sent.some((m) => m.type === "task_completed") || undefined, { timeoutMs: 30_000 });
    h.loop.handleAssignment(assignment);
    release();
    await h.loop.drain();
    await waitFor("the Job to be deleted", async () => ((await jobOf(h.ns, taskJobName(taskId, executionId))) ? undefined : true), { timeoutMs: 20_000 });
    expect(h.sent.map((m) => m.type)).toEqual(["task_claimed", "task_completed"]);
    expect(h.loop.activeCount).toBe(0);
  }, TEST_TIMEOUT_MS);
});

describe("task loop on the sandbox: a cancellation whose delete is refused", () => {
  // Issue 15 item 3: the worker reported CANCELLED and forgot the task; the pod ran on and the
  // Job carried no reported outcome, so the next worker reported the task again.
  test("the Job's pods are stopped as the failure path does, the cancelled outcome is recorded, and Oz is told", async () => {
    const noDelete = REQUIRED_PERMISSIONS.filter((p) => !samePermission(p, { apiGroup: "batch", resource: "jobs", verb: "delete" }));
    const h = await harness({ rules: roleRules(noDelete) });
    const taskId = `nodelete-${crypto.randomUUID().slice(0, 8)}`;
    const executionId = crypto.randomUUID();
    const jobName = taskJobName(taskId, executionId);
    h.loop.handleAssignment(h.assign(taskId, executionId, "x:sleep-120"));
    await waitFor("the task's pod to run", async () => ((await runningPods(h.ns, jobName)) > 0 ? true : undefined), { timeoutMs: 30_000 });
    h.loop.handleCancellation(taskId);
    await waitFor("the cancellation sent to Oz", () => h.sent.some(cancelled(taskId)) || undefined, { timeoutMs: 30_000 });
    const recorded = await within("the reported-outcome annotation", 20_000, async () => Boolean((await jobOf(h.ns, jobName))?.metadata.annotations?.[REPORTED_OUTCOME_ANNOTATION]));
    const podsStopped = await within("the Job's pods to stop", 30_000, async () => (await runningPods(h.ns, jobName)) === 0);
    await h.loop.drain();
    const job = await jobOf(h.ns, jobName);
    const annotation = job?.metadata.annotations?.[REPORTED_OUTCOME_ANNOTATION];
    expect({
      recorded,
      result: annotation ? (JSON.parse(annotation) as { result: string }).result : undefined,
      podsStopped,
      jobKept: job !== undefined,
      cancellationsSent: h.sent.filter(cancelled(taskId)).length,
    }).toEqual({ recorded: true, result: "cancelled", podsStopped: true, jobKept: true, cancellationsSent: 1 });
    // The delete was refused by RBAC, and the log says so.
    expect(h.lines.some((l) => l.level === "warn" && String(l.error).includes("forbidden"))).toBe(true);
  }, TEST_TIMEOUT_MS);
});
