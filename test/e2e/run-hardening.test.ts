// `oz-worker run` end to end (the compiled worker, the sandbox, the dispatch server) for two
// defects of issue 15: a shutdown that must end the process within its budget whatever is
// still pending, and server-supplied strings that must reach log lines bounded and escaped.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { REPORTED_OUTCOME_ANNOTATION, taskJobName } from "../../src/core/naming.ts";
import { startDispatchServer, type DispatchServer } from "../support/dispatch.ts";
import { type WorkerProcess, type WorkerSandbox, openWorkerSandbox, startWorker, stopWorkers } from "../support/worker.ts";
import { waitFor } from "../support/wait.ts";

let sandbox: WorkerSandbox;
let ns: string;
const dispatches: DispatchServer[] = [];
const workers: WorkerProcess[] = [];
const RUN = crypto.randomUUID().slice(0, 6);
const TEST_TIMEOUT_MS = 90_000;

beforeAll(async () => {
  sandbox = await openWorkerSandbox();
  ns = await sandbox.workerNamespace("run-hardening");
}, 40 * 60_000);

afterAll(async () => {
  await stopWorkers(workers);
  await Promise.allSettled(dispatches.map((d) => d.stop()));
  await sandbox?.cleanup();
}, 30_000);

async function worker(name: string): Promise<{ w: WorkerProcess; dispatch: DispatchServer }> {
  const dispatch = await startDispatchServer();
  dispatches.push(dispatch);
  const w = await startWorker({ workerId: `e2e-hard-${name}-${RUN}`, kubeconfig: sandbox.kubeconfig(ns), namespace: ns, dispatch });
  workers.push(w);
  return { w, dispatch };
}

describe("oz-worker run: shutdown", () => {
  // Issue 15 item 2: when drain() outlasted the 8 s budget the worker logged "stopped" but kept
  // its connection and watch, redialling Oz until SIGKILL.
  test("SIGTERM while an outcome waits for an unreachable Oz: the process exits within the budget, the Job stays unreported", async () => {
    const { w, dispatch } = await worker("shutdown");
    const created = await dispatch.createTask({ worker_id: w.workerId, docker_image: "x:sleep-3" });
    await dispatch.waitForState(created.task_id, "claimed", { timeoutMs: 30_000 });
    // Oz goes away; the task then ends and its report waits in the outbox (drain cannot finish).
    await dispatch.pause();
    await w.waitForLog("the task's outcome, waiting to be sent", (l) => l.msg === "task succeeded" && l.task_id === created.task_id, 30_000);
    const signalled = Date.now();
    w.child.kill("SIGTERM");
    const exited = await Promise.race([w.exited.then((code) => ({ code, afterMs: Date.now() - signalled })), waitForMs(20_000)]);
    if (exited === undefined) w.child.kill("SIGKILL");
    expect(exited).toBeDefined();
    // 8 s budget, plus the process's own start and exit.
    expect(exited!.afterMs).toBeLessThan(11_000);
    expect(exited!.code).toBe(0);
    expect(w.lines.some((l) => l.msg === "stopped")).toBe(true);
    // The outcome never reached Oz, so the Job stays for the next worker to report.
    const job = await sandbox.getJob(ns, taskJobName(created.task_id, created.execution_id));
    expect(job).toBeDefined();
    expect(job?.metadata.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBeUndefined();
  }, TEST_TIMEOUT_MS);
});

/** Resolves (with undefined) after `ms`: the bound of a race, not a stand-in for a condition. */
function waitForMs(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

describe("oz-worker run: server-supplied strings in log lines", () => {
  const hostile = `\u001b]0;pwned\u0007\u001b[2J${"x".repeat(5_000)}`;
  const unsafe = /[\u0000-\u001f\u007f-\u009f]/;

  // Issue 15 item 8: the invalid assignment's log line carried the raw execution_id, unbounded
  // and with terminal control characters (a valid assignment's ids cannot hold them).
  test("an invalid assignment whose execution_id holds terminal control characters, 5,000 characters long: its log lines carry it bounded and escaped", async () => {
    const { w, dispatch } = await worker("strings");
    const invalid = await dispatch.createTask({ worker_id: w.workerId, execution_id: hostile, docker_image: "busybox:1.36" });
    await dispatch.waitForTask(invalid.task_id, (t) => t.state === "failed", { timeoutMs: 30_000 });
    const line = await waitFor("a log line about the invalid assignment", () => w.lines.find((l) => l.task_id === invalid.task_id && typeof l.execution_id === "string"), { timeoutMs: 30_000 });
    const id = String(line.execution_id);
    // 200 characters kept (three of them written as 6-character escapes) and the full length noted.
    expect({ cut: id.endsWith(`…(${hostile.length} chars)`), length: id.length <= 200 + 15 + 14, controls: unsafe.test(id) }).toEqual({ cut: true, length: true, controls: false });
    expect(id.startsWith("\\u001b]0;pwned\\u0007\\u001b[2Jxxx")).toBe(true);
    // No string of any line about the task carries a raw control character.
    const strings = (v: unknown): string[] => (typeof v === "string" ? [v] : v && typeof v === "object" ? Object.values(v).flatMap(strings) : []);
    const about = w.lines.filter((l) => l.task_id === invalid.task_id);
    expect(about.flatMap(strings).filter((v) => unsafe.test(v))).toEqual([]);
  }, TEST_TIMEOUT_MS);
});
