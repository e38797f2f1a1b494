// `oz-worker run` end to end, the life around the tasks: cancellation (the pod really stops),
// the concurrency limit, the cleanup rules with cleanup on and off, SIGTERM (Jobs left in
// place, a clean close, exit 0 within 10 s), a dropped socket and a dispatch-server outage
// (each result reported exactly once), and the start-up refusals (API server unreachable: exit
// 3; a reserved worker id: exit 2). The sandbox's real control plane, the local dispatch
// server and the compiled worker, running as a ServiceAccount with exactly the chart's Role.
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPORTED_OUTCOME_ANNOTATION, taskJobName } from "../../src/core/naming.ts";
import { waitFor, type TaskRecord } from "../support/dispatch.ts";
import { type KubeJob, type WorkerProcess, expectSingleTerminalEvent, isTerminalState, startWorker, terminalEvents, workerSuite } from "../support/worker.ts";

const suite = workerSuite("run-lifecycle");
const RUN = crypto.randomUUID().slice(0, 6);
/** Per test: generous, because a timed-out test makes bun kill every child process of the file. */
const TEST_TIMEOUT_MS = 90_000;

const workerId = (name: string) => `e2e-life-${name}-${RUN}`;

async function worker(name: string, config: Record<string, unknown> = {}, kubernetes: Record<string, unknown> = {}): Promise<WorkerProcess> {
  const w = await startWorker({ workerId: workerId(name), kubeconfig: suite.sandbox.kubeconfig(suite.ns), namespace: suite.ns, dispatch: suite.dispatch, config, kubernetes });
  suite.workers.push(w);
  return w;
}

interface Started {
  task: TaskRecord;
  jobName: string;
}

async function create(w: WorkerProcess, image: string): Promise<Started> {
  const task = await suite.dispatch.createTask({ worker_id: w.workerId, docker_image: image });
  return { task, jobName: taskJobName(task.task_id, task.execution_id) };
}

/** Waits until the task is claimed and its pod's task container runs. */
async function whenRunning(s: Started): Promise<string> {
  await suite.dispatch.waitForState(s.task.task_id, "claimed", { timeoutMs: 20_000 });
  return suite.sandbox.waitForPodState(suite.ns, s.jobName, "the task container to run", (p) =>
    p.status?.phase === "Running" && p.status.containerStatuses?.find((c) => c.name === "task")?.state?.running ? p.metadata.name : undefined,
  );
}

const finished = (s: Started, timeoutMs = 30_000) =>
  suite.dispatch.waitForTask(s.task.task_id, (t) => isTerminalState(t.state), { timeoutMs });

const reportedOutcome = (job: KubeJob) => {
  const raw = job.metadata.annotations?.[REPORTED_OUTCOME_ANNOTATION];
  return raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
};

const conditionTrue = (job: KubeJob, type: string) => (job.status?.conditions ?? []).some((c) => c.type === type && c.status === "True");

function expectCancelled(task: TaskRecord): void {
  expect(task.state).toBe("cancelled");
  const cancellation = task.events.findIndex((e) => e.direction === "to_worker" && e.type === "task_cancellation");
  expect(cancellation).toBeGreaterThan(0);
  const terminal = terminalEvents(task);
  expect(terminal.map((e) => [e.type, e.data.task_state])).toEqual([["task_completed", "CANCELLED"]]);
  expect(task.events.indexOf(terminal[0]!)).toBeGreaterThan(cancellation);
}

describe("cancellation", () => {
  test("cleanup on: the running pod stops, the Job is deleted, Oz hears CANCELLED once", async () => {
    const w = await worker("cancel-on");
    const s = await create(w, "x:sleep-60");
    const pod = await whenRunning(s);
    await suite.dispatch.cancel(s.task.task_id);
    expectCancelled(await finished(s));
    await suite.sandbox.waitForNoPods(suite.ns, s.jobName, 20_000);
    await suite.sandbox.waitForNoJob(suite.ns, s.jobName, 20_000);
    expect(pod).toStartWith(s.jobName.slice(0, 50));
  }, TEST_TIMEOUT_MS);

  test("cleanup off: the pod stops and the Job stays, suspended, marked cancelled", async () => {
    const w = await worker("cancel-off", { cleanup: false });
    const s = await create(w, "x:sleep-60");
    await whenRunning(s);
    await suite.dispatch.cancel(s.task.task_id);
    expectCancelled(await finished(s));
    await suite.sandbox.waitForNoPods(suite.ns, s.jobName, 20_000);
    const job = await suite.sandbox.getJob(suite.ns, s.jobName);
    expect(job).toBeDefined();
    expect(job!.metadata.deletionTimestamp).toBeUndefined();
    expect(job!.spec.suspend).toBe(true);
    expect(job!.spec.ttlSecondsAfterFinished).toBeUndefined();
    expect(reportedOutcome(job!)).toMatchObject({ result: "cancelled" });
  }, TEST_TIMEOUT_MS);
});

describe("cleanup rules", () => {
  test("cleanup on: a succeeded Job is deleted at once, a failed one kept with the configured TTL", async () => {
    const w = await worker("clean-on", {}, { ttl_seconds_after_finished: 600 });
    const [ok, bad] = await Promise.all([create(w, "busybox:1.36"), create(w, "x:exit-2")]);
    const [okDone, badDone] = await Promise.all([finished(ok), finished(bad)]);
    expect([okDone.state, badDone.state, badDone.exit_code]).toEqual(["succeeded", "failed", 2]);
    await suite.sandbox.waitForNoJob(suite.ns, ok.jobName, 10_000);
    const kept = await suite.sandbox.waitForJob(suite.ns, bad.jobName, "marked as reported", (j) => (reportedOutcome(j) ? j : undefined));
    expect(kept.metadata.deletionTimestamp).toBeUndefined();
    expect(kept.spec.ttlSecondsAfterFinished).toBe(600);
    expect(reportedOutcome(kept)).toMatchObject({ result: "failed", reason: "container_exit", exitCode: 2 });
  }, TEST_TIMEOUT_MS);

  test("cleanup off: succeeded and failed Jobs both stay, with no TTL", async () => {
    const w = await worker("clean-off", { cleanup: false });
    const [ok, bad] = await Promise.all([create(w, "busybox:1.36"), create(w, "x:exit-2")]);
    const [okDone, badDone] = await Promise.all([finished(ok), finished(bad)]);
    expect([okDone.state, badDone.state, badDone.exit_code]).toEqual(["succeeded", "failed", 2]);
    // The mark comes after the (skipped) cleanup decision: once it is there, nothing more happens.
    for (const [s, result] of [
      [ok, "succeeded"],
      [bad, "failed"],
    ] as const) {
      const job = await suite.sandbox.waitForJob(suite.ns, s.jobName, "marked as reported", (j) => (reportedOutcome(j) ? j : undefined));
      expect(reportedOutcome(job)).toMatchObject({ result });
      expect(job.metadata.deletionTimestamp).toBeUndefined();
      expect(job.spec.ttlSecondsAfterFinished).toBeUndefined();
      expect(job.spec.suspend).not.toBe(true);
    }
    const okJob = await suite.sandbox.waitForJob(suite.ns, ok.jobName, "Complete", (j) => (conditionTrue(j, "Complete") ? j : undefined));
    expect(okJob.spec.ttlSecondsAfterFinished).toBeUndefined();
    expect(await suite.sandbox.podsOf(suite.ns, ok.jobName)).toHaveLength(1);
  }, TEST_TIMEOUT_MS);
});

describe("concurrency limit", () => {
  test("max_concurrent_tasks 1: a second task is rejected naming the limit, then runs once the first is done", async () => {
    const w = await worker("limit", { max_concurrent_tasks: 1 });
    const first = await create(w, "x:sleep-3");
    await suite.dispatch.waitForState(first.task.task_id, "claimed", { timeoutMs: 20_000 });
    const second = await create(w, "busybox:1.36");
    const secondDone = await finished(second, 60_000);
    const firstDone = await suite.dispatch.getTask(first.task.task_id);
    expect(firstDone.state).toBe("succeeded");
    expect(secondDone.state).toBe("succeeded");
    expectSingleTerminalEvent(secondDone, "task_completed");

    const rejections = secondDone.events.filter((e) => e.type === "task_rejected");
    expect(rejections.length).toBeGreaterThanOrEqual(1);
    for (const r of rejections) expect(String(r.data.reason)).toContain("max_concurrent_tasks limit (1)");
    // Re-offered by the server after each rejection (it retries after 1 s) until claimed.
    const assignments = secondDone.events.filter((e) => e.type === "task_assignment");
    expect(assignments.length).toBe(rejections.length + 1);
    // Claimed only once the first task had ended (its report goes out first): never two at once.
    const claimedAt = Date.parse(secondDone.events.find((e) => e.type === "task_claimed")!.at);
    const firstReportedAt = Date.parse(terminalEvents(firstDone)[0]!.at);
    expect(claimedAt).toBeGreaterThanOrEqual(firstReportedAt);
    expect(w.lines.some((l) => l.msg === "task rejected" && l.task_id === second.task.task_id)).toBe(true);
  }, TEST_TIMEOUT_MS);
});

describe("shutdown and the Oz connection", () => {
  test("SIGTERM while a task runs: exit 0 within 10 s, the socket closed cleanly, the Job and its pod left running", async () => {
    const w = await worker("sigterm");
    const s = await create(w, "x:sleep-30");
    const pod = await whenRunning(s);
    const t0 = performance.now();
    const code = await w.stop("SIGTERM");
    const elapsed = performance.now() - t0;
    expect(code).toBe(0);
    expect(elapsed).toBeLessThan(10_000);
    // A close handshake (1000), not a dropped connection.
    await waitFor("the server to see the close", () => (suite.dispatch.logs().includes(`worker ${w.workerId} disconnected (code 1000`) ? true : undefined), { timeoutMs: 5_000 });
    expect((await suite.dispatch.workers()).map((x) => x.worker_id)).not.toContain(w.workerId);
    // Nothing was reported for the task: it keeps running, for the next worker to re-adopt.
    const task = await suite.dispatch.getTask(s.task.task_id);
    expect(task.state).toBe("claimed");
    expect(terminalEvents(task)).toEqual([]);
    const job = await suite.sandbox.getJob(suite.ns, s.jobName);
    expect(job).toBeDefined();
    expect(job!.metadata.deletionTimestamp).toBeUndefined();
    expect(job!.spec.suspend).not.toBe(true);
    expect(reportedOutcome(job!)).toBeUndefined();
    expect(job!.status?.active).toBe(1);
    const pods = await suite.sandbox.podsOf(suite.ns, s.jobName);
    expect(pods.map((p) => [p.metadata.name, p.status?.phase, p.metadata.deletionTimestamp])).toEqual([[pod, "Running", undefined]]);
    expect(w.lines.some((l) => l.msg === "stopped")).toBe(true);
    // The close on the way out is no outage: no warning that it reconnects.
    expect(w.lines.filter((l) => l.msg.startsWith("disconnected from Oz")).map((l) => `${l.level} ${l.msg}`)).toEqual(["info disconnected from Oz: the worker is stopping"]);
  }, TEST_TIMEOUT_MS);

  test("the server drops the socket mid-task: the worker reconnects and the result arrives exactly once", async () => {
    const w = await worker("disconnect");
    const s = await create(w, "x:sleep-4");
    await whenRunning(s);
    const before = (await suite.dispatch.workers()).find((x) => x.worker_id === w.workerId)!;
    await suite.dispatch.disconnect(w.workerId);
    await suite.dispatch.waitForWorkers((ws) => ws.some((x) => x.worker_id === w.workerId && x.connected_at !== before.connected_at), { timeoutMs: 20_000 });
    expect((await finished(s)).state).toBe("succeeded");
    // A graceful stop flushes everything still queued: any duplicate would be recorded by now.
    expect(await w.stop("SIGTERM")).toBe(0);
    const task = await suite.dispatch.getTask(s.task.task_id);
    expectSingleTerminalEvent(task, "task_completed");
    expect(w.lines.some((l) => l.msg.startsWith("disconnected from Oz"))).toBe(true);
  }, TEST_TIMEOUT_MS);

  test("a dispatch-server outage: the result produced meanwhile is held (the Job too) and sent once after the reconnect", async () => {
    const w = await worker("outage");
    const s = await create(w, "x:sleep-2");
    await whenRunning(s);
    await suite.dispatch.pause();
    let resumedAt = 0;
    try {
      // The outcome is decided while nobody can hear it …
      await w.waitForLog("the task to succeed during the outage", (l) => l.msg === "task succeeded" && l.task_id === s.task.task_id, 30_000);
      // … and until it is delivered the Job is neither marked nor deleted.
      const job = await suite.sandbox.getJob(suite.ns, s.jobName);
      expect(job).toBeDefined();
      expect(reportedOutcome(job!)).toBeUndefined();
    } finally {
      resumedAt = Date.now();
      await suite.dispatch.resume();
    }
    const done = await finished(s, 30_000);
    expect(done.state).toBe("succeeded");
    expect(Date.parse(terminalEvents(done)[0]!.at)).toBeGreaterThanOrEqual(resumedAt);
    await suite.sandbox.waitForNoJob(suite.ns, s.jobName, 10_000);
    expect(await w.stop("SIGTERM")).toBe(0);
    expectSingleTerminalEvent(await suite.dispatch.getTask(s.task.task_id), "task_completed");
  }, TEST_TIMEOUT_MS);
});

describe("start-up refusals", () => {
  test("the API server unreachable: exit 3, naming the kubeconfig source and the server", async () => {
    const kubeconfig = join(tmpdir(), `oz-e2e-unreachable-${RUN}.kubeconfig`);
    const original = readFileSync(suite.sandbox.kubeconfig(suite.ns), "utf8");
    const pointed = original.replace(/server: \S+/, "server: https://127.0.0.1:1");
    expect(pointed).not.toBe(original);
    writeFileSync(kubeconfig, pointed);
    const w = await startWorker({ workerId: workerId("unreachable"), kubeconfig, namespace: suite.ns, dispatch: suite.dispatch }, { waitConnected: false });
    suite.workers.push(w);
    const code = await w.exited;
    expect(code).toBe(3);
    const error = w.lines.find((l) => l.level === "error");
    expect(error?.msg).toContain("https://127.0.0.1:1");
    expect(error?.msg).toContain(`explicit file ${kubeconfig}`);
    expect(error).toMatchObject({ server: "https://127.0.0.1:1", kubeconfig: `explicit file ${kubeconfig}` });
    expect((await suite.dispatch.workers()).map((x) => x.worker_id)).not.toContain(w.workerId);
  }, TEST_TIMEOUT_MS);

  test("a worker id beginning with warp is refused at start: exit 2", async () => {
    const w = await startWorker({ workerId: "warp-foo", kubeconfig: suite.sandbox.kubeconfig(suite.ns), namespace: suite.ns, dispatch: suite.dispatch }, { waitConnected: false });
    suite.workers.push(w);
    expect(await w.exited).toBe(2);
    expect(w.output).toContain("reserved");
    expect(w.output).toContain("warp-foo");
    expect((await suite.dispatch.workers()).map((x) => x.worker_id)).not.toContain("warp-foo");
  }, TEST_TIMEOUT_MS);
});
