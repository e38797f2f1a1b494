// `oz-worker run` end to end, one test per task outcome: the sandbox's real control plane, the
// local dispatch server and the compiled worker (dist/oz-worker; scripts/test builds it), running
// as a ServiceAccount with exactly the Role the chart grants. Each test checks what Oz is told
// (the dispatch server's task record: state, failure_reason, exit_code, a message naming the
// pod, container and namespace, and the protocol events), what is left in the cluster (a
// succeeded Job deleted at once, a failed one kept for its TTL with the reported-outcome
// annotation, a failed still-active Job's pods stopped), and the failed container's log in
// the worker log.
import { beforeAll, describe, expect, test } from "bun:test";
import { REPORTED_OUTCOME_ANNOTATION, taskJobName } from "../../src/core/naming.ts";
import { DEFAULT_TTL_SECONDS_AFTER_FINISHED } from "../../src/config/schema.ts";
import type { TaskRecord } from "../support/dispatch.ts";
import { type KubeJob, type KubePod, type WorkerProcess, expectSingleTerminalEvent, failedLogLine, isTerminalState, startWorker, workerSuite } from "../support/worker.ts";

// A pod that never starts lives about a second once the worker stops it: watched, not polled.
const suite = workerSuite("run-outcomes", { notePods: true });
const RUN = crypto.randomUUID().slice(0, 6);
/** Per test: generous, because a timed-out test makes bun kill every child process of the file. */
const TEST_TIMEOUT_MS = 90_000;

/** Starts a worker in the test namespace (least-privilege kubeconfig) with extra config. */
async function worker(name: string, kubernetes: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Promise<WorkerProcess> {
  const w = await startWorker({
    workerId: `e2e-out-${name}-${RUN}`,
    kubeconfig: suite.sandbox.kubeconfig(suite.ns),
    namespace: suite.ns,
    dispatch: suite.dispatch,
    kubernetes,
    config,
  });
  suite.workers.push(w);
  return w;
}

interface Ran {
  task: TaskRecord;
  jobName: string;
  /** The task's (first) pod, as first seen while the task ran. */
  pod: KubePod;
}

/** Creates a task for the worker, notes its pod as soon as one exists, waits for the report. */
async function run(w: WorkerProcess, body: Record<string, unknown>, timeoutMs = 30_000): Promise<Ran> {
  const created = await suite.dispatch.createTask({ worker_id: w.workerId, ...body });
  const jobName = taskJobName(created.task_id, created.execution_id);
  const pod = suite.sandbox.waitForPod(suite.ns, jobName, timeoutMs);
  const task = await suite.dispatch.waitForTask(created.task_id, (t) => isTerminalState(t.state), { timeoutMs });
  return { task, jobName, pod: await pod };
}

/** A failed task's record: reason, exit code, and a message naming the pod, container and namespace. */
function expectFailure(ran: Ran, reason: string, exitCode: number | null, container?: string): void {
  const { task, pod } = ran;
  expect({ state: task.state, failure_reason: task.failure_reason, exit_code: task.exit_code }).toEqual({
    state: "failed",
    failure_reason: reason,
    exit_code: exitCode,
  });
  expect(task.message).toContain(`pod ${pod.metadata.name}`);
  expect(task.message).toContain(`namespace ${suite.ns}`);
  if (container) expect(task.message).toContain(`container ${container}`);
  expectSingleTerminalEvent(task, "task_failed");
}

/** A failed task's Job stays for its TTL, marked with the outcome that was reported. */
async function expectFailedJobKept(ran: Ran, reason: string, exitCode?: number): Promise<KubeJob> {
  const job = await suite.sandbox.waitForJob(suite.ns, ran.jobName, "the reported-outcome annotation", (j) =>
    j.metadata.annotations?.[REPORTED_OUTCOME_ANNOTATION] ? j : undefined,
  );
  expect(job.metadata.deletionTimestamp).toBeUndefined();
  expect(job.spec.ttlSecondsAfterFinished).toBe(DEFAULT_TTL_SECONDS_AFTER_FINISHED);
  const recorded = JSON.parse(job.metadata.annotations![REPORTED_OUTCOME_ANNOTATION]!) as Record<string, unknown>;
  expect(recorded).toMatchObject({ result: "failed", reason, ...(exitCode !== undefined ? { exitCode } : {}) });
  return job;
}

/**
 * A task failed while its Job was still active (a pod that never starts): the worker stops the
 * pods (an already-passed activeDeadlineSeconds), so the Job controller fails the Job and
 * deletes its pod; the Job itself stays for its TTL.
 */
async function expectPodsStopped(ran: Ran): Promise<void> {
  const job = await suite.sandbox.waitForJob(suite.ns, ran.jobName, "the Job to be Failed", (j) => (conditionTrue(j, "Failed") ? j : undefined), 30_000);
  expect(job.status?.conditions?.find((c) => c.type === "Failed")?.reason).toBe("DeadlineExceeded");
  await suite.sandbox.waitForNoPods(suite.ns, ran.jobName, 30_000);
  expect(await suite.sandbox.getJob(suite.ns, ran.jobName)).toBeDefined();
}

function conditionTrue(job: KubeJob, type: string): boolean {
  return (job.status?.conditions ?? []).some((c) => c.type === type && c.status === "True");
}

describe("oz-worker run: task outcomes", () => {
  let base: WorkerProcess;
  beforeAll(async () => {
    base = await worker("base");
  }, 60_000);

  test("busybox:1.36 succeeds: task_completed once, and the Job and its pod are deleted at once", async () => {
    const ran = await run(base, { docker_image: "busybox:1.36" });
    expect(ran.task.state).toBe("succeeded");
    expect(ran.task.failure_reason).toBeNull();
    expect(ran.task.message).toContain(`Job ${ran.jobName}`);
    expect(ran.task.message).toContain(`namespace ${suite.ns}`);
    expectSingleTerminalEvent(ran.task, "task_completed");
    // Cleanup on: deleted right after the report (a TTL would take 24 h).
    const reportedAt = Date.parse(ran.task.updated_at);
    await suite.sandbox.waitForNoJob(suite.ns, ran.jobName, 10_000);
    expect(Date.now() - reportedAt).toBeLessThan(10_000);
    await suite.sandbox.waitForNoPods(suite.ns, ran.jobName, 30_000);
  }, TEST_TIMEOUT_MS);

  test("x:exit-3 → container_exit, exit code 3; the Job is kept; the container log reaches the worker log", async () => {
    const ran = await run(base, { docker_image: "x:exit-3" });
    expectFailure(ran, "container_exit", 3, "task");
    await expectFailedJobKept(ran, "container_exit", 3);
    // The Job ends Failed by itself (backoffLimit 0) and keeps its pod for inspection.
    // The pod had ended, so the worker left the Job alone: no deadline patched onto it, and the
    // Job controller's own reason stays (not a DeadlineExceeded the worker caused).
    const job = await suite.sandbox.waitForJob(suite.ns, ran.jobName, "the Job to be Failed", (j) => (conditionTrue(j, "Failed") ? j : undefined));
    expect(job.spec.activeDeadlineSeconds).toBeUndefined();
    expect(job.status?.conditions?.find((c) => c.type === "Failed")?.reason).toBe("BackoffLimitExceeded");
    expect((await suite.sandbox.podsOf(suite.ns, ran.jobName)).map((p) => p.metadata.name)).toEqual([ran.pod.metadata.name]);
    await base.waitForLog("the failed container's log", failedLogLine(ran.task.task_id, ran.pod.metadata.name, "task", "x:exit-3"));
  }, TEST_TIMEOUT_MS);

  test("x:oom → container_oom, exit code 137", async () => {
    const ran = await run(base, { docker_image: "x:oom" });
    expectFailure(ran, "container_oom", 137, "task");
    expect(ran.task.message).toContain("OOMKilled");
    await expectFailedJobKept(ran, "container_oom", 137);
    await base.waitForLog("the OOM-killed container's log", failedLogLine(ran.task.task_id, ran.pod.metadata.name, "task", "x:oom"));
  }, TEST_TIMEOUT_MS);

  test("x:pull-error → image_pull; the still-active Job's pod is stopped and the Job becomes Failed", async () => {
    const ran = await run(base, { docker_image: "x:pull-error" });
    expectFailure(ran, "image_pull", null, "task");
    expect(ran.task.message).toContain("x:pull-error");
    await expectFailedJobKept(ran, "image_pull");
    await expectPodsStopped(ran);
  }, TEST_TIMEOUT_MS);

  test("x:invalid-image → invalid_image; the pod is stopped", async () => {
    const ran = await run(base, { docker_image: "x:invalid-image" });
    expectFailure(ran, "invalid_image", null, "task");
    await expectFailedJobKept(ran, "invalid_image");
    await expectPodsStopped(ran);
  }, TEST_TIMEOUT_MS);

  test("x:config-error → container_create; the pod is stopped", async () => {
    const ran = await run(base, { docker_image: "x:config-error" });
    expectFailure(ran, "container_create", null, "task");
    expect(ran.task.message).toContain("CreateContainerConfigError");
    await expectFailedJobKept(ran, "container_create");
    await expectPodsStopped(ran);
  }, TEST_TIMEOUT_MS);
});

describe("oz-worker run: outcomes that depend on the worker's config", () => {
  test("a pod_template nodeSelector no node has, unschedulable_timeout 2s → unschedulable; the pod is stopped", async () => {
    const w = await worker("unsched", {
      unschedulable_timeout: "2s",
      pod_template: { nodeSelector: { "oz-e2e.example.com/no-such-node": "true" } },
    });
    const started = Date.now();
    const ran = await run(w, { docker_image: "busybox:1.36" });
    expectFailure(ran, "unschedulable", null);
    expect(ran.task.message).toContain("could not be scheduled");
    // Not before the timeout, and not much after it either.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(Date.now() - started).toBeLessThan(15_000);
    await expectFailedJobKept(ran, "unschedulable");
    await expectPodsStopped(ran);
  }, TEST_TIMEOUT_MS);

  test("x:sleep-60 with active_deadline_seconds 2 → active_deadline; the Job controller stops the pod", async () => {
    const w = await worker("deadline", { active_deadline_seconds: 2 });
    const ran = await run(w, { docker_image: "x:sleep-60" });
    expectFailure(ran, "active_deadline", null);
    expect(ran.task.message).toContain("active deadline of 2s");
    const job = await expectFailedJobKept(ran, "active_deadline");
    expect(job.spec.activeDeadlineSeconds).toBe(2);
    await suite.sandbox.waitForNoPods(suite.ns, ran.jobName, 30_000);
  }, TEST_TIMEOUT_MS);

  test("a failing setup_command: the `setup` init container (on the task image) fails → init_container", async () => {
    // The setup init container runs on the TASK image, and the sandbox's image tag decides how
    // a container ends: with task image x:exit-1 `setup` exits 1 before the task container
    // could start. The same worker runs a busybox task to the end (its setup passes), so
    // it is the setup step, not the config, that fails the task.
    const w = await worker("setup", { setup_command: "exit 1" });
    const control = await run(w, { docker_image: "busybox:1.36" });
    expect(control.task.state).toBe("succeeded");

    // An agent sidecar adds a copy init container before `setup`: the failure must name `setup`.
    const ran = await run(w, { docker_image: "x:exit-1", sidecar_image: "busybox:1.36" });
    expectFailure(ran, "init_container", 1, "setup");
    expect(ran.task.message).toContain("setup_command");
    await expectFailedJobKept(ran, "init_container", 1);
    const [pod] = await suite.sandbox.podsOf(suite.ns, ran.jobName);
    const init = pod!.spec.initContainers ?? [];
    expect(init.map((c) => c.name)).toEqual(["copy-sidecar-0", "setup"]);
    expect(init[1]).toMatchObject({ image: "x:exit-1", command: ["/bin/sh", "-c", "exit 1"] });
    const statusOf = (name: string) => [...(pod!.status?.initContainerStatuses ?? []), ...(pod!.status?.containerStatuses ?? [])].find((s) => s.name === name);
    expect(statusOf("copy-sidecar-0")?.state?.terminated?.exitCode).toBe(0);
    expect(statusOf("setup")?.state?.terminated?.exitCode).toBe(1);
    // The task container never started.
    expect(statusOf("task")?.state?.running ?? statusOf("task")?.state?.terminated).toBeUndefined();
    await w.waitForLog("the setup container's log", failedLogLine(ran.task.task_id, pod!.metadata.name, "setup", "x:exit-1"));
    expect(w.lines.some((l) => l.task_id === ran.task.task_id && l.container === "task" && l.msg === "container log of the failed task")).toBe(false);
  }, TEST_TIMEOUT_MS);

  test("a native sidecar (pod_template initContainer, restartPolicy Always) stopped with 143 does not fail the task", async () => {
    // cleanup off keeps the pod, to show the sidecar really ended with 143.
    const w = await worker(
      "sidecar",
      { pod_template: { initContainers: [{ name: "log-shipper", image: "busybox:1.36", restartPolicy: "Always" }] } },
      { cleanup: false },
    );
    const ran = await run(w, { docker_image: "busybox:1.36" });
    expect(ran.task.state).toBe("succeeded");
    expectSingleTerminalEvent(ran.task, "task_completed");
    const pod = await suite.sandbox.waitForPodState(suite.ns, ran.jobName, "the sidecar to end with 143", (p) => {
      const s = p.status?.initContainerStatuses?.find((c) => c.name === "log-shipper");
      return s?.state?.terminated ? s.state.terminated : undefined;
    });
    expect(pod.exitCode).toBe(143);
  }, TEST_TIMEOUT_MS);
});
