// A task's env_vars against the sandbox's real control plane: by default they go into a
// per-task Secret owned by the Job and reach the container through secretKeyRef, so no value
// is in the Job or Pod spec, the worker's log lines or its /metrics; the Secret goes with the
// Job (garbage collector). With inline_task_env: true they are inline (the documented risk)
// and no Secret is made; a Role without `secrets create` fails preflight unless env is inline.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, type V1Secret } from "@kubernetes/client-node";
import { taskSecretNameFor } from "../../src/core/naming.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { REQUIRED_PERMISSIONS, roleRules } from "../../src/preflight/permissions.ts";
import { REDACTED } from "../../src/telemetry/secrets.ts";
import { waitFor } from "../support/dispatch.ts";
import { grantRole, kubectl, run, serviceAccountKubeconfig } from "../support/sandbox.ts";
import { E2EScope, uniqueId } from "../support/e2e-scope.ts";
import { api } from "../support/kube-api.ts";
import { findTaskJob, leakForms, marker, waitForRunningPod } from "../support/task-objects.ts";
import { workerCommand } from "../support/worker.ts";

/** The admin kubeconfig (from the scope's setup). */
let KUBECONFIG: string;
let admin: KubeClient;
const scope = new E2EScope();
const { freshNamespace, worker, dispatchServer } = scope;
let tmp: string;

async function readSecret(ns: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await api(admin, CoreV1Api).readNamespacedSecret({ name, namespace: ns });
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

async function listSecrets(ns: string): Promise<V1Secret[]> {
  return (await api(admin, CoreV1Api).listNamespacedSecret({ namespace: ns })).items;
}

beforeAll(async () => {
  // Reuses the running sandbox (starts or builds it when needed).
  ({ kubeconfig: KUBECONFIG, admin } = await scope.setup());
  tmp = mkdtempSync(join(tmpdir(), "oz-secrets-e2e-"));
}, 60 * 60_000);

afterAll(async () => {
  await scope.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("task secrets", () => {
  test(
    "env_vars go into a Secret owned by the Job, reach the container through secretKeyRef, appear in no spec, log line or metric, and go with the Job",
    async () => {
      const ns = await freshNamespace("secrets");
      const d = await dispatchServer();
      const token = marker("token");
      const password = marker("password");
      const w = await worker({
        workerId: uniqueId("secrets"),
        kubeconfig: KUBECONFIG,
        namespace: ns,
        dispatch: d,
        env: { OTEL_METRICS_EXPORTER: "prometheus", OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1", OTEL_EXPORTER_PROMETHEUS_PORT: "0" },
      });
      const task = await d.createTask({ docker_image: "x:sleep-3", env_vars: { OZ_E2E_TOKEN: token, OZ_E2E_PASSWORD: password } });

      // While it runs: the Job and its pod hold references, the Secret holds the values.
      const job = await waitFor("the task's Job", () => findTaskJob(admin, ns, task.task_id), { timeoutMs: 20_000 });
      const jobName = job.metadata!.name!;
      const pod = await waitForRunningPod(admin, ns, jobName);
      const yaml = await kubectl("get", "job,pod", "-n", ns, "-o", "yaml");
      expect(yaml).toContain(jobName);
      for (const secret of [token, password]) for (const form of leakForms(secret)) expect(yaml).not.toContain(form);

      const secretName = taskSecretNameFor(jobName);
      const secret = await readSecret(ns, secretName);
      expect(secret).toBeDefined();
      const decoded = Object.fromEntries(Object.entries(secret!.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
      expect(decoded).toEqual({ OZ_E2E_PASSWORD: password, OZ_E2E_TOKEN: token });
      expect(secret!.metadata?.ownerReferences).toEqual([
        expect.objectContaining({ apiVersion: "batch/v1", kind: "Job", name: jobName, uid: job.metadata!.uid! }),
      ]);
      const container = pod.spec!.containers.find((c) => c.name === "task")!;
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e]));
      for (const name of ["OZ_E2E_TOKEN", "OZ_E2E_PASSWORD"]) {
        expect(env[name]?.value).toBeUndefined();
        expect(env[name]?.valueFrom?.secretKeyRef).toEqual({ name: secretName, key: name });
      }

      // It succeeds; the Job is deleted, and the garbage collector takes the Secret with it.
      await d.waitForState(task.task_id, "succeeded", { timeoutMs: 30_000 });
      await waitFor("the Job to be deleted", async () => ((await findTaskJob(admin, ns, task.task_id)) ? undefined : true), { timeoutMs: 20_000 });
      await waitFor("the Secret to be garbage-collected with its Job", async () => ((await readSecret(ns, secretName)) ? undefined : true), {
        timeoutMs: 30_000,
        intervalMs: 250,
      });

      // Metrics: scrape /metrics (it does carry the task's series).
      const serving = await w.waitForLog("the Prometheus endpoint", (l) => l.msg === "metrics: serving Prometheus /metrics");
      const metrics = await (await fetch(`http://127.0.0.1:${String(serving.port)}/metrics`)).text();
      expect(metrics).toMatch(/^oz_worker_tasks_completed_total\{[^}]*\} 1$/m);
      // Logs: every line the worker wrote (debug included) and everything else on its output.
      expect(await w.stop("SIGTERM")).toBe(0);
      expect(w.lines.some((l) => l.task_id === task.task_id && l.msg === "task succeeded")).toBe(true);
      for (const secret of [token, password]) {
        for (const form of leakForms(secret)) {
          expect(w.output).not.toContain(form);
          expect(metrics).not.toContain(form);
        }
      }
      console.log(`[secrets] Secret ${secretName}: 2 keys, owner Job ${jobName}; gone with the Job; 0 leaks in spec, ${w.lines.length} log lines, ${metrics.length} bytes of metrics`);
    },
    90_000,
  );

  test(
    "inline_task_env: true puts the values in the Job spec (the documented risk) and creates no Secret; a failed container's log echoing one is still redacted in the worker log",
    async () => {
      const ns = await freshNamespace("secrets-inline");
      const d = await dispatchServer();
      const token = marker("token");
      const echoed = marker("echoed");
      const w = await worker({ workerId: uniqueId("secrets-inline"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: d, kubernetes: { inline_task_env: true } });
      // The sandbox prints SANDBOX_LOG into the container log: the failed task "echoes" a secret.
      const task = await d.createTask({ docker_image: "x:exit-4", env_vars: { OZ_E2E_TOKEN: token, SANDBOX_LOG: echoed } });
      const failed = await d.waitForState(task.task_id, "failed", { timeoutMs: 30_000 });
      expect(failed.exit_code).toBe(4);

      const job = await findTaskJob(admin, ns, task.task_id);
      const env = Object.fromEntries((job!.spec!.template.spec!.containers.find((c) => c.name === "task")!.env ?? []).map((e) => [e.name, e]));
      expect(env.OZ_E2E_TOKEN).toEqual({ name: "OZ_E2E_TOKEN", value: token });
      expect(await kubectl("get", "job", "-n", ns, "-o", "yaml")).toContain(token);
      expect((await listSecrets(ns)).map((s) => s.metadata?.name).filter((n) => n?.endsWith("-env"))).toEqual([]);

      const logged = await w.waitForLog("the failed container's log", (l) => l.task_id === task.task_id && l.msg === "container log of the failed task");
      expect(String(logged.log)).toContain(REDACTED);
      expect(await w.stop("SIGTERM")).toBe(0);
      for (const secret of [token, echoed]) expect(w.output).not.toContain(secret);
    },
    90_000,
  );

  test(
    "a Role without `secrets create`: preflight fails naming it, a task with env_vars fails to start; with inline_task_env it passes and the task runs",
    async () => {
      const ns = await freshNamespace("secrets-rbac");
      const perms = REQUIRED_PERMISSIONS.filter((p) => !(p.resource === "secrets" && p.verb === "create"));
      await grantRole(ns, "worker", roleRules(perms));
      const kubeconfig = await serviceAccountKubeconfig(ns, "worker");

      const configFile = (inline: boolean) => {
        const file = join(tmp, `${ns}-${inline ? "inline" : "secret"}.yaml`);
        writeFileSync(
          file,
          [
            "worker_id: secrets-rbac-e2e",
            "backend:",
            "  kubernetes:",
            `    kubeconfig: ${JSON.stringify(kubeconfig)}`,
            `    namespace: ${ns}`,
            `    inline_task_env: ${inline}`,
            "",
          ].join("\n"),
        );
        return file;
      };
      const preflight = (inline: boolean) => run([...workerCommand(), "preflight", "--config-file", configFile(inline), "--output", "json"], { env: { NO_COLOR: "1" } });
      const checks = (out: string) =>
        Object.fromEntries(
          out
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l) as { name: string; status: string; summary: string })
            .map((c) => [c.name, c]),
        );

      const withSecret = await preflight(false);
      expect(withSecret.code).toBe(1);
      const failing = checks(withSecret.stdout);
      expect(failing.permissions?.status).toBe("fail");
      expect(failing.permissions?.summary).toContain("secrets create");

      const inline = await preflight(true);
      const passing = checks(inline.stdout);
      expect(passing.permissions?.status).toBe("pass");
      expect(inline.code).toBe(0);

      // The same at run time (preflight skipped): the Secret cannot be created, the task fails
      // at Job creation and the Job held for it is taken back; inline, the task runs.
      const d = await dispatchServer();
      const strict = await worker({ workerId: uniqueId("secrets-rbac"), kubeconfig, namespace: ns, dispatch: d });
      const denied = await d.createTask({ docker_image: "busybox:1.36", env_vars: { OZ_E2E_TOKEN: marker("token") } });
      const deniedRecord = await d.waitForState(denied.task_id, "failed", { timeoutMs: 30_000 });
      expect(deniedRecord.failure_reason).toBe("job_create");
      expect(deniedRecord.message).toContain("secrets");
      await waitFor("the held Job to be deleted", async () => ((await findTaskJob(admin, ns, denied.task_id)) ? undefined : true), { timeoutMs: 20_000 });
      expect(await strict.stop("SIGTERM")).toBe(0);

      const relaxed = await worker({ workerId: uniqueId("secrets-rbac-inline"), kubeconfig, namespace: ns, dispatch: d, kubernetes: { inline_task_env: true } });
      const allowed = await d.createTask({ docker_image: "busybox:1.36", env_vars: { OZ_E2E_TOKEN: marker("token") } });
      await d.waitForState(allowed.task_id, "succeeded", { timeoutMs: 30_000 });
      expect(await relaxed.stop("SIGTERM")).toBe(0);
    },
    120_000,
  );
});
