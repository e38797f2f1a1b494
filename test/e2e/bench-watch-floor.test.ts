// scripts/lib/watch-floor.ts, the process behind `scripts/bench --watch-floor`: once it says
// its watches are open it parses every event of the namespace's task Jobs and Pods (the
// preflight's left out, as the worker leaves them out) and reports its CPU, events and bytes
// as one JSON line, on SIGUSR1 and when it stops.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { resolve } from "node:path";
import { ADMIN_KUBECONFIG, freshNamespace, kubectlResult, kubectlApply, type Namespace, REPO_ROOT, waitFor, watchPath } from "../support/sandbox.ts";

const SCRIPT = resolve(REPO_ROOT, "scripts/lib/watch-floor.ts");
let ns: Namespace;

beforeAll(async () => {
  ns = await freshNamespace("e2e-watch-floor");
}, 120_000);

afterAll(async () => {
  await ns?.cleanup();
});

function suspendedJob(name: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: ns.name, labels },
    spec: { suspend: true, template: { spec: { restartPolicy: "Never", containers: [{ name: "task", image: "x:sleep-1" }] } } },
  };
}

test("parse mode: every task Job event after the watches opened, none of the preflight's", async () => {
  const floor = Bun.spawn([process.execPath, "--smol", "--experimental-http2-fetch", SCRIPT, "parse", ADMIN_KUBECONFIG, ns.name], { stdout: "pipe", stderr: "pipe" });
  const lines: string[] = [];
  const drained = (async () => {
    let rest = "";
    for await (const chunk of floor.stdout.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n")) {
        lines.push(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
    }
  })();
  const figures = () => lines.filter((l) => l.includes("cpu_seconds")).map((l) => JSON.parse(l) as { cpu_seconds: number; events: number; bytes: number });
  // The events the floor should count (task Jobs) and those it should not (all Jobs).
  let taskEvents = 0;
  let allEvents = 0;
  let taskDeleted = false;
  const tasks = await watchPath(`/apis/batch/v1/namespaces/${ns.name}/jobs?labelSelector=${encodeURIComponent("!oz-preflight")}`, (type) => {
    taskEvents++;
    if (type === "DELETED") taskDeleted = true;
  });
  let allSawTaskDeleted = false;
  const all = await watchPath(`/apis/batch/v1/namespaces/${ns.name}/jobs`, (type, object) => {
    allEvents++;
    if (type === "DELETED" && object?.metadata?.name === "task") allSawTaskDeleted = true;
  });
  try {
    await waitFor(() => lines.includes('{"open":true}'), { what: "the watch floor to open its watches", timeoutMs: 30_000 });
    await kubectlApply([suspendedJob("preflight", { "oz-preflight": "e2e" }), suspendedJob("task")]);
    const deleted = await kubectlResult(["delete", "job", "task", "-n", ns.name, "--wait=true"]);
    expect(deleted.code).toBe(0);
    // Each stream delivers in resourceVersion order: once both saw the deletion, they hold every event before it.
    await waitFor(() => taskDeleted && allSawTaskDeleted, { what: "the reference watches to see the task Job deleted", timeoutMs: 30_000 });
    await waitFor(
      () => {
        floor.kill("SIGUSR1");
        return figures().at(-1)?.events === taskEvents;
      },
      { what: `the watch floor to count the ${taskEvents} task Job events`, timeoutMs: 30_000, intervalMs: 200 },
    );
  } finally {
    tasks.stop();
    all.stop();
    floor.kill("SIGTERM");
    await floor.exited;
    await drained;
  }
  const last = figures().at(-1)!;
  // ADDED and DELETED at least; the preflight Job's events are in allEvents only.
  expect(taskEvents).toBeGreaterThanOrEqual(2);
  expect(allEvents).toBeGreaterThan(taskEvents);
  expect(last.events).toBe(taskEvents);
  expect(last.bytes).toBeGreaterThan(1000 * taskEvents);
  expect(last.cpu_seconds).toBeGreaterThan(0);
  expect(await floor.exited).toBe(0);
}, 120_000);
