// Tasks on the sandbox's real node (a real kubelet, containerd and runc; docs/sandbox.md "The
// real node"): the compiled worker (dist/oz-worker) runs each task through the dispatch server,
// routed to the real node by its pod_template (nodeSelector + toleration), with the task image
// sandbox.local/dev:1 and the stand-in agent sidecar sandbox.local/agent:1. What the simulated
// nodes can only pretend is checked for real here: the root init container's tar copy of /agent,
// the agent's argv and environment, the per-task Secret, exit codes, a kernel OOM kill, the setup
// init container, the teardown preStop hook, SIGTERM being ignored, the active deadline, a real
// ErrImagePull, image volume support, Pod Security, and the pods' network confinement.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { taskJobName, taskSecretNameFor } from "../../src/core/naming.ts";
import type { TaskRecord } from "../support/dispatch.ts";
import {
  hostAddress,
  REAL_IMAGES,
  REAL_NODE_DIR,
  REAL_NODE_ENABLED,
  REAL_NODE_NAME,
  REAL_NODE_POD_TEMPLATE,
} from "../support/real-node.ts";
import { ADMIN_KUBECONFIG, freshNamespace, kubectl, kubectlApply, type Namespace, run as runCommand, waitFor, watchPath } from "../support/sandbox.ts";
import {
  type KubePod,
  type WorkerProcess,
  expectSingleTerminalEvent,
  isTerminalState,
  startWorker,
  terminalEvents,
  workerCommand,
  workerSuite,
} from "../support/worker.ts";

const suite = workerSuite("real-node", { notePods: true, enabled: REAL_NODE_ENABLED, setupTimeoutMs: 60 * 60_000 });
const namespaces: Namespace[] = [];
const RUN = crypto.randomUUID().slice(0, 6);
const tmp = mkdtempSync(join(tmpdir(), "oz-real-node-e2e-"));
/** Real containers start in seconds, not milliseconds: generous per-test bounds. */
const TEST_TIMEOUT_MS = 120_000;
const TASK_TIMEOUT_MS = 60_000;

afterAll(async () => {
  await Promise.allSettled(namespaces.map((n) => n.cleanup()));
  rmSync(tmp, { recursive: true, force: true });
}, 30_000);

type PodTemplate = Record<string, unknown>;

/** A worker whose tasks run on the real node; `template` adds to the real node's pod_template. */
async function worker(name: string, kubernetes: Record<string, unknown> = {}, config: Record<string, unknown> = {}, template: PodTemplate = {}): Promise<WorkerProcess> {
  const w = await startWorker({
    workerId: `e2e-real-${name}-${RUN}`,
    kubeconfig: suite.sandbox.kubeconfig(suite.ns),
    namespace: suite.ns,
    dispatch: suite.dispatch,
    kubernetes: { pod_template: { ...REAL_NODE_POD_TEMPLATE, ...template }, ...kubernetes },
    config,
  });
  suite.workers.push(w);
  return w;
}

interface Started {
  task: TaskRecord;
  jobName: string;
}

/** A task for the real node: the dev image, the stand-in agent, SANDBOX_AGENT=`mode` (through env_vars). */
async function create(w: WorkerProcess, mode: string, body: Record<string, unknown> = {}): Promise<Started> {
  const { env_vars, ...rest } = body as { env_vars?: Record<string, string> };
  const task = await suite.dispatch.createTask({
    worker_id: w.workerId,
    docker_image: REAL_IMAGES.dev,
    sidecar_image: REAL_IMAGES.agent,
    env_vars: { SANDBOX_AGENT: mode, ...env_vars },
    ...rest,
  });
  return { task, jobName: taskJobName(task.task_id, task.execution_id) };
}

const finished = (s: Started, timeoutMs = TASK_TIMEOUT_MS) => suite.dispatch.waitForTask(s.task.task_id, (t) => isTerminalState(t.state), { timeoutMs });

interface Ran extends Started {
  pod: KubePod;
}

async function runTask(w: WorkerProcess, mode: string, body: Record<string, unknown> = {}): Promise<Ran> {
  const s = await create(w, mode, body);
  const pod = suite.sandbox.waitForPod(suite.ns, s.jobName, TASK_TIMEOUT_MS);
  const task = await finished(s);
  return { ...s, task, pod: await pod };
}

/** Waits until the task container runs (a real process), returning the pod. */
function whenRunning(s: Started): Promise<KubePod> {
  return suite.sandbox.waitForPodState(
    suite.ns,
    s.jobName,
    "the task container to run",
    (p) => (p.status?.containerStatuses?.find((c) => c.name === "task")?.state?.running ? p : undefined),
    TASK_TIMEOUT_MS,
  );
}

function expectFailure(ran: Ran, reason: string, exitCode: number | null, container?: string): void {
  const { task, pod } = ran;
  expect({ state: task.state, failure_reason: task.failure_reason, exit_code: task.exit_code }).toEqual({ state: "failed", failure_reason: reason, exit_code: exitCode });
  expect(task.message).toContain(`pod ${pod.metadata.name}`);
  if (container) expect(task.message).toContain(`container ${container}`);
  expectSingleTerminalEvent(task, "task_failed");
}

function expectCancelledOnce(task: TaskRecord): void {
  expect(task.state).toBe("cancelled");
  const cancellation = task.events.findIndex((e) => e.direction === "to_worker" && e.type === "task_cancellation");
  expect(cancellation).toBeGreaterThan(0);
  const terminal = terminalEvents(task);
  expect(terminal.map((e) => [e.type, e.data.task_state])).toEqual([["task_completed", "CANCELLED"]]);
  expect(task.events.indexOf(terminal[0]!)).toBeGreaterThan(cancellation);
}

/** The `sandbox-agent: KEY=` line of a container log. */
function agentLine(log: string, key: string): string {
  const line = log.split("\n").find((l) => l.startsWith(`sandbox-agent: ${key}=`));
  if (line === undefined) throw new Error(`no "sandbox-agent: ${key}=" line in the log:\n${log}`);
  return line.slice(`sandbox-agent: ${key}=`.length);
}

/** The pod the worker's Job made, read again (status and uid as of now). */
async function currentPod(jobName: string): Promise<KubePod> {
  const [pod] = await suite.sandbox.podsOf(suite.ns, jobName);
  if (!pod) throw new Error(`no pod for Job ${jobName}`);
  return pod;
}

describe.skipIf(!REAL_NODE_ENABLED)("tasks on the real node", () => {
  test("success: the agent runs with exactly render-pod's argv, the Job's env names, env_vars from the per-task Secret, and writes the workspace marker", async () => {
    // cleanup off keeps the pod for its logs. A native sidecar sharing the workspace volume
    // reports the marker (kubelet removes a finished pod's emptyDir, so it is read while it runs).
    const watcher = [
      "trap 'exit 0' TERM",
      "until [ -f /workspace/.sandbox-agent-ran ]; do sleep 0.1; done",
      'echo "watcher: marker $(cat /workspace/.sandbox-agent-ran)"',
      "while :; do sleep 1; done",
    ].join("\n");
    const w = await worker(
      "ok",
      {},
      { cleanup: false },
      {
        initContainers: [
          {
            name: "workspace-watcher",
            image: REAL_IMAGES.busybox,
            restartPolicy: "Always",
            command: ["/bin/sh", "-c", watcher],
            volumeMounts: [{ name: "workspace", mountPath: "/workspace" }],
          },
        ],
      },
    );
    const secretValue = `s3cret-${RUN}`;
    const ran = await runTask(w, "exit-0", { env_vars: { E2E_SECRET_VALUE: secretValue } });
    expect(ran.task.state).toBe("succeeded");
    expectSingleTerminalEvent(ran.task, "task_completed");

    const pod = await currentPod(ran.jobName);
    expect(pod.spec.nodeName).toBe(REAL_NODE_NAME);
    const log = await kubectl("-n", suite.ns, "logs", pod.metadata.name, "-c", "task");
    // The root init container's tar copy put the agent image at /agent, and the wrapper exec'd it.
    const argv = JSON.parse(agentLine(log, "argv")) as string[];

    // render-pod, given the worker's own config and the assignment the dispatch server sent
    const taskFile = join(tmp, `${ran.task.task_id}.json`);
    writeFileSync(taskFile, JSON.stringify(ran.task.assignment));
    const rendered = await runCommand([...workerCommand(), "render-pod", "--config-file", w.configFile, "--task", taskFile, "--output", "json"]);
    expect(rendered.code).toBe(0);
    const out = JSON.parse(rendered.stdout) as { kind: string; items?: { kind: string; spec?: any }[] };
    const job = (out.items ?? [out]).find((o) => o.kind === "Job") as { spec: any };
    const renderedTask = (job.spec.template.spec.containers as { name: string; args: string[]; env: { name: string }[] }[]).find((c) => c.name === "task")!;
    expect(renderedTask.args.length).toBeGreaterThan(0);
    expect(argv).toEqual(renderedTask.args);

    // every env name the Job spec sets reached the process (kubelet adds its own, e.g. KUBERNETES_*)
    const envNames = agentLine(log, "env").split(",");
    const specTask = pod.spec.containers.find((c) => c.name === "task")!;
    const specNames = (specTask.env ?? []).map((e) => e.name);
    expect(specNames).toEqual(renderedTask.env.map((e) => e.name));
    for (const name of specNames) expect(envNames).toContain(name);
    expect(envNames).toContain("KUBERNETES_SERVICE_HOST");

    // env_vars come from the per-task Secret (secretKeyRef), and their values arrived
    const secretName = taskSecretNameFor(ran.jobName);
    for (const name of ["SANDBOX_AGENT", "E2E_SECRET_VALUE"]) {
      expect((specTask.env ?? []).find((e) => e.name === name)).toEqual({ name, valueFrom: { secretKeyRef: { name: secretName, key: name } } });
    }
    expect(agentLine(log, "mode")).toBe("exit-0");
    expect(log).not.toContain(secretValue);
    expect(w.output).not.toContain(secretValue);

    // the workspace marker, seen by the sidecar in the same emptyDir
    expect(await kubectl("-n", suite.ns, "logs", pod.metadata.name, "-c", "workspace-watcher")).toBe("watcher: marker ran\n");
  }, TEST_TIMEOUT_MS);

  test("exit 3 → container_exit with exit code 3, and the real container's log reaches the worker log", async () => {
    const w = await worker("exit");
    const ran = await runTask(w, "exit-3");
    expectFailure(ran, "container_exit", 3, "task");
    const line = await w.waitForLog("the task container's log", (l) => l.msg === "container log of the failed task" && l.task_id === ran.task.task_id && l.container === "task");
    expect(String(line.log)).toContain("sandbox-agent: argv=[");
    // the mode came from env_vars, so the worker redacts its value in the log it relays
    expect(String(line.log)).toContain("sandbox-agent: mode=<redacted>");
  }, TEST_TIMEOUT_MS);

  test("exceeding the 64Mi memory limit of instance_shape → container_oom 137, killed by the kernel", async () => {
    const w = await worker("oom");
    const ran = await runTask(w, "oom", { instance_shape: { memory_gb: 0.0625 } });
    expectFailure(ran, "container_oom", 137, "task");
    expect(ran.task.message).toContain("OOMKilled");
    const pod = await currentPod(ran.jobName);
    expect(pod.spec.containers.find((c) => c.name === "task")?.resources?.limits?.memory).toBe("64Mi");
    const status = pod.status?.containerStatuses?.find((c) => c.name === "task")?.state?.terminated;
    expect({ reason: status?.reason, exitCode: status?.exitCode }).toEqual({ reason: "OOMKilled", exitCode: 137 });
  }, TEST_TIMEOUT_MS);

  test("a failing setup_command → init_container with the setup container's exit code; the task container never starts", async () => {
    const w = await worker("setup", { setup_command: "echo preparing; test -d /agent && exit 7" });
    const ran = await runTask(w, "ok");
    expectFailure(ran, "init_container", 7, "setup");
    const pod = await currentPod(ran.jobName);
    const setup = pod.status?.initContainerStatuses?.find((c) => c.name === "setup")?.state?.terminated;
    expect(setup?.exitCode).toBe(7);
    expect(pod.status?.initContainerStatuses?.find((c) => c.name === "copy-sidecar-0")?.state?.terminated?.exitCode).toBe(0);
    expect(pod.status?.containerStatuses?.find((c) => c.name === "task")?.state?.running).toBeUndefined();
    expect(await kubectl("-n", suite.ns, "logs", pod.metadata.name, "-c", "setup")).toBe("preparing\n");
  }, TEST_TIMEOUT_MS);

  test("teardown_command runs as the preStop hook when a running task is cancelled; CANCELLED once", async () => {
    // The hook writes into a hostPath folder of the sandbox state, read here after the pod is gone.
    const dir = join(REAL_NODE_DIR, "e2e", `teardown-${RUN}`);
    mkdirSync(dir, { recursive: true });
    const w = await worker(
      "teardown",
      { teardown_command: 'echo "teardown of $TASK_ID in $PWD" > /teardown/"$TASK_ID"' },
      {},
      {
        volumes: [{ name: "teardown", hostPath: { path: dir, type: "Directory" } }],
        containers: [{ name: "task", volumeMounts: [{ name: "teardown", mountPath: "/teardown" }] }],
      },
    );
    const s = await create(w, "sleep-600");
    await whenRunning(s);
    const file = join(dir, s.task.task_id);
    expect(existsSync(file)).toBe(false);
    await suite.dispatch.cancel(s.task.task_id);
    expectCancelledOnce(await finished(s));
    await suite.sandbox.waitForNoPods(suite.ns, s.jobName, 60_000);
    expect(readFileSync(file, "utf8")).toBe(`teardown of ${s.task.task_id} in /workspace\n`);
  }, TEST_TIMEOUT_MS);

  test("cancelling a task whose process ignores SIGTERM: the pod is gone within its grace period (killed at its end); CANCELLED once", async () => {
    const grace = 5;
    const w = await worker("ignore-term", {}, {}, { terminationGracePeriodSeconds: grace });
    const s = await create(w, "ignore-term");
    await whenRunning(s);
    const t0 = performance.now();
    await suite.dispatch.cancel(s.task.task_id);
    expectCancelledOnce(await finished(s));
    await suite.sandbox.waitForNoPods(suite.ns, s.jobName, 60_000);
    const seconds = (performance.now() - t0) / 1000;
    console.log(`ignore-term task: pod gone ${seconds.toFixed(1)} s after the cancellation (grace ${grace} s)`);
    // SIGTERM was ignored, so the kill came at the end of the grace period, not before...
    expect(seconds).toBeGreaterThanOrEqual(grace - 1);
    // ...and not much after it (kubelet's status sync and the API's deletion)
    expect(seconds).toBeLessThan(grace + 15);
  }, TEST_TIMEOUT_MS);

  test("active_deadline_seconds 4 on a real sleeping process → active_deadline; the pod is stopped", async () => {
    const w = await worker("deadline", { active_deadline_seconds: 4 });
    const ran = await runTask(w, "sleep-600");
    expectFailure(ran, "active_deadline", null);
    expect(ran.task.message).toContain("active deadline of 4s");
    await suite.sandbox.waitForNoPods(suite.ns, ran.jobName, 60_000);
  }, TEST_TIMEOUT_MS);

  test("an image that was never built → image_pull from a real ErrImagePull (no registry is reachable)", async () => {
    const w = await worker("pull");
    const ran = await runTask(w, "ok", { docker_image: "sandbox.local/never-built:1" });
    expectFailure(ran, "image_pull", null, "task");
    expect(ran.task.message).toContain("sandbox.local/never-built:1");
    expect(ran.task.message).toMatch(/ErrImagePull|ImagePullBackOff/);
  }, TEST_TIMEOUT_MS);
});

// ---------------------------------------------------------------------------
// Preflight against the real node

const CLI = workerCommand();

function preflightConfig(namespace: string, extra: string[] = []): string {
  const file = join(tmp, `preflight-${namespace}-${extra.length}.yaml`);
  const template = JSON.stringify(REAL_NODE_POD_TEMPLATE);
  writeFileSync(
    file,
    [
      "worker_id: real-node-preflight",
      "backend:",
      "  kubernetes:",
      `    kubeconfig: ${JSON.stringify(ADMIN_KUBECONFIG)}`,
      `    namespace: ${namespace}`,
      `    pod_template: ${template}`,
      ...extra.map((l) => `    ${l}`),
      "",
    ].join("\n"),
  );
  return file;
}

interface Check {
  name: string;
  status: string;
  summary: string;
  details?: string[];
  fix?: string;
}

async function preflight(file: string): Promise<{ code: number; checks: Record<string, Check>; stdout: string }> {
  const result = await runCommand([...CLI, "preflight", "--config-file", file, "--output", "json", "--timeout", "60s"], { timeoutMs: 90_000, env: { NO_COLOR: "1" } });
  const checks = Object.fromEntries(
    result.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Check)
      .map((c) => [c.name, c]),
  );
  return { code: result.code, checks, stdout: `${result.stdout}${result.stderr}` };
}

/** The nodes the namespace's pods were bound to, from a watch (the preflight deletes its Job). */
async function noteNodes(namespace: string): Promise<{ nodes: Set<string>; stop(): void }> {
  const nodes = new Set<string>();
  const watch = await watchPath(`/api/v1/namespaces/${namespace}/pods`, (_type, object) => {
    const node = (object as KubePod | undefined)?.spec?.nodeName;
    if (node) nodes.add(node);
  });
  return { nodes, stop: () => watch.stop() };
}

async function namespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const n = await freshNamespace(prefix, labels);
  namespaces.push(n);
  return n.name;
}

describe.skipIf(!REAL_NODE_ENABLED)("preflight on the real node", () => {
  test("passes: its pod ran to completion on the real node", async () => {
    const n = await namespace("real-pf");
    const seen = await noteNodes(n);
    const { code, checks, stdout } = await preflight(preflightConfig(n));
    seen.stop();
    expect(code, stdout).toBe(0);
    expect(Object.values(checks).map((c) => `${c.name} ${c.status}`)).toEqual(["connection pass", "permissions pass", "dry-run pass", "preflight-job pass"]);
    expect([...seen.nodes]).toEqual([REAL_NODE_NAME]);
  }, TEST_TIMEOUT_MS);

  test("in a namespace enforcing Pod Security restricted it fails and names the violated rules", async () => {
    const n = await namespace("real-pf-psa", { "pod-security.kubernetes.io/enforce": "restricted" });
    const { code, checks, stdout } = await preflight(preflightConfig(n));
    expect(code, stdout).toBe(1);
    const job = checks["preflight-job"]!;
    expect(job.status).toBe("fail");
    expect(job.summary).toContain(`Pod Security "restricted:latest" in namespace "${n}" rejected the preflight pod`);
    const text = [job.summary, ...(job.details ?? []), job.fix ?? ""].join("\n");
    expect(text).toContain('runAsUser=0 (container "root-init-preflight" must not set runAsUser=0)');
    expect(text).toContain("allowPrivilegeEscalation != false");
    expect(text).toContain("runAsNonRoot != true");
    expect(text).toContain("seccompProfile");
  }, TEST_TIMEOUT_MS);

  test("use_image_volumes: containerd 1.6 cannot mount image volumes, and the preflight says so", async () => {
    const n = await namespace("real-pf-imgvol");
    const { code, checks, stdout } = await preflight(preflightConfig(n, ["use_image_volumes: true"]));
    expect(code, stdout).toBe(1);
    const job = checks["preflight-job"]!;
    expect(job.status).toBe("fail");
    // the pod ran, but /preflight-image was not there: the runtime ignored the image mount
    expect(job.summary).toContain('container "main" exited 1');
    expect(job.fix).toContain("preflight image is mounted at /preflight-image");
    expect(job.fix).toContain("image volume support");
    expect(job.fix).toContain("use_image_volumes: false");
  }, TEST_TIMEOUT_MS);
});

// ---------------------------------------------------------------------------
// Network confinement of the real node's pods

describe.skipIf(!REAL_NODE_ENABLED)("the real node's pod network", () => {
  test("pods reach the API server through the kubernetes Service and the host address, and nothing else", async () => {
    const n = await namespace("real-net");
    const gw = await hostAddress();
    const apiPort = Number(process.env.SANDBOX_PORT_BASE ?? 26000) + 443;
    // an address of this machine that the sandbox did not make: a packet to it never leaves the machine
    const other = (await runCommand(["ip", "-4", "-o", "addr", "show", "scope", "global"])).stdout
      .split("\n")
      .map((l) => l.split(/\s+/)[3]?.split("/")[0])
      .find((a) => a && a !== gw);
    expect(other).toBeDefined();
    const script = [
      // the routing table's destinations (hex, little-endian): 00000000 would be a default route
      "tail -n +2 /proc/net/route | while read -r dev dst rest; do echo \"route $dst\"; done",
      'try() { if timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then echo "$1:$2 open"; else echo "$1:$2 closed"; fi; }',
      "try 10.96.0.1 443",
      `try ${gw} ${apiPort}`,
      `try ${other} 22`,
    ].join("\n");
    await kubectlApply({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "net-probe", namespace: n },
      spec: { ...REAL_NODE_POD_TEMPLATE, restartPolicy: "Never", containers: [{ name: "probe", image: REAL_IMAGES.dev, command: ["/bin/bash", "-c", script] }] },
    });
    await waitFor("the network probe to finish", async () => {
      const phase = (await kubectl("-n", n, "get", "pod", "net-probe", "-o", "jsonpath={.status.phase}")).trim();
      return phase === "Succeeded" || phase === "Failed" ? phase : undefined;
    }, { timeoutMs: 60_000 });
    const log = await kubectl("-n", n, "logs", "net-probe");
    // no default route: only the pod subnet and the Service range 10.96.0.0/16 (via the host address)
    const routes = log.split("\n").filter((l) => l.startsWith("route ")).map((l) => l.slice(6));
    expect(routes).toContain("0000600A");
    expect(routes).not.toContain("00000000");
    expect(log).toContain("10.96.0.1:443 open");
    expect(log).toContain(`${gw}:${apiPort} open`);
    expect(log).toContain(`${other}:22 closed`);

    // and the rules that drop whatever a pod might route elsewhere exist, first in INPUT and FORWARD
    const base = Number(process.env.SANDBOX_PORT_BASE ?? 26000);
    const chain = (await runCommand(["iptables", "-w", "-S", `OZSB-${base}`])).stdout;
    expect(chain).toContain(`-A OZSB-${base} -i ozsb${base} -j DROP`);
    for (const hook of ["INPUT", "FORWARD"]) {
      expect((await runCommand(["iptables", "-w", "-S", hook])).stdout).toContain(`-A ${hook} -i ozsb${base} -j OZSB-${base}`);
    }
    // no masquerading of pod traffic to the outside
    const nat = (await runCommand(["iptables-save", "-t", "nat"])).stdout;
    expect(nat.split("\n").filter((l) => l.includes("MASQUERADE") && l.includes(`10.200.`))).toEqual([]);
  }, TEST_TIMEOUT_MS);
});
