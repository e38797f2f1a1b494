// Runs the real oz-worker (the compiled binary when built, else the sources) against the
// sandbox cluster and a dispatch server, and lets tests read its JSON log lines. Below that,
// what the `oz-worker run` e2e files share: least-privilege worker namespaces, Job/Pod reads
// through the admin client, and checks of the task record's events.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect } from "bun:test";
import { RbacAuthorizationV1Api } from "@kubernetes/client-node";
import YAML from "yaml";
import { type KubeClient, loadKubeClient } from "../../src/kube/client.ts";
import { REQUIRED_PERMISSIONS, roleRules } from "../../src/preflight/permissions.ts";
import { type DispatchServer, startDispatchServer, type TaskRecord, waitFor } from "./dispatch.ts";
import { ADMIN_KUBECONFIG, ensureSandbox, freshNamespace, type Namespace, serviceAccountKubeconfig, watchPath } from "./sandbox.ts";
import { api } from "./kube-api.ts";

const ROOT = resolve(import.meta.dir, "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const BINARY = join(ROOT, "dist/oz-worker");

/** The worker command: $OZ_WORKER_BIN, else dist/oz-worker, else the sources through bun. */
export function workerCommand(): string[] {
  const override = process.env.OZ_WORKER_BIN;
  if (override) return [override];
  if (existsSync(BINARY)) {
    warnIfStale();
    return [BINARY];
  }
  return [BUN, join(ROOT, "src/cli/main.ts")];
}

let staleChecked = false;
/** Once per process: says so when dist/oz-worker is older than a file under src/ (tests would run old code). */
function warnIfStale(): void {
  if (staleChecked) return;
  staleChecked = true;
  const built = statSync(BINARY).mtimeMs;
  const newer = readdirSync(join(ROOT, "src"), { recursive: true, encoding: "utf8" }).find((f) => {
    const st = statSync(join(ROOT, "src", f));
    return st.isFile() && st.mtimeMs > built;
  });
  if (newer) console.warn(`warning: dist/oz-worker is older than src/${newer}: the tests run the old build; run scripts/build`);
}

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface StartWorkerOptions {
  workerId: string;
  kubeconfig: string;
  namespace: string;
  dispatch: DispatchServer;
  /** More top-level config keys (cleanup, max_concurrent_tasks, …). */
  config?: Record<string, unknown>;
  /** More backend.kubernetes keys. */
  kubernetes?: Record<string, unknown>;
  /** Run preflight first (off by default: it has its own tests and costs a Job per start). */
  preflight?: boolean;
  args?: string[];
  env?: Record<string, string>;
  /** The command that runs oz-worker (e.g. `deno run -A src/cli/main.ts`); workerCommand() by default. */
  command?: readonly string[];
}

/** Worker processes still running, killed if the test process exits without stopping them. */
const runningWorkers = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of runningWorkers) child.kill("SIGKILL");
});

export class WorkerProcess {
  readonly lines: LogLine[] = [];
  /** Raw output, for failure messages and secret checks. */
  output = "";
  readonly exited: Promise<number>;
  #exitCode: number | undefined;

  readonly child: ChildProcess;
  readonly configFile: string;
  /** The worker_id it runs as ("" when unknown). */
  readonly workerId: string;
  constructor(
    child: ChildProcess,
    configFile: string,
    workerId = "",
  ) {
    this.child = child;
    this.configFile = configFile;
    this.workerId = workerId;
    runningWorkers.add(child);
    this.exited = new Promise((resolveExit) => {
      child.on("exit", (code, signal) => {
        runningWorkers.delete(child);
        this.#exitCode = code ?? (signal ? 128 : 1);
        resolveExit(this.#exitCode);
      });
    });
    let pending = "";
    const onData = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      this.output += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // a partial or non-JSON line: kept in `output` only
        }
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get exitCode(): number | undefined {
    return this.#exitCode;
  }

  /** Waits for a log line matching `predicate`; fails early if the worker exits. */
  waitForLog(what: string, predicate: (line: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    return waitFor(
      what,
      () => {
        const hit = this.lines.find(predicate);
        if (hit) return hit;
        if (this.#exitCode !== undefined) throw new Error(`worker exited (${this.#exitCode}) before: ${what}\n${this.tail()}`);
        return undefined;
      },
      { timeoutMs, detail: () => this.tail() },
    );
  }

  /** The health endpoints' base URL, once the worker serves them. */
  async healthUrl(): Promise<string> {
    const line = await this.waitForLog("health endpoints listening", (l) => l.msg === "health endpoints listening");
    return String(line.url);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number> {
    if (this.#exitCode === undefined) this.child.kill(signal);
    return this.exited;
  }

  tail(lines = 40): string {
    return this.output.split("\n").slice(-lines).join("\n");
  }
}

/** Starts `oz-worker run` and waits until it is connected to the dispatch server. */
export async function startWorker(opts: StartWorkerOptions, { waitConnected = true } = {}): Promise<WorkerProcess> {
  const dir = mkdtempSync(join(tmpdir(), "oz-worker-e2e-"));
  const configFile = join(dir, "config.yaml");
  writeFileSync(
    configFile,
    YAML.stringify({
      worker_id: opts.workerId,
      ...opts.config,
      backend: { kubernetes: { kubeconfig: opts.kubeconfig, namespace: opts.namespace, ...opts.kubernetes } },
    }),
  );
  const [cmd, ...pre] = opts.command ?? workerCommand();
  const args = [
    ...pre,
    "run",
    "--config-file",
    configFile,
    "--web-socket-url",
    `${opts.dispatch.wsUrl}`,
    "--log-format",
    "json",
    "--log-level",
    "debug",
    "--health-addr",
    "127.0.0.1:0",
    ...(opts.preflight ? [] : ["--skip-preflight"]),
    ...(opts.args ?? []),
  ];
  const child = spawn(cmd!, args, {
    env: {
      ...process.env,
      WARP_API_KEY: opts.dispatch.apiKey,
      OTEL_METRICS_EXPORTER: "none",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const worker = new WorkerProcess(child, configFile, opts.workerId);
  if (waitConnected) {
    await opts.dispatch.waitForWorkers((ws) => ws.some((w) => w.worker_id === opts.workerId), { timeoutMs: 30_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}\nworker output:\n${worker.tail()}`);
    });
  }
  return worker;
}

// ---------------------------------------------------------------------------
// What the e2e tests of `oz-worker run` share: the task record's terminal events, the failed
// container's log line, stopping workers, and a namespace in the sandbox where the worker runs
// as a ServiceAccount with exactly the permissions it declares (the chart's Role).

const TERMINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
const TERMINAL_TYPES = new Set(["task_completed", "task_failed"]);

export function isTerminalState(state: string): boolean {
  return TERMINAL_STATES.has(state);
}

/** The terminal messages (task_completed / task_failed) the worker sent for a task, in order. */
export function terminalEvents(task: TaskRecord): TaskRecord["events"] {
  return task.events.filter((e) => e.direction === "from_worker" && TERMINAL_TYPES.has(e.type));
}

/** The task was claimed and then reported exactly once, with `type`. */
export function expectSingleTerminalEvent(task: TaskRecord, type: "task_completed" | "task_failed"): void {
  const fromWorker = task.events.filter((e) => e.direction === "from_worker").map((e) => e.type);
  expect(terminalEvents(task).map((e) => e.type)).toEqual([type]);
  const claimed = fromWorker.lastIndexOf("task_claimed");
  expect(claimed).toBeGreaterThanOrEqual(0);
  expect(claimed).toBeLessThan(fromWorker.indexOf(type));
}

/** Matches the worker's log line carrying a failed container's log (`sandbox: <pod>/<container> ran <image>`). */
export function failedLogLine(taskId: string, pod: string, container: string, image: string): (line: LogLine) => boolean {
  return (l) =>
    l.msg === "container log of the failed task" &&
    l.task_id === taskId &&
    l.pod === pod &&
    l.container === container &&
    String(l.log).includes(`sandbox: ${pod}/${container} ran ${image}`);
}

/** SIGTERM to every worker still running; SIGKILL to any that has not exited after `graceMs`. */
export async function stopWorkers(workers: readonly WorkerProcess[], graceMs = 10_000): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      if (w.exitCode !== undefined) return;
      w.child.kill("SIGTERM");
      const timer = setTimeout(() => w.child.kill("SIGKILL"), graceMs);
      await w.exited;
      clearTimeout(timer);
    }),
  );
}

/** The fields of a Job the tests read (raw JSON from the API server). */
export interface KubeJob {
  metadata: KubeMeta;
  spec: {
    suspend?: boolean;
    activeDeadlineSeconds?: number;
    ttlSecondsAfterFinished?: number;
    template: { spec: KubePod["spec"] };
  };
  status?: {
    active?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export interface KubeMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export interface KubeContainerStatus {
  name: string;
  state?: {
    running?: { startedAt?: string };
    terminated?: { exitCode: number; reason?: string; signal?: number };
    waiting?: { reason?: string; message?: string };
  };
}

export interface KubeContainer {
  name: string;
  image?: string;
  command?: string[];
  restartPolicy?: string;
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

export interface KubePod {
  metadata: KubeMeta;
  spec: { nodeName?: string; nodeSelector?: Record<string, string>; initContainers?: KubeContainer[]; containers: KubeContainer[] };
  status?: {
    phase?: string;
    initContainerStatuses?: KubeContainerStatus[];
    containerStatuses?: KubeContainerStatus[];
  };
}

/** The ServiceAccount the worker runs as in a worker namespace. */
export const WORKER_SERVICE_ACCOUNT = "oz-worker";
const POLL_MS = 100;

/** Connects to the sandbox (test/support/sandbox.ts: reused, or started when it is not running). */
export async function openWorkerSandbox(): Promise<WorkerSandbox> {
  await ensureSandbox();
  return new WorkerSandbox(loadKubeClient({ kubeconfig: ADMIN_KUBECONFIG }));
}

/** Namespaces for workers in the sandbox, read through the admin client; cleanup() deletes them. */
export class WorkerSandbox {
  readonly #namespaces: Namespace[] = [];
  readonly #kubeconfigs = new Map<string, string>();
  /** Per namespace watched by notePods(): the first pod seen of each Job, by Job name. */
  readonly #firstPods = new Map<string, Map<string, KubePod>>();
  readonly #watches: { stop(): void }[] = [];

  readonly admin: KubeClient;
  constructor(admin: KubeClient) {
    this.admin = admin;
  }

  /**
   * A fresh namespace with the ServiceAccount `oz-worker` bound to a Role of exactly the
   * worker's REQUIRED_PERMISSIONS (what the Helm chart grants); kubeconfig(ns) authenticates as it.
   */
  async workerNamespace(prefix: string): Promise<string> {
    const namespace = await freshNamespace(prefix, { "oz-worker-e2e": "run" });
    this.#namespaces.push(namespace);
    const ns = namespace.name;
    const rbac = api(this.admin, RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: "oz-worker" }, rules: roleRules(REQUIRED_PERMISSIONS) },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "oz-worker" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "oz-worker" },
        subjects: [{ kind: "ServiceAccount", name: WORKER_SERVICE_ACCOUNT, namespace: ns }],
      },
    });
    this.#kubeconfigs.set(ns, await serviceAccountKubeconfig(ns, WORKER_SERVICE_ACCOUNT));
    return ns;
  }

  /** The least-privilege kubeconfig of a namespace made by workerNamespace(). */
  kubeconfig(ns: string): string {
    const path = this.#kubeconfigs.get(ns);
    if (!path) throw new Error(`no worker kubeconfig for namespace ${ns} (use workerNamespace())`);
    return path;
  }

  /** GET of a raw JSON object; undefined on 404. */
  async getJson<T>(path: string): Promise<T | undefined> {
    const res = await this.admin.fetch(path);
    const text = await res.text();
    if (res.status === 404) return undefined;
    if (res.status >= 300) throw new Error(`GET ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  getJob(ns: string, name: string): Promise<KubeJob | undefined> {
    return this.getJson<KubeJob>(`/apis/batch/v1/namespaces/${ns}/jobs/${name}`);
  }

  /** The pods of a Job (by the Job controller's job-name label), oldest first. */
  async podsOf(ns: string, jobName: string): Promise<KubePod[]> {
    const selector = encodeURIComponent(`batch.kubernetes.io/job-name=${jobName}`);
    const list = await this.getJson<{ items: KubePod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=${selector}`);
    return (list?.items ?? []).sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)));
  }

  /** Polls the Job until `probe` returns something (the Job must exist). */
  waitForJob<T>(ns: string, name: string, what: string, probe: (job: KubeJob) => T | undefined, timeoutMs = 20_000): Promise<T> {
    let last: KubeJob | undefined;
    return waitFor(
      `Job ${ns}/${name}: ${what}`,
      async () => {
        last = await this.getJob(ns, name);
        return last ? probe(last) : undefined;
      },
      { timeoutMs, intervalMs: POLL_MS, detail: () => `last: ${JSON.stringify(last?.status ?? "(no Job)")} ${JSON.stringify(last?.metadata.annotations ?? {})}` },
    );
  }

  waitForNoJob(ns: string, name: string, timeoutMs = 20_000): Promise<true> {
    return waitFor(`Job ${ns}/${name} to be gone`, async () => ((await this.getJob(ns, name)) ? undefined : true), {
      timeoutMs,
      intervalMs: POLL_MS,
    });
  }

  /** Polls the Job's first pod until `probe` returns something. */
  waitForPodState<T>(ns: string, jobName: string, what: string, probe: (pod: KubePod) => T | undefined, timeoutMs = 20_000): Promise<T> {
    let last: KubePod | undefined;
    return waitFor(
      `the pod of Job ${ns}/${jobName}: ${what}`,
      async () => {
        last = (await this.podsOf(ns, jobName))[0];
        return last ? probe(last) : undefined;
      },
      { timeoutMs, intervalMs: POLL_MS, detail: () => `last pod: ${JSON.stringify(last?.status ?? "(none)")}` },
    );
  }

  /**
   * Notes the first pod of every Job in `ns` from a watch (established when this resolves), so
   * that waitForPod() sees even a pod that lives for less than a poll interval.
   */
  async notePods(ns: string): Promise<void> {
    const first = new Map<string, KubePod>();
    this.#firstPods.set(ns, first);
    const watch = await watchPath(`/api/v1/namespaces/${ns}/pods`, (type, object) => {
      const pod = object as KubePod | undefined;
      const job = pod?.metadata?.labels?.["batch.kubernetes.io/job-name"];
      if ((type === "ADDED" || type === "MODIFIED") && job && !first.has(job)) first.set(job, pod!);
    });
    this.#watches.push(watch);
  }

  /**
   * The Job's first pod, as soon as it exists (from notePods() when it watches `ns`, else by
   * polling). Never rejects unobserved (safe to await later).
   */
  waitForPod(ns: string, jobName: string, timeoutMs = 20_000): Promise<KubePod> {
    const first = this.#firstPods.get(ns);
    const pod = first
      ? waitFor(`the first pod of Job ${ns}/${jobName}`, () => first.get(jobName), { timeoutMs, intervalMs: 20 })
      : this.waitForPodState(ns, jobName, "to exist", (p) => p, timeoutMs);
    pod.catch(() => undefined);
    return pod;
  }

  waitForNoPods(ns: string, jobName: string, timeoutMs = 20_000): Promise<true> {
    return waitFor(`the pods of Job ${ns}/${jobName} to be gone`, async () => ((await this.podsOf(ns, jobName)).length === 0 ? true : undefined), {
      timeoutMs,
      intervalMs: POLL_MS,
    });
  }

  /** Deletes the namespaces made here (not waiting for them to go). */
  async cleanup(): Promise<void> {
    for (const w of this.#watches.splice(0)) w.stop();
    await Promise.allSettled(this.#namespaces.splice(0).map((ns) => ns.cleanup()));
  }
}

/** What a test file of `oz-worker run` works with: set up once for the file (workerSuite). */
export interface WorkerSuite {
  readonly sandbox: WorkerSandbox;
  /** The file's namespace, where its workers run with exactly the chart's Role. */
  readonly ns: string;
  readonly dispatch: DispatchServer;
  /** Workers the file started: stopped in afterAll (push every one). */
  readonly workers: WorkerProcess[];
}

/**
 * Registers the file's beforeAll (the worker sandbox, a namespace named after `name`, its pods
 * noted when `notePods`, a dispatch server) and afterAll (its workers stopped, then the dispatch
 * server and the sandbox). The fields may be read once beforeAll has run.
 */
export function workerSuite(name: string, options: { notePods?: boolean; enabled?: boolean; setupTimeoutMs?: number } = {}): WorkerSuite {
  let sandbox: WorkerSandbox | undefined;
  let ns: string | undefined;
  let dispatch: DispatchServer | undefined;
  const workers: WorkerProcess[] = [];
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`workerSuite(${name}): ${what} is read before beforeAll set it up`);
    return value;
  };
  beforeAll(async () => {
    if (options.enabled === false) return;
    sandbox = await openWorkerSandbox();
    ns = await sandbox.workerNamespace(name);
    if (options.notePods) await sandbox.notePods(ns);
    dispatch = await startDispatchServer();
  }, options.setupTimeoutMs ?? 40 * 60_000);
  afterAll(async () => {
    await stopWorkers(workers);
    await dispatch?.stop();
    await sandbox?.cleanup();
  }, 30_000);
  return {
    get sandbox() {
      return ready(sandbox, "the sandbox");
    },
    get ns() {
      return ready(ns, "the namespace");
    },
    get dispatch() {
      return ready(dispatch, "the dispatch server");
    },
    workers,
  };
}
