// `oz-worker run` sends every request to the API server over one HTTP/2 connection and its
// watches (and log reads) over one more, whatever the burst: with 60 tasks assigned at once it
// holds at most 4 established TCP connections to the API server. Counted from the kernel's own
// tables: the worker process tree's socket inodes (/proc/<pid>/fd) that are established TCP
// connections to the API server's port (/proc/<pid>/net/tcp, tcp6), sampled every 50 ms from
// before the burst until every task has finished (scripts/lib/procs.ts, as scripts/bench does).
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ProcessTreeSampler } from "../../scripts/lib/procs.ts";
import { waitFor } from "../support/dispatch.ts";
import { startWorker, workerSuite } from "../support/worker.ts";

const TASKS = 60;
const IMAGE = "x:sleep-3";

const suite = workerSuite("api-conns");

/** The API server's port, from the server URL of the worker's kubeconfig. */
function apiServerPort(kubeconfig: string): number {
  const server = /server:\s*(\S+)/.exec(readFileSync(kubeconfig, "utf8"))?.[1];
  if (!server) throw new Error(`no server in ${kubeconfig}`);
  const url = new URL(server);
  return Number(url.port || (url.protocol === "https:" ? 443 : 80));
}

test(`${TASKS} tasks assigned at once: the worker holds at most 4 TCP connections to the API server`, async () => {
  const workerId = `e2e-conns-${crypto.randomUUID().slice(0, 6)}`;
  const kubeconfig = suite.sandbox.kubeconfig(suite.ns);
  const worker = await startWorker({ workerId, kubeconfig, namespace: suite.ns, dispatch: suite.dispatch, config: { max_concurrent_tasks: TASKS } });
  suite.workers.push(worker);
  const pid = worker.child.pid;
  if (pid === undefined) throw new Error("the worker has no pid");
  const sampler = new ProcessTreeSampler(pid, 100, apiServerPort(kubeconfig));
  sampler.start(50);
  try {
    const created = await Promise.all(Array.from({ length: TASKS }, () => suite.dispatch.createTask({ worker_id: workerId, docker_image: IMAGE })));
    const ids = new Set(created.map((t) => t.task_id));
    await waitFor(
      `all ${TASKS} tasks to succeed`,
      async () => {
        const all = (await suite.dispatch.listTasks()).filter((t) => ids.has(t.task_id));
        return all.length === TASKS && all.every((t) => t.state === "succeeded") ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
  } finally {
    sampler.stop();
  }
  const usage = sampler.result();
  console.log(`peak established TCP connections to the API server with ${TASKS} tasks: ${usage.peakConnections} (${usage.samples} samples)`);
  // Not vacuous: the sampler saw the worker's connections (requests and watches).
  expect(usage.peakConnections).toBeGreaterThanOrEqual(1);
  expect(usage.peakConnections).toBeLessThanOrEqual(4);
}, 240_000);
