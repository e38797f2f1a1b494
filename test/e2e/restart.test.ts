// Restarts against the sandbox's real control plane and the dispatch server: the worker is
// SIGKILLed while 20 tasks run (some of them end while no worker runs), the API server is
// stopped and started mid-run, the dispatch server goes away while tasks finish. Each time,
// every task is reported exactly once: the dispatch server's `events` hold exactly one
// terminal message (task_completed / task_failed) per task, and none is missing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BatchV1Api, CoreV1Api, type V1Job } from "@kubernetes/client-node";
import { REPORTED_OUTCOME_ANNOTATION, TASK_ID_ANNOTATION } from "../../src/core/naming.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { buildTaskObjects, withOwner } from "../../src/core/job-spec.ts";
import { resolveConfig } from "../../src/config/load.ts";
import { parseTaskAssignment } from "../../src/oz/protocol.ts";
import { type DispatchServer, type TaskRecord, connectTestWorker, waitFor } from "../support/dispatch.ts";
import { CommandError, SANDBOX_SCRIPT, run } from "../support/sandbox.ts";
import { E2EScope, uniqueId } from "../support/e2e-scope.ts";
import { api } from "../support/kube-api.ts";
import type { WorkerProcess } from "../support/worker.ts";

/** The admin kubeconfig (from the scope's setup). */
let KUBECONFIG: string;
let admin: KubeClient;
const scope = new E2EScope();
const { freshNamespace, worker, dispatchServer } = scope;
let apiserverStopped = false;

/** `scripts/sandbox ARGS` (stop-apiserver, start-apiserver); throws on failure. */
async function sandbox(args: string[]): Promise<string> {
  const argv = [SANDBOX_SCRIPT, ...args];
  const result = await run(argv, { timeoutMs: 180_000 });
  if (result.code !== 0) throw new CommandError(argv, result);
  return result.stdout;
}

/** Prints how long each phase of a test took (for the report and for tuning). */
function phases(name: string): (phase: string) => void {
  let last = Date.now();
  return (phase) => {
    const now = Date.now();
    console.log(`[${name}] ${phase}: ${now - last} ms`);
    last = now;
  };
}

const TERMINAL = new Set(["task_completed", "task_failed"]);
const terminalMessages = (t: TaskRecord) => t.events.filter((e) => e.direction === "from_worker" && TERMINAL.has(e.type));
const isFinished = (t: TaskRecord) => t.state === "succeeded" || t.state === "failed" || t.state === "cancelled";

/** This namespace's Jobs by their task-id annotation. */
async function jobsByTask(ns: string): Promise<Map<string, V1Job>> {
  const list = await api(admin, BatchV1Api).listNamespacedJob({ namespace: ns });
  const out = new Map<string, V1Job>();
  for (const j of list.items) {
    const id = j.metadata?.annotations?.[TASK_ID_ANNOTATION];
    if (id) out.set(id, j);
  }
  return out;
}

const jobDone = (j: V1Job | undefined, type: "Complete" | "Failed") =>
  (j?.status?.conditions ?? []).some((c) => c.type === type && c.status === "True");

async function runningPods(ns: string): Promise<number> {
  const pods = await api(admin, CoreV1Api).listNamespacedPod({ namespace: ns });
  return pods.items.filter((p) => p.status?.phase === "Running").length;
}

/** Waits until every task is finished; returns the records. */
async function waitAllFinished(d: DispatchServer, ids: string[], timeoutMs: number, w?: WorkerProcess): Promise<TaskRecord[]> {
  let last: TaskRecord[] = [];
  return waitFor(
    `${ids.length} tasks to finish`,
    async () => {
      last = await Promise.all(ids.map((id) => d.getTask(id)));
      return last.every(isFinished) ? last : undefined;
    },
    {
      timeoutMs,
      intervalMs: 250,
      detail: () =>
        last.filter((t) => !isFinished(t)).map((t) => `${t.task_id}: ${t.state}`).join("\n") +
        (w ? `\nworker log (without debug lines):\n${w.output.split("\n").filter((l) => !l.includes('"level":"debug"')).slice(-60).join("\n")}` : ""),
    },
  );
}

/** Exactly one terminal message per task, and the expected final state. */
function expectReportedOnce(records: TaskRecord[], state: TaskRecord["state"]): void {
  const counts = records.map((t) => ({ task: t.task_id, state: t.state, terminal: terminalMessages(t).length }));
  expect(counts.filter((c) => c.terminal !== 1)).toEqual([]);
  expect(counts.filter((c) => c.state !== state)).toEqual([]);
}

beforeAll(async () => {
  // Reuses the running sandbox (starts or builds it when needed).
  ({ kubeconfig: KUBECONFIG, admin } = await scope.setup());
}, 60 * 60_000);

afterAll(async () => {
  if (apiserverStopped) await sandbox(["start-apiserver"]).catch(() => undefined);
  await scope.cleanup();
});

describe("restarts", () => {
  test(
    "worker SIGKILLed with 20 running tasks: a new worker with the same ID reports each exactly once, also those that ended while no worker ran; an outcome reported before the kill is not reported again",
    async () => {
      const ns = await freshNamespace("restart-kill");
      const d = await dispatchServer();
      const workerId = uniqueId("restart-kill");
      const w1 = await worker({ workerId, kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });

      // A failed task, reported before the kill: its Job stays (failed Jobs are kept for
      // inspection) with the reported-outcome annotation.
      const failed = await d.createTask({ docker_image: "x:exit-3" });
      await d.waitForState(failed.task_id, "failed", { timeoutMs: 30_000 });
      const failedJob = await waitFor("the failed Job to carry the reported outcome", async () => {
        const j = (await jobsByTask(ns)).get(failed.task_id);
        return j?.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION] ? j : undefined;
      });
      expect(JSON.parse(failedJob.metadata!.annotations![REPORTED_OUTCOME_ANNOTATION]!)).toMatchObject({ result: "failed", exitCode: 3 });

      // 20 tasks: 8 end ~10 s after they start (while no worker runs), 12 after ~25 s.
      const short = await Promise.all(Array.from({ length: 8 }, () => d.createTask({ docker_image: "x:sleep-10" })));
      const long = await Promise.all(Array.from({ length: 12 }, () => d.createTask({ docker_image: "x:sleep-25" })));
      const tasks = [...short, ...long];
      const ids = tasks.map((t) => t.task_id);
      await waitFor("all 20 tasks claimed and their pods running", async () => {
        const recs = await Promise.all(ids.map((id) => d.getTask(id)));
        if (!recs.every((t) => t.state === "claimed")) return undefined;
        return (await runningPods(ns)) >= 20 ? true : undefined;
      }, { timeoutMs: 30_000, intervalMs: 200 });

      // The fault: SIGKILL while all 20 run. Nothing of them is reported yet.
      expect(await w1.stop("SIGKILL")).not.toBe(0);
      const atKill = await Promise.all(ids.map((id) => d.getTask(id)));
      expect(atKill.map((t) => t.state).filter((s) => s !== "claimed")).toEqual([]);

      // The 8 short tasks end while no worker runs: their Jobs complete, unreported.
      await waitFor("the 8 short tasks' Jobs to complete with no worker running", async () => {
        const jobs = await jobsByTask(ns);
        return short.every((t) => jobDone(jobs.get(t.task_id), "Complete")) ? true : undefined;
      }, { timeoutMs: 40_000, intervalMs: 250 });
      const jobsDuringDowntime = await jobsByTask(ns);
      for (const t of tasks) expect(jobsDuringDowntime.get(t.task_id)?.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBeUndefined();
      expect((await Promise.all(short.map((t) => d.getTask(t.task_id)))).map((t) => t.state)).toEqual(short.map(() => "claimed"));

      // A new worker with the same ID re-adopts the 20 unreported Jobs (not the reported one).
      const w2 = await worker({ workerId, kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const readopted = await w2.waitForLog("re-adoption", (l) => l.msg === "re-adopted running task Jobs from before a restart");
      expect(readopted.count).toBe(20);

      const done = await waitAllFinished(d, ids, 60_000, w2);
      // Outcomes reported before the stop have been recorded; any duplicate would be sent by now.
      expect(await w2.stop("SIGTERM")).toBe(0);
      expectReportedOnce(
        await Promise.all(ids.map((id) => d.getTask(id))),
        "succeeded",
      );
      expect(done.length).toBe(20);
      const failedAfter = await d.getTask(failed.task_id);
      expect(failedAfter.state).toBe("failed");
      expect(terminalMessages(failedAfter).length).toBe(1);
      expect(failedAfter.exit_code).toBe(3);
      expect(w2.lines.filter((l) => l.task_id === failed.task_id && /task (failed|succeeded)/.test(l.msg))).toEqual([]);

      // Cleanup went on after the restart: the 20 succeeded Jobs are gone; the failed one stays.
      await waitFor("the succeeded Jobs to be deleted", async () => {
        const jobs = await jobsByTask(ns);
        return [...jobs.keys()].sort().join() === failed.task_id ? true : undefined;
      }, { timeoutMs: 20_000, intervalMs: 250 });
      console.log(`[restart] SIGKILL with 20 running: 8 ended during the downtime; 20 re-adopted; 21/21 reported exactly once`);
    },
    120_000,
  );

  test(
    "dispatch server restart (with --state): tasks that finish while it is down are reported once it is back",
    async () => {
      const ns = await freshNamespace("restart-oz");
      const d = await dispatchServer();
      const workerId = uniqueId("restart-oz");
      const w = await worker({ workerId, kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const tasks = await Promise.all(Array.from({ length: 6 }, () => d.createTask({ docker_image: "x:sleep-3" })));
      const ids = tasks.map((t) => t.task_id);
      await waitFor("all 6 tasks claimed", async () => {
        const recs = await Promise.all(ids.map((id) => d.getTask(id)));
        return recs.every((t) => t.state === "claimed") ? true : undefined;
      }, { timeoutMs: 20_000, intervalMs: 200 });

      // The fault: the dispatch server stops (SIGTERM saves its --state file) and stays down
      // while every task ends. test/support/dispatch.ts has restart() (stop + start at once);
      // for a longer downtime its two halves are called here separately.
      const server = d as unknown as { terminate(signal: "SIGTERM"): Promise<void>; spawn(port: number): Promise<void> };
      const port = d.port;
      await server.terminate("SIGTERM");
      await w.waitForLog("the worker to notice the disconnect", (l) => l.msg === "disconnected from Oz; reconnecting (results are queued meanwhile)");
      await waitFor("all 6 Jobs to complete while the dispatch server is down", async () => {
        const jobs = await jobsByTask(ns);
        return ids.every((id) => jobDone(jobs.get(id), "Complete")) ? true : undefined;
      }, { timeoutMs: 30_000, intervalMs: 250 });
      await w.waitForLog("all 6 outcomes decided (queued for Oz)", () =>
        w.lines.filter((l) => l.msg === "task succeeded").length >= 6 ? true : false,
      );
      const connectsBefore = w.lines.filter((l) => l.msg === "oz connection: connected").length;
      // Nothing is recorded as reported while Oz has not received it.
      const whileDown = await jobsByTask(ns);
      for (const id of ids) expect(whileDown.get(id)?.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION]).toBeUndefined();

      await server.spawn(port);
      const reconnect = await w.waitForLog(
        "the worker to reconnect",
        (l) => l.msg === "oz connection: connected" && w.lines.filter((x) => x.msg === "oz connection: connected").indexOf(l) >= connectsBefore,
        70_000,
      );
      expect(reconnect.queued).toBe(6);
      const done = await waitAllFinished(d, ids, 20_000, w);
      expect(done.length).toBe(6);
      expectReportedOnce(done, "succeeded");
      // Delivered, then cleaned up: the Jobs go.
      await waitFor("the Jobs to be deleted after delivery", async () => ((await jobsByTask(ns)).size === 0 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 250,
      });
      expect(await w.stop("SIGTERM")).toBe(0);
      expectReportedOnce(await Promise.all(ids.map((id) => d.getTask(id))), "succeeded");
      console.log(`[restart] dispatch server down while 6 tasks ended: reconnected with 6 queued reports; 6/6 reported exactly once`);
    },
    120_000,
  );

  test(
    "worker killed between creating a task's Job (held suspended) and its Secret: the next worker resumes it when the Secret exists, else fails it once and removes it",
    async () => {
      const ns = await freshNamespace("restart-held");
      const d = await dispatchServer();
      const workerId = uniqueId("restart-held");
      // The previous worker: it claimed two tasks, then "died" (a test worker that claims and goes).
      const before = await connectTestWorker(d, workerId, { onFrame: (f, tw) => f.type === "task_assignment" && tw.claim(String(f.data.task_id)) });
      const withSecret = await d.createTask({ worker_id: workerId, docker_image: "x:sleep-2", env_vars: { OZ_E2E_TOKEN: "held-token-value" } });
      const noSecret = await d.createTask({ worker_id: workerId, docker_image: "x:sleep-2", env_vars: { OZ_E2E_TOKEN: "held-token-value" } });
      await d.waitForState(withSecret.task_id, "claimed");
      await d.waitForState(noSecret.task_id, "claimed");
      before.close();
      await d.waitForWorkers((ws) => !ws.some((x) => x.worker_id === workerId));

      // What it left behind, built exactly as the worker builds it: each Job suspended (as
      // createTaskJob holds it), and only the first one's Secret, owned by its Job.
      const resolved = resolveConfig({ text: `worker_id: ${workerId}\nbackend:\n  kubernetes:\n    namespace: ${ns}\n` });
      if (!resolved.ok) throw new Error(JSON.stringify(resolved.issues));
      const names: Record<string, string> = {};
      for (const [record, secret] of [[withSecret, true], [noSecret, false]] as const) {
        const parsed = parseTaskAssignment((await d.getTask(record.task_id)).assignment);
        if (!parsed.ok) throw new Error(parsed.error);
        const objects = buildTaskObjects(resolved.config, parsed.message.data);
        expect(objects.secret).toBeDefined();
        const job = await api(admin, BatchV1Api).createNamespacedJob({ namespace: ns, body: { ...objects.job, spec: { ...objects.job.spec!, suspend: true } } });
        names[record.task_id] = job.metadata!.name!;
        if (secret) await api(admin, CoreV1Api).createNamespacedSecret({ namespace: ns, body: withOwner(objects.secret!, { name: job.metadata!.name!, uid: job.metadata!.uid! }) });
      }

      const w = await worker({ workerId, kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const [ok, lost] = await waitAllFinished(d, [withSecret.task_id, noSecret.task_id], 40_000, w);
      expect(ok?.state).toBe("succeeded");
      expect(lost?.state).toBe("failed");
      expect(lost?.failure_reason).toBe("job_create");
      expect(lost?.message).toContain("never ran");
      await waitFor("both Jobs to be deleted (the held one once reported)", async () => ((await jobsByTask(ns)).size === 0 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 250,
      });
      expect(await w.stop("SIGTERM")).toBe(0);
      expectReportedOnce([(await d.getTask(withSecret.task_id))], "succeeded");
      expectReportedOnce([(await d.getTask(noSecret.task_id))], "failed");
      expect(w.lines.some((l) => l.task_id === withSecret.task_id && l.msg === "resumed the Job a stopped worker had left suspended")).toBe(true);
      expect(w.output).not.toContain("held-token-value");
    },
    90_000,
  );

  // Last in the file: it disturbs every other user of the sandbox for a few seconds.
  test(
    "API server restart mid-run: the watches recover and no outcome is missed",
    async () => {
      const mark = phases("apiserver");
      const ns = await freshNamespace("restart-api");
      const d = await dispatchServer();
      const workerId = uniqueId("restart-api");
      const w = await worker({ workerId, kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const before = await Promise.all(Array.from({ length: 6 }, (_, i) => d.createTask({ docker_image: `x:sleep-${3 + i}` })));
      const ids = before.map((t) => t.task_id);
      await waitFor("all 6 tasks claimed and their pods running", async () => {
        const recs = await Promise.all(ids.map((id) => d.getTask(id)));
        if (!recs.every((t) => t.state === "claimed")) return undefined;
        return (await runningPods(ns)) >= 6 ? true : undefined;
      }, { timeoutMs: 30_000, intervalMs: 200 });

      mark("6 tasks claimed and running");
      // The fault: kube-apiserver crashes (SIGKILL), and comes back once the worker has seen its
      // watches fail.
      const watchFailuresBefore = w.lines.filter((l) => /list\/watch failed/.test(l.msg)).length;
      const downAt = Date.now();
      apiserverStopped = true;
      await sandbox(["stop-apiserver", "--kill"]);
      try {
        await w.waitForLog("the worker's watch to fail", () => w.lines.filter((l) => /list\/watch failed/.test(l.msg)).length > watchFailuresBefore, 20_000);
      } finally {
        await sandbox(["start-apiserver"]);
        apiserverStopped = false;
      }
      const downtimeMs = Date.now() - downAt;
      mark("API server down and back");

      // Watches recover: the running tasks end and are reported, and new tasks run.
      const after = await Promise.all(Array.from({ length: 2 }, () => d.createTask({ docker_image: "busybox:1.36" })));
      const all = [...ids, ...after.map((t) => t.task_id)];
      const done = await waitAllFinished(d, all, 60_000, w);
      mark("all 8 reported");
      expect(await w.stop("SIGTERM")).toBe(0);
      expectReportedOnce(await Promise.all(all.map((id) => d.getTask(id))), "succeeded");
      expect(done.length).toBe(8);
      const failures = w.lines.filter((l) => /list\/watch failed/.test(l.msg)).length - watchFailuresBefore;
      console.log(`[restart] API server down ${downtimeMs} ms: ${failures} watch failures logged, 8/8 reported exactly once`);
    },
    120_000,
  );
});
