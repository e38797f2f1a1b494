// The Helm chart (charts/oz-agent-worker) against the sandbox's real API server:
//  - each rendered set (the product page's install command; the all-values fixture) passes a
//    server-side dry run (`kubectl apply --dry-run=server`, strict field validation);
//  - the Role is sufficient: the chart's ServiceAccount, Role and RoleBinding applied for real,
//    the compiled worker run outside the cluster with that ServiceAccount's kubeconfig and the
//    chart's config.yaml: `oz-worker preflight` passes, `oz-worker run` passes its startup
//    preflight and runs a task (with env_vars, so through the per-task Secret) to success,
//    and its Job and Secret are cleaned up;
//  - the Role is minimal: for each verb of each resource in the chart's
//    `oz-agent-worker.rbacRules`, a Role without it makes `oz-worker preflight` fail naming it;
//  - kubernetesBackend.podTemplate with a secretKeyRef env goes through config.yaml and the
//    worker into the task pod unchanged;
//  - drop-in for Go-worker users: the Go chart's defaults (test/fixtures/chart/go-defaults.yaml)
//    pass the dry run unchanged; a release of a stand-in for the Go chart
//    (test/fixtures/go-chart) is `helm upgrade`d to this chart with the same values and its pod
//    rolls; with serviceAccount.create=false and rbac.create=false, an existing ServiceAccount
//    and an externally created Role run the compiled worker, started with the chart's own
//    container arguments, through a task.
// Offline rendering tests are in chart.test.ts; the shared render helpers in test/support/helm.ts.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { taskJobName, taskSecretNameFor } from "../../src/core/naming.ts";
import { describePermission, REQUIRED_PERMISSIONS, roleRules } from "../../src/preflight/permissions.ts";
import { type DispatchServer, startDispatchServer } from "../support/dispatch.ts";
import {
  allValuesFile,
  type Deployment,
  ensureHelm,
  goDefaultsFile,
  helm,
  installGoRelease,
  type K8sObject,
  parseManifest,
  type Rendered,
  type Role,
  renderWith,
  SEED_SET,
  upgradeToChart,
  valuesFile,
} from "../support/helm.ts";
import {
  ADMIN_KUBECONFIG,
  ensureSandbox,
  freshNamespace,
  getJson,
  kubectl,
  kubectlApply,
  kubectlResult,
  type Namespace,
  run,
  SANDBOX_SCRIPT,
  serviceAccountKubeconfig,
  waitFor,
} from "../support/sandbox.ts";
import { startWorker, WorkerProcess, workerCommand } from "../support/worker.ts";

// bun's default is 5 s per test (bunfig.toml has no per-test timeout setting): a dry run
// on a busy 2-core machine can take longer.
setDefaultTimeout(60_000);

const RUN = Math.random().toString(36).slice(2, 8);
const namespaces: Namespace[] = [];
const workers: WorkerProcess[] = [];
const watchers: Bun.Subprocess[] = [];
let dispatch: DispatchServer | undefined;
let tmp = "";

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), "oz-chart-sandbox-"));
  // First use builds helm (Go module proxy) and the sandbox: give both time.
  await Promise.all([ensureHelm(), ensureSandbox()]);
  dispatch = await startDispatchServer();
}, 60 * 60_000);

afterAll(async () => {
  for (const w of watchers) w.kill("SIGKILL");
  await Promise.all(workers.map((w) => w.stop("SIGKILL")));
  await dispatch?.stop();
  // Retried: another test may be restarting the API server right now.
  await Promise.all(
    namespaces.map((ns) =>
      waitFor(async () => (await kubectlResult(["delete", "namespace", ns.name, "--wait=false", "--ignore-not-found"])).code === 0, {
        what: `namespace ${ns.name} to be deleted`,
        timeoutMs: 45_000,
        intervalMs: 1_000,
      }).catch((err: unknown) => console.warn(`chart-sandbox cleanup: ${String(err)}`)),
    ),
  );
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

/** A fresh namespace for one case, deleted after the file. */
async function namespace(what: string): Promise<string> {
  const ns = await freshNamespace(`chart-${what}`);
  namespaces.push(ns);
  return ns.name;
}

/** The product page's install command in release namespace `ns`, with this run's worker ID. */
function renderInstall(ns: string, workerId: string, ...extra: string[]): Promise<Rendered> {
  return renderWith({ namespace: ns }, ...SEED_SET, "--set", `worker.workerId=${workerId}`, ...extra);
}

/** The chart's ServiceAccount, Role and RoleBinding, as rendered. */
function rbacObjects(r: Rendered): K8sObject[] {
  const objects = r.objects.filter((o) => ["ServiceAccount", "Role", "RoleBinding"].includes(o.kind));
  expect(objects.map((o) => o.kind).sort()).toEqual(["Role", "RoleBinding", "ServiceAccount"]);
  return objects;
}

/** Writes the chart's config.yaml with `backend.kubernetes.kubeconfig` added (nothing else changed). */
function configWithKubeconfig(r: Rendered, kubeconfig: string, name: string): string {
  const config = r.config() as { backend: { kubernetes: Record<string, unknown> } };
  config.backend.kubernetes.kubeconfig = kubeconfig;
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(file, stringify(config));
  return file;
}

interface JsonCheck {
  name: string;
  status: "pass" | "fail" | "skip";
  summary: string;
  details?: string[];
  fix?: string;
}

interface PreflightRun {
  code: number;
  checks: JsonCheck[];
  output: string;
}

/** `oz-worker preflight --config-file F --output json` (the compiled binary when built). */
async function preflight(configFile: string): Promise<PreflightRun> {
  const res = await run([...workerCommand(), "preflight", "--config-file", configFile, "--output", "json"], {
    env: { NO_COLOR: "1" },
    timeoutMs: 90_000,
  });
  const output = `exit ${res.code}\nstdout:\n${res.stdout}\nstderr:\n${res.stderr}`;
  let checks: JsonCheck[] = [];
  try {
    checks = res.stdout
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as JsonCheck);
  } catch {
    throw new Error(`preflight did not print JSON lines:\n${output}`);
  }
  return { code: res.code, checks, output };
}

/** Runs `fn` over `items`, at most `limit` at a time; results in input order. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  });
  await Promise.all(lanes);
  return results;
}

/**
 * `kubectl get RESOURCE -n NS --watch --output-watch-events`: one line per event,
 * "<EVENT> <name> <owner kind or <none>>". Ready once the watch delivered an event for a
 * marker object created after it started (so no later event can be missed). If kubectl's
 * watch ends (an API server restart by another test), it is started again: its initial
 * list reports what exists then as ADDED, so an object that existed is still seen.
 */
class EventLog {
  readonly lines: string[] = [];
  private proc: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
  private stopped = false;

  private readonly ns: string;
  private readonly resource: "secrets" | "jobs";
  private constructor(
    ns: string,
    resource: "secrets" | "jobs",
  ) {
    this.ns = ns;
    this.resource = resource;
  }

  static async start(ns: string, resource: "secrets" | "jobs"): Promise<EventLog> {
    const log = new EventLog(ns, resource);
    void log.follow();
    // A marker object proves the watch is established.
    const marker = `watch-marker-${Math.random().toString(36).slice(2, 8)}`;
    if (resource === "secrets") {
      await kubectl("create", "secret", "generic", marker, "-n", ns, "--from-literal=k=v");
    } else {
      await kubectlApply({
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name: marker, namespace: ns },
        spec: { suspend: true, template: { spec: { restartPolicy: "Never", containers: [{ name: "c", image: "busybox:1.36" }] } } },
      });
    }
    await waitFor(() => log.has("ADDED", marker), { what: `the ${resource} watch in ${ns} to see ${marker}`, timeoutMs: 30_000 });
    return log;
  }

  private async follow(): Promise<void> {
    while (!this.stopped) {
      const proc = Bun.spawn(
        [
          SANDBOX_SCRIPT,
          "kubectl",
          "get",
          this.resource,
          "-n",
          this.ns,
          "--watch",
          "--output-watch-events",
          "--no-headers",
          "-o",
          "custom-columns=EVENT:.type,NAME:.object.metadata.name,OWNER:.object.metadata.ownerReferences[0].kind",
        ],
        { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      this.proc = proc;
      watchers.push(proc);
      const decoder = new TextDecoder();
      let pending = "";
      for await (const chunk of proc.stdout) {
        pending += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl).trim().split(/\s+/).join(" ");
          pending = pending.slice(nl + 1);
          if (line) this.lines.push(line);
        }
      }
      await proc.exited;
      // Not a stand-in for a condition: a pause before restarting a watch the server ended.
      if (!this.stopped) await Bun.sleep(500);
    }
  }

  has(event: string, name: string, owner?: string): boolean {
    return this.lines.some((l) => {
      const [e, n, o] = l.split(" ");
      return e === event && n === name && (owner === undefined || o === owner);
    });
  }

  stop(): void {
    this.stopped = true;
    this.proc?.kill("SIGTERM");
  }
}

// ---------------------------------------------------------------------------

describe("chart on the sandbox: server-side dry run of the rendered sets", () => {
  // A dry run creates nothing, so both sets use the same two namespaces: the release's and,
  // for the all-values set, a separate task namespace.
  let dryRunNamespaces: Promise<{ release: string; tasks: string }>;
  beforeAll(() => {
    dryRunNamespaces = Promise.all([namespace("dry"), namespace("dry-tasks")]).then(([release, tasks]) => ({ release, tasks }));
    // Surfaces a failure in the tests that await it, not as an unhandled rejection.
    dryRunNamespaces.catch(() => undefined);
  });
  /** The manifest's YAML documents as helm printed them, with the kinds to leave out removed. */
  function documents(manifest: string, leaveOut: string[] = []): { text: string; objects: K8sObject[] } {
    const docs = manifest
      .split(/^---[ \t]*$/m)
      .map((d) => ({ text: d, obj: parseManifest(d)[0] }))
      .filter((d): d is { text: string; obj: K8sObject } => d.obj !== undefined && !leaveOut.includes(d.obj.kind));
    return { text: docs.map((d) => `---${d.text}`).join(""), objects: docs.map((d) => d.obj) };
  }

  /** `kubectl apply --dry-run=server -f -` of helm's own YAML; every object must be accepted. */
  async function dryRun(text: string, objects: K8sObject[]): Promise<void> {
    const res = await kubectlResult(["apply", "--dry-run=server", "-f", "-"], { input: text });
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const lines = res.stdout.trim().split("\n");
    expect(lines).toHaveLength(objects.length);
    // "deployment.apps/oz-agent-worker created (server dry run)": resource[.group]/name result
    const results = new Map(
      lines.map((l) => {
        const m = /^([a-z]+)(?:\.[a-z0-9.]+)?\/(\S+) (.*)$/.exec(l);
        return [m ? `${m[1]}/${m[2]}` : l, m?.[3] ?? ""] as const;
      }),
    );
    for (const o of objects) {
      expect(`${o.kind} ${o.metadata.name}: ${results.get(`${o.kind.toLowerCase()}/${o.metadata.name}`) ?? "(no line)"}`).toBe(
        `${o.kind} ${o.metadata.name}: created (server dry run)`,
      );
    }
    // A dry run: nothing was created.
    for (const o of objects) expect(await getJson(o.kind.toLowerCase(), o.metadata.name, "-n", o.metadata.namespace ?? "")).toBeUndefined();
  }

  test("the product page's install command (--set worker.workerId=oz-k8s-worker --set image.tag=0.1.0)", async () => {
    const ns = (await dryRunNamespaces).release;
    const r = await renderWith({ namespace: ns }, ...SEED_SET);
    const { text, objects } = documents(r.manifest);
    expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "Deployment", "Role", "RoleBinding", "ServiceAccount"]);
    for (const o of objects) expect(o.metadata.namespace).toBe(ns);
    await dryRun(text, objects);
  });

  test("the Go chart's values file at its defaults, unchanged (plus the required worker.workerId and image.tag)", async () => {
    const ns = (await dryRunNamespaces).release;
    const r = await renderWith({ namespace: ns }, "--values", goDefaultsFile, ...SEED_SET);
    const { text, objects } = documents(r.manifest);
    expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "Deployment", "Role", "RoleBinding", "ServiceAccount"]);
    await dryRun(text, objects);
  });

  test("every value set (the all-values fixture; PodMonitor left out: the sandbox has no monitoring.coreos.com CRD)", async () => {
    const { release, tasks } = await dryRunNamespaces;
    const r = await renderWith({ namespace: release }, "--values", allValuesFile, "--set", `kubernetesBackend.namespace=${tasks}`);
    // Why PodMonitor is left out: the API server does not know the kind.
    expect((await kubectl("api-resources", "--api-group=monitoring.coreos.com", "-o", "name")).trim()).toBe("");
    expect(r.all("PodMonitor")).toHaveLength(1);
    const { text, objects } = documents(r.manifest, ["PodMonitor"]);
    expect(objects.map((o) => o.kind).sort()).toEqual(["ConfigMap", "Deployment", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"]);
    for (const o of objects) {
      expect(`${o.kind} ${o.metadata.namespace}`).toBe(`${o.kind} ${o.kind.startsWith("Role") ? tasks : release}`);
    }
    await dryRun(text, objects);
  });
});

describe("chart on the sandbox: the Role is sufficient", () => {
  test(
    "with only the chart's ServiceAccount, Role and RoleBinding, preflight passes and a task with env_vars succeeds and is cleaned up",
    async () => {
      const ns = await namespace("sa-ok");
      const workerId = `chart-sa-${RUN}`;
      const r = await renderInstall(ns, workerId);
      const rbac = rbacObjects(r);
      await kubectlApply(rbac);
      const saName = r.one("ServiceAccount").metadata.name;
      const kubeconfig = await serviceAccountKubeconfig(ns, saName);
      const configFile = configWithKubeconfig(r, kubeconfig, "sa-ok");

      // `oz-worker preflight` as that ServiceAccount: every check passes, all 13 permissions.
      const pf = await preflight(configFile);
      expect(pf.checks.map((c) => `${c.name} ${c.status}`), pf.output).toEqual([
        "connection pass",
        "permissions pass",
        "dry-run pass",
        "preflight-job pass",
      ]);
      expect(pf.code).toBe(0);
      const checks = Object.fromEntries(pf.checks.map((c) => [c.name, c]));
      expect(checks.connection?.summary).toContain(`as system:serviceaccount:${ns}:${saName}`);
      expect(checks.permissions?.summary).toStartWith(`all ${REQUIRED_PERMISSIONS.length} permissions granted in namespace "${ns}"`);

      // `oz-worker run` with the chart's config, its startup preflight on.
      const { backend, worker_id, ...topLevel } = r.config() as {
        backend: { kubernetes: Record<string, unknown> };
        worker_id: string;
      };
      expect(worker_id).toBe(workerId);
      const { namespace: configNs, ...kubernetes } = backend.kubernetes;
      expect(configNs).toBe(ns);
      const jobs = await EventLog.start(ns, "jobs");
      const secrets = await EventLog.start(ns, "secrets");
      const worker = await startWorker({ workerId, kubeconfig, namespace: ns, dispatch: dispatch!, config: topLevel, kubernetes, preflight: true });
      workers.push(worker);
      await worker.waitForLog("preflight passed", (l) => l.msg === "preflight passed");
      expect(worker.lines.filter((l) => l.msg.startsWith("preflight ") && l.status !== undefined).map((l) => `${l.check} ${l.status}`)).toEqual([
        "connection pass",
        "permissions pass",
        "dry-run pass",
        "preflight-job pass",
      ]);

      const created = await dispatch!.createTask({
        worker_id: workerId,
        docker_image: "busybox:1.36",
        env_vars: { CHART_E2E_SETTING: "some-value" },
      });
      const task = await dispatch!.waitForTask(created.task_id, (t) => ["succeeded", "failed", "cancelled"].includes(t.state), { timeoutMs: 60_000 });
      expect({ state: task.state, message: task.message }).toMatchObject({ state: "succeeded" });

      // The task went through its Job and the per-task Secret (owned by the Job), and both are gone.
      const jobName = taskJobName(created.task_id, created.execution_id);
      const secretName = taskSecretNameFor(jobName);
      expect(jobs.has("ADDED", jobName)).toBe(true);
      expect(secrets.has("ADDED", secretName, "Job")).toBe(true);
      jobs.stop();
      secrets.stop();
      await waitFor(async () => (await getJson("job", jobName, "-n", ns)) === undefined, {
        what: `Job ${jobName} to be deleted`,
        timeoutMs: 60_000,
      });
      await waitFor(async () => (await getJson("secret", secretName, "-n", ns)) === undefined, {
        what: `Secret ${secretName} to be garbage-collected with its Job`,
        timeoutMs: 60_000,
      });
      // Nothing of the worker's is left: no task Job, no preflight Job.
      await waitFor(async () => (await kubectl("get", "jobs", "-n", ns, "-l", "oz-worker-id", "-o", "name")).trim() === "", {
        what: `no worker Jobs left in ${ns}`,
      });
      expect((await kubectl("get", "jobs", "-n", ns, "-l", "oz-preflight", "-o", "name")).trim()).toBe("");
      // Nothing the worker did was forbidden (warnings about a lost connection may happen when
      // another test restarts the API server; a 403 may not).
      expect(worker.lines.filter((l) => l.level !== "info" && l.level !== "debug" && /forbidden|\b403\b/i.test(JSON.stringify(l)))).toEqual([]);
      expect(await worker.stop()).toBe(0);
    },
    120_000,
  );
});

describe("chart on the sandbox: the Role is minimal", () => {
  interface Permission {
    apiGroup: string;
    resource: string;
    verb: string;
  }
  interface Case {
    permission: Permission;
    release: string;
    result: PreflightRun;
  }
  /** Each verb of each resource, in the chart's order, from a render of oz-agent-worker.rbacRules. */
  let permissions: Permission[] = [];
  const cases = new Map<string, Case>();
  const key = (p: Permission) => describePermission(p);
  let ns = "";

  beforeAll(async () => {
    ns = await namespace("min");
    const probe = await renderInstall(ns, `chart-min-${RUN}`);
    const role = probe.one<Role>("Role");
    permissions = role.rules.flatMap((rule) => {
      expect(rule.apiGroups).toHaveLength(1);
      expect(rule.resources).toHaveLength(1);
      return rule.verbs.map((verb) => ({ apiGroup: rule.apiGroups[0]!, resource: rule.resources[0]!, verb }));
    });

    // One release (its own ServiceAccount, Role, RoleBinding and worker ID) per case, all in
    // one namespace (as several installs with distinct worker IDs would be), four at a time.
    const results = await pool(
      permissions.map((permission, i) => ({ permission, release: `min${i}` })),
      4,
      async ({ permission, release }): Promise<Case> => {
        const r = await renderWith({ namespace: ns, release }, ...SEED_SET, "--set", `worker.workerId=chart-${release}-${RUN}`);
        const objects = rbacObjects(r).map((o) => {
          if (o.kind !== "Role") return o;
          const rules = (o as Role).rules
            .map((rule) =>
              rule.apiGroups[0] === permission.apiGroup && rule.resources[0] === permission.resource
                ? { ...rule, verbs: rule.verbs.filter((v) => v !== permission.verb) }
                : rule,
            )
            .filter((rule) => rule.verbs.length > 0);
          return { ...o, rules };
        });
        await kubectlApply(objects);
        const kubeconfig = await serviceAccountKubeconfig(ns, r.one("ServiceAccount").metadata.name);
        const result = await preflight(configWithKubeconfig(r, kubeconfig, `min-${release}`));
        return { permission, release, result };
      },
    );
    for (const c of results) cases.set(key(c.permission), c);
  }, 10 * 60_000);

  test("the chart's rules are exactly the worker's REQUIRED_PERMISSIONS", () => {
    expect(permissions.map(key)).toEqual(REQUIRED_PERMISSIONS.map(key));
    expect(roleRules(permissions)).toEqual(roleRules(REQUIRED_PERMISSIONS));
  });

  test.each(REQUIRED_PERMISSIONS.map((p) => [key(p), p] as const))(
    "a Role without %s: preflight exits 1 naming exactly that permission",
    (name, permission) => {
      const c = cases.get(name);
      if (!c) throw new Error(`no case was run for ${name} (the chart's Role does not grant it)`);
      const checks = Object.fromEntries(c.result.checks.map((x) => [x.name, x]));
      expect(c.result.code, c.result.output).toBe(1);
      expect(checks.connection?.status, c.result.output).toBe("pass");
      expect(checks.permissions?.status, c.result.output).toBe("fail");
      expect(checks.connection?.summary).toContain(`as system:serviceaccount:${ns}:${c.release}-oz-agent-worker`);
      expect(checks.permissions?.summary).toBe(
        `missing 1 of ${REQUIRED_PERMISSIONS.length} permissions in namespace "${ns}": ${describePermission(permission)}`,
      );
      expect(checks.permissions?.details).toEqual([`missing: ${describePermission(permission)}: needed to ${permission.reason}`]);
    },
  );
});

describe("chart on the sandbox: kubernetesBackend.podTemplate", () => {
  test(
    "a secretKeyRef env renders into config.yaml and reaches the task pod's task container unchanged",
    async () => {
      const ns = await namespace("pod-template");
      const workerId = `chart-pt-${RUN}`;
      // The product page's pod_template example.
      const githubToken = { name: "GITHUB_TOKEN", valueFrom: { secretKeyRef: { name: "my-k8s-secret", key: "github-token" } } };
      const podTemplate = {
        serviceAccountName: "agent-task-sa",
        imagePullSecrets: [{ name: "my-registry-creds" }],
        containers: [
          {
            name: "task",
            resources: { requests: { cpu: "2", memory: "4Gi" }, limits: { memory: "8Gi" } },
            env: [githubToken],
          },
        ],
        tolerations: [{ key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule" }],
      };
      const r = await renderInstall(ns, workerId, "--values", valuesFile(`pod-template-${RUN}`, { kubernetesBackend: { podTemplate } }));
      expect(r.kubernetesConfig().pod_template).toEqual(podTemplate);

      // What the template refers to exists, so the pod is valid.
      await kubectlApply([
        { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "agent-task-sa", namespace: ns } },
        {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "my-k8s-secret", namespace: ns },
          stringData: { "github-token": "not-a-real-token" },
        },
      ]);
      await kubectlApply(rbacObjects(r));
      const kubeconfig = await serviceAccountKubeconfig(ns, r.one("ServiceAccount").metadata.name);

      // The worker runs with the chart's config.yaml: only the kubeconfig is added.
      const { backend, worker_id: _id, ...topLevel } = r.config() as { backend: { kubernetes: Record<string, unknown> }; worker_id: string };
      const { namespace: _ns, ...kubernetes } = backend.kubernetes;
      const worker = await startWorker({ workerId, kubeconfig, namespace: ns, dispatch: dispatch!, config: topLevel, kubernetes });
      workers.push(worker);

      // A task that runs long enough to read its pod, with env_vars of its own as well.
      const created = await dispatch!.createTask({ worker_id: workerId, docker_image: "x:sleep-60", env_vars: { TASK_SETTING: "v" } });
      const jobName = taskJobName(created.task_id, created.execution_id);
      const pod = await waitFor(
        async () => {
          const list = (await getJson("pods", "-n", ns, "-l", `job-name=${jobName}`)) as { items: PodLike[] } | undefined;
          return list?.items.find((p) => p.status?.phase === "Running");
        },
        { what: `a Running pod of Job ${jobName}`, timeoutMs: 30_000 },
      );
      const task = pod.spec.containers.find((c) => c.name === "task");
      expect(task).toBeDefined();
      expect(task!.env).toContainEqual(githubToken);
      expect(task!.env.filter((e) => e.name === "GITHUB_TOKEN")).toEqual([githubToken]);
      // The task's own env_vars come from its per-task Secret, next to the template's.
      expect(task!.env).toContainEqual({ name: "TASK_SETTING", valueFrom: { secretKeyRef: { name: taskSecretNameFor(jobName), key: "TASK_SETTING" } } });
      expect(task!.resources).toEqual(podTemplate.containers[0]!.resources);
      expect(pod.spec.serviceAccountName).toBe("agent-task-sa");
      expect(pod.spec.imagePullSecrets).toEqual(podTemplate.imagePullSecrets);
      expect(pod.spec.tolerations).toContainEqual(podTemplate.tolerations[0]);

      // Cancel it: the worker reports the cancellation and deletes the Job.
      await dispatch!.cancel(created.task_id);
      const done = await dispatch!.waitForTask(created.task_id, (t) => ["succeeded", "failed", "cancelled"].includes(t.state), { timeoutMs: 30_000 });
      expect(done.state).toBe("cancelled");
      await waitFor(async () => (await getJson("job", jobName, "-n", ns)) === undefined, { what: `Job ${jobName} to be deleted`, timeoutMs: 30_000 });
      expect(await worker.stop()).toBe(0);
    },
    120_000,
  );
});

interface PodLike {
  metadata: { name: string };
  spec: {
    serviceAccountName?: string;
    imagePullSecrets?: { name: string }[];
    tolerations?: Record<string, unknown>[];
    containers: { name: string; env: Record<string, unknown>[]; resources?: Record<string, unknown> }[];
  };
  status?: { phase?: string };
}

// ---------------------------------------------------------------------------
// Drop-in for Go-worker users

interface PodInfo {
  metadata: { name: string; uid: string; labels?: Record<string, string>; ownerReferences?: { kind: string; name: string }[]; deletionTimestamp?: string };
  spec: { serviceAccountName?: string; containers: { name: string; image: string; args?: string[] }[] };
  status?: { phase?: string };
}

/** The pods of Deployment `name` (by its selector), as the API server lists them. */
async function deploymentPods(ns: string, name: string): Promise<PodInfo[]> {
  const d = (await getJson("deployment", name, "-n", ns)) as Deployment;
  const selector = Object.entries(d.spec.selector.matchLabels).map(([k, v]) => `${k}=${v}`).join(",");
  return ((await getJson("pods", "-n", ns, "-l", selector)) as { items: PodInfo[] }).items;
}

describe("chart on the sandbox: helm upgrade of a Go-worker release", () => {
  test(
    "the Go chart's release (stand-in) upgrades to charts/oz-agent-worker with the same values: same objects, same selector, the pod rolls",
    async () => {
      const ns = await namespace("upgrade");
      const release = "go-up";
      const fullname = "go-up-oz-agent-worker";
      // The user's values: the Go chart's defaults, the required ones, and a chart-created
      // Secret with the Go chart's default name (<fullname>-api-key).
      const values = [
        "--values", goDefaultsFile,
        "--set", `worker.workerId=chart-up-${RUN}`,
        "--set", "image.tag=0.9.0",
        "--set", "warp.apiKeySecret.create=true",
        "--set", "warp.apiKeySecret.name=",
        "--set", "warp.apiKeySecret.value=not-a-real-key",
      ];
      const opts = { release, namespace: ns, kubeconfig: ADMIN_KUBECONFIG, values };
      await installGoRelease(opts);

      const before = {
        deployment: (await getJson("deployment", fullname, "-n", ns)) as Deployment & { metadata: { uid: string } },
        secret: (await getJson("secret", `${fullname}-api-key`, "-n", ns)) as { metadata: { uid: string } },
        configMap: (await getJson("configmap", `${fullname}-config`, "-n", ns)) as { metadata: { uid: string } },
      };
      const oldPods = await deploymentPods(ns, fullname);
      expect(oldPods.map((p) => `${p.status?.phase} ${p.spec.containers[0]?.image}`)).toEqual(["Running warpdotdev/oz-agent-worker:0.9.0"]);
      const oldPod = oldPods[0]!;

      // The switch: same values, our image.
      const up = await upgradeToChart({ ...opts, upgrade: ["--set", "image.repository=oz-worker", "--set", "image.tag=0.1.0", "--wait", "--timeout", "2m"] });
      expect(`exit ${up.code}\n${up.stderr}`).toBe("exit 0\n");
      expect(up.stdout).toContain(`Release "${release}" has been upgraded`);

      // The same objects (uids), updated in place; the selector did not change.
      const d = (await getJson("deployment", fullname, "-n", ns)) as Deployment & { metadata: { uid: string }; spec: { strategy: Record<string, unknown> } };
      expect(d.metadata.uid).toBe(before.deployment.metadata.uid);
      expect(d.spec.selector.matchLabels).toEqual(before.deployment.spec.selector.matchLabels);
      expect(d.spec.strategy).toEqual({ type: "Recreate" });
      expect(((await getJson("secret", `${fullname}-api-key`, "-n", ns)) as { metadata: { uid: string } }).metadata.uid).toBe(before.secret.metadata.uid);
      const cm = (await getJson("configmap", `${fullname}-config`, "-n", ns)) as { metadata: { uid: string }; data: Record<string, string> };
      expect(cm.metadata.uid).toBe(before.configMap.metadata.uid);
      expect(cm.data["config.yaml"]).toContain(`worker_id: chart-up-${RUN}`);
      expect(cm.data["config.yaml"]).toContain("ttl_seconds_after_finished: 86400");
      // The chart's own Role replaced the stand-in's rules.
      expect(((await getJson("role", fullname, "-n", ns)) as Role).rules).toEqual(roleRules(REQUIRED_PERMISSIONS));

      // The pod rolled: the old one is gone, one new pod runs our image with the Go chart's args.
      const pod = await waitFor(
        async () => {
          const pods = await deploymentPods(ns, fullname);
          return pods.length === 1 && pods[0]!.metadata.uid !== oldPod.metadata.uid && pods[0]!.status?.phase === "Running" ? pods[0] : undefined;
        },
        { what: `the upgraded ${fullname} pod to replace ${oldPod.metadata.name} and run`, timeoutMs: 60_000 },
      );
      const c = pod.spec.containers[0]!;
      expect(c.image).toBe("oz-worker:0.1.0");
      expect(c.args?.slice(0, 4)).toEqual(["--config-file", "/etc/oz-agent-worker/config.yaml", "--backend", "kubernetes"]);
      expect(pod.spec.serviceAccountName).toBe(fullname);
      const rollout = await kubectlResult(["rollout", "status", `deployment/${fullname}`, "-n", ns, "--timeout=60s"]);
      expect(rollout.stdout).toContain("successfully rolled out");

      const history = await kubectl("get", "secrets", "-n", ns, "-l", `owner=helm,name=${release}`, "-o", "jsonpath={.items[*].metadata.labels.status}");
      expect(history.split(" ").sort()).toEqual(["deployed", "superseded"]);

      // And back (docs/helm.md's way out): `helm rollback` to the Go release rolls the pod again.
      const back = await helm("rollback", release, "1", "--namespace", ns, "--kubeconfig", ADMIN_KUBECONFIG, "--wait", "--timeout", "2m");
      expect(`exit ${back.code}\n${back.stderr}`).toBe("exit 0\n");
      await waitFor(
        async () => {
          const pods = await deploymentPods(ns, fullname);
          return pods.length === 1 && pods[0]!.status?.phase === "Running" && pods[0]!.spec.containers[0]?.image === "warpdotdev/oz-agent-worker:0.9.0";
        },
        { what: `the rolled-back ${fullname} pod to run the Go image again`, timeoutMs: 60_000 },
      );
      expect(((await getJson("deployment", fullname, "-n", ns)) as { metadata: { uid: string } }).metadata.uid).toBe(before.deployment.metadata.uid);
    },
    240_000,
  );
});

describe("chart on the sandbox: an existing ServiceAccount and externally managed RBAC", () => {
  test(
    "serviceAccount.create=false and rbac.create=false: only the ConfigMap and Deployment; the compiled worker, with the chart's args, that ServiceAccount and Role, runs a task",
    async () => {
      const ns = await namespace("ext-sa");
      const workerId = `chart-ext-${RUN}`;
      const sa = "platform-oz-worker";
      // Created outside the chart (as IRSA / Workload Identity setups and RBAC managed elsewhere do).
      await kubectlApply({
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name: sa, namespace: ns, annotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/oz" } },
      });
      const role = "oz-worker-managed-elsewhere";
      await kubectlApply([
        { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: role, namespace: ns }, rules: roleRules(REQUIRED_PERMISSIONS) },
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: role, namespace: ns },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role },
          subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
        },
      ]);

      const r = await renderInstall(
        ns,
        workerId,
        "--set", "serviceAccount.create=false",
        "--set", `serviceAccount.name=${sa}`,
        "--set", "rbac.create=false",
        // The worker is run here, outside the cluster: the dispatch server as Oz, and the
        // health endpoints on loopback (extraArgs come last, so this --health-addr wins).
        "--set", `warp.webSocketURL=${dispatch!.wsUrl}`,
        "--set", "worker.extraArgs={--health-addr,127.0.0.1:0}",
      );
      expect(r.kinds()).toEqual(["ConfigMap", "Deployment"]);
      const pod = r.deployment().spec.template.spec;
      expect(pod.serviceAccountName).toBe(sa);

      // Applied for real: the API server admits the Deployment's pod only if the ServiceAccount exists.
      await kubectlApply(r.objects);
      const running = await waitFor(
        async () => (await deploymentPods(ns, r.deployment().metadata.name)).find((p) => p.status?.phase === "Running"),
        { what: "the Deployment's pod to run", timeoutMs: 60_000 },
      );
      expect(running.spec.serviceAccountName).toBe(sa);
      expect(((await getJson("roles", "-n", ns)) as { items: { metadata: { name: string } }[] }).items.map((x) => x.metadata.name)).toEqual([role]);

      // The compiled worker, started exactly with the chart's container arguments (no subcommand),
      // its config file written from the chart's ConfigMap plus the ServiceAccount's kubeconfig.
      const kubeconfig = await serviceAccountKubeconfig(ns, sa);
      const configFile = configWithKubeconfig(r, kubeconfig, "ext-sa");
      const args = r.container().args.map((a) => (a === "/etc/oz-agent-worker/config.yaml" ? configFile : a));
      expect(args[0]).toBe("--config-file");
      const [cmd, ...pre] = workerCommand();
      const env = Object.fromEntries(r.container().env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]));
      const child = spawn(cmd!, [...pre, ...args], { env: { ...process.env, ...env, WARP_API_KEY: dispatch!.apiKey }, stdio: ["ignore", "pipe", "pipe"] });
      const worker = new WorkerProcess(child, configFile, workerId);
      workers.push(worker);

      // Its startup preflight passes with the external Role, then it connects and runs a task.
      await worker.waitForLog("preflight passed", (l) => l.msg === "preflight passed", 90_000);
      await dispatch!.waitForWorkers((ws) => ws.some((w) => w.worker_id === workerId), { timeoutMs: 30_000 });
      const created = await dispatch!.createTask({ worker_id: workerId, docker_image: "busybox:1.36", env_vars: { EXT_SA_SETTING: "v" } });
      const task = await dispatch!.waitForTask(created.task_id, (t) => ["succeeded", "failed", "cancelled"].includes(t.state), { timeoutMs: 60_000 });
      expect({ state: task.state, message: task.message }).toMatchObject({ state: "succeeded" });
      expect(worker.lines.filter((l) => l.level !== "info" && l.level !== "debug" && /forbidden|\b403\b/i.test(JSON.stringify(l)))).toEqual([]);
      expect(await worker.stop()).toBe(0);
    },
    240_000,
  );
});
