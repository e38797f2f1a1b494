// `oz-worker run` with 200 tasks running at once holds at most 2 watch connections to the API
// server (one for Jobs, one for Pods, shared by every task; the Go worker opens two per task,
// 400 here). Counted from the API server's own metrics: apiserver_longrunning_requests with
// verb WATCH and scope namespace, for jobs and pods, as (during − before), so that watchers of
// other clients do not count. Other e2e files do not skew it: bun runs test files one after
// another (not in parallel unless --parallel is given) and every file stops its workers in
// afterAll; this file has its own namespace and dispatch server. On a sandbox shared with other
// people the background can still move, so the worker's share is read four ways (during −
// before; across stopping it with the 200 running; across a new worker with the same id
// re-adopting them; across stopping that one) and the value most of them agree on counts.
import { expect, test } from "bun:test";
import { shortHash, WORKER_HASH_LABEL } from "../../src/core/naming.ts";
import { waitFor } from "../support/dispatch.ts";
import { type KubePod, startWorker, workerSuite } from "../support/worker.ts";

const TASKS = 200;
const IMAGE = "x:sleep-20";

const suite = workerSuite("run-scale");

interface WatchGauge {
  jobs: number;
  pods: number;
}

/** apiserver_longrunning_requests{verb="WATCH", scope="namespace"} for jobs and pods, from the API server itself. */
async function namespacedWatches(): Promise<WatchGauge> {
  const res = await suite.sandbox.admin.fetch("/metrics");
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${text.slice(0, 200)}`);
  const read = (resource: string) =>
    text
      .split("\n")
      .filter(
        (l) =>
          l.startsWith("apiserver_longrunning_requests{") &&
          l.includes(`resource="${resource}"`) &&
          l.includes('scope="namespace"') &&
          l.includes('verb="WATCH"') &&
          l.includes('subresource=""'),
      )
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
  return { jobs: read("jobs"), pods: read("pods") };
}

const minus = (a: WatchGauge, b: WatchGauge): WatchGauge => ({ jobs: a.jobs - b.jobs, pods: a.pods - b.pods });
const total = (g: WatchGauge) => g.jobs + g.pods;

/**
 * The gauge once the stopped worker's streams have ended: the first reading below `reference`
 * (the last one with the worker) that the next reading, 100 ms later, confirms. At most 5 s.
 */
async function afterStop(reference: WatchGauge): Promise<WatchGauge> {
  let previous: WatchGauge | undefined;
  let g = await namespacedWatches();
  await waitFor(
    "the stopped worker's watches to end",
    async () => {
      g = await namespacedWatches();
      const settled = previous !== undefined && same(g, previous) && total(g) < total(reference);
      previous = g;
      return settled ? true : undefined;
    },
    { timeoutMs: 5_000, intervalMs: 100 },
  ).catch(() => undefined); // another client may have opened watches meanwhile: the estimates disagree then
  return g;
}

const same = (a: WatchGauge, b: WatchGauge) => a.jobs === b.jobs && a.pods === b.pods;

/** The value most estimates agree on (ties: the first), and how many agree. */
function consensus(estimates: Record<string, WatchGauge>): { value: WatchGauge; votes: number } {
  const counts = new Map<string, number>();
  for (const e of Object.values(estimates)) counts.set(JSON.stringify(e), (counts.get(JSON.stringify(e)) ?? 0) + 1);
  const [key, votes] = [...counts].reduce((best, c) => (c[1] > best[1] ? c : best));
  return { value: JSON.parse(key) as WatchGauge, votes };
}

test(`${TASKS} tasks running at once: the worker holds at most 2 watch connections (API server metrics)`, async () => {
  const t0 = performance.now();
  const phase = (what: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${what}`);
  const workerId = `e2e-scale-${crypto.randomUUID().slice(0, 6)}`;
  const start = async () => {
    const w = await startWorker({ workerId, kubeconfig: suite.sandbox.kubeconfig(suite.ns), namespace: suite.ns, dispatch: suite.dispatch, config: { max_concurrent_tasks: 0 } });
    suite.workers.push(w);
    return w;
  };
  const before = await namespacedWatches();
  const first = await start();

  const created: string[] = [];
  for (let i = 0; i < TASKS; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, TASKS - i) }, () => suite.dispatch.createTask({ worker_id: workerId, docker_image: IMAGE })),
    );
    created.push(...batch.map((t) => t.task_id));
  }
  phase(`${TASKS} tasks created`);

  // All of them at once: every task claimed and every pod's task container running.
  const selector = encodeURIComponent(`${WORKER_HASH_LABEL}=${shortHash(workerId)}`);
  let running = 0;
  await waitFor(
    `${TASKS} task pods running at once`,
    async () => {
      const list = await suite.sandbox.getJson<{ items: KubePod[] }>(`/api/v1/namespaces/${suite.ns}/pods?labelSelector=${selector}`);
      running = (list?.items ?? []).filter((p) => p.status?.phase === "Running").length;
      return running === TASKS ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, detail: () => `${running} running` },
  );
  expect((await suite.dispatch.listTasks()).filter((t) => t.state === "claimed").length).toBe(TASKS);
  const createdAt = first.lines.filter((l) => l.msg === "Job created").map((l) => Date.parse(String(l.time)));
  phase(`${TASKS} pods running (the worker created the ${createdAt.length} Jobs within ${((Math.max(...createdAt) - Math.min(...createdAt)) / 1000).toFixed(1)} s)`);

  const running1 = await namespacedWatches();

  // Stop it while the tasks run (SIGTERM leaves their Jobs alone), then start a worker with the
  // same id, which re-adopts the 200 running Jobs through two watches of its own. Each of these
  // steps changes the gauge by the worker's share alone, within about a second, so other
  // clients' watchers seldom fall between the two readings around it.
  expect(await first.stop("SIGTERM")).toBe(0);
  const stopped = await afterStop(running1);
  phase("first worker stopped");
  const second = await start();
  const running2 = await namespacedWatches();
  const readopted = await second.waitForLog("the running Jobs re-adopted", (l) => l.msg === "re-adopted running task Jobs from before a restart");
  expect(readopted.count).toBe(TASKS);
  phase("a new worker re-adopted the running tasks");

  // Every task is reported exactly once.
  const tasks = await waitFor(
    `all ${TASKS} tasks to succeed`,
    async () => {
      const all = (await suite.dispatch.listTasks()).filter((t) => created.includes(t.task_id));
      return all.every((t) => t.state === "succeeded") ? all : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  );
  phase(`all ${TASKS} succeeded`);
  for (const t of tasks) {
    expect(t.events.filter((e) => e.direction === "from_worker" && (e.type === "task_completed" || e.type === "task_failed")).length).toBe(1);
  }
  const idle = await namespacedWatches();
  expect(await second.stop("SIGTERM")).toBe(0);
  const end = await afterStop(idle);

  // The worker's share, four ways; on a quiet sandbox (CI) they are all equal. Another client
  // opening or closing namespaced watches in between can spoil one or two of them.
  const estimates: Record<string, WatchGauge> = {
    "200 running − before the worker started": minus(running1, before),
    "200 running − after the worker stopped": minus(running1, stopped),
    "200 re-adopted − before the new worker started": minus(running2, stopped),
    "idle − after the new worker stopped": minus(idle, end),
  };
  const { value: held, votes } = consensus(estimates);
  console.log(
    `watch connections held by the worker with ${TASKS} tasks running: ${total(held)} (jobs ${held.jobs}, pods ${held.pods}), ` +
      `from apiserver_longrunning_requests{verb="WATCH",scope="namespace",resource=~"jobs|pods"} deltas, ` +
      `${votes} of ${Object.keys(estimates).length} agreeing: ${JSON.stringify(estimates)}; ` +
      `readings: before ${JSON.stringify(before)}, running ${JSON.stringify(running1)}, stopped ${JSON.stringify(stopped)}, ` +
      `re-adopted ${JSON.stringify(running2)}, idle ${JSON.stringify(idle)}, end ${JSON.stringify(end)}`,
  );
  expect(votes).toBeGreaterThanOrEqual(2);
  expect(total(held)).toBeLessThanOrEqual(2);
  // Not vacuous: exactly one watch per kind, ending with the worker.
  expect(held).toEqual({ jobs: 1, pods: 1 });
}, 300_000);
