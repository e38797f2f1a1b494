// Assignments where oz-worker must answer Oz as the Go worker does, against the sandbox's real
// control plane, the dispatch server and the compiled worker:
// - env var names the API server accepts but Secret keys cannot hold (`MY-TOKEN`, `my.dotted`,
//   `1START`) run: each value reaches the task container under its exact name through a
//   secretKeyRef to a safe key of the per-task Secret, and no value is in the Job, Pod or logs;
//   a restarted worker reads those values back from the Secret to redact a failed task's log;
// - a name the API server refuses (`A=B`) fails the task with `job_create` and its message;
// - an assignment with a task_id and an invalid field is claimed, then failed with a precise
//   failure reason and the field named.
// The simulated node does not resolve secretKeyRefs, so "reaches the container" is shown the
// way a kubelet resolves it: the pod's env entry of that exact name → Secret key → value.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BatchV1Api, CoreV1Api, type V1Secret } from "@kubernetes/client-node";
import { taskSecretNameFor } from "../../src/core/naming.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { REDACTED } from "../../src/telemetry/secrets.ts";
import { type TaskRecord, waitFor } from "../support/dispatch.ts";
import { E2EScope, uniqueId } from "../support/e2e-scope.ts";
import { api } from "../support/kube-api.ts";
import { findTaskJob, leakForms, marker, waitForRunningPod } from "../support/task-objects.ts";
import { kubectl } from "../support/sandbox.ts";

let KUBECONFIG: string;
let admin: KubeClient;
const scope = new E2EScope();
const { freshNamespace, worker, dispatchServer } = scope;

/** What the worker sent for a task, in order. */
const fromWorker = (t: TaskRecord) => t.events.filter((e) => e.direction === "from_worker");

beforeAll(async () => {
  ({ kubeconfig: KUBECONFIG, admin } = await scope.setup());
}, 60 * 60_000);

afterAll(async () => {
  await scope.cleanup();
});

describe("env var names the API server accepts", () => {
  test(
    "MY-TOKEN, my.dotted and 1START: the task succeeds, each value reaches the container under its exact name via a safe Secret key, no value in the Job, Pod or logs",
    async () => {
      const ns = await freshNamespace("edges-env");
      const d = await dispatchServer();
      const w = await worker({ workerId: uniqueId("edges-env"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const envVars = { "MY-TOKEN": marker("token"), "my.dotted": marker("dotted"), "1START": marker("start") };
      const task = await d.createTask({ docker_image: "x:sleep-3", env_vars: envVars });

      const job = await waitFor("the task's Job", () => findTaskJob(admin, ns, task.task_id), { timeoutMs: 20_000 });
      const jobName = job.metadata!.name!;
      const pod = await waitForRunningPod(admin, ns, jobName);
      const secretName = taskSecretNameFor(jobName);
      const secret: V1Secret = await api(admin, CoreV1Api).readNamespacedSecret({ name: secretName, namespace: ns });

      // As the kubelet resolves it: env entry of the exact name → secretKeyRef → the Secret's value.
      const env = pod.spec!.containers.find((c) => c.name === "task")!.env ?? [];
      const resolved: Record<string, string> = {};
      for (const name of Object.keys(envVars)) {
        const entry = env.find((e) => e.name === name);
        expect(entry?.value).toBeUndefined();
        const ref = entry?.valueFrom?.secretKeyRef;
        expect(ref?.name).toBe(secretName);
        resolved[name] = Buffer.from(secret.data?.[ref!.key] ?? "", "base64").toString("utf8");
      }
      expect(resolved).toEqual(envVars);
      expect(Object.keys(secret.data ?? {}).sort()).toEqual(["1START", "MY-TOKEN", "my.2edotted"]);

      const yaml = await kubectl("get", "job,pod", "-n", ns, "-o", "yaml");
      expect(yaml).toContain("my.dotted");
      for (const value of Object.values(envVars)) for (const form of leakForms(value)) expect(yaml).not.toContain(form);

      const done = await d.waitForState(task.task_id, "succeeded", { timeoutMs: 30_000 });
      expect(fromWorker(done).map((e) => e.type)).toEqual(["task_claimed", "task_completed"]);
      expect(await w.stop("SIGTERM")).toBe(0);
      for (const value of Object.values(envVars)) for (const form of leakForms(value)) expect(w.output).not.toContain(form);
    },
    90_000,
  );

  test(
    "a worker restarted while the Oz connection is down re-adopts the failed task and reads its Secret (escaped keys) back to redact the container log",
    async () => {
      const ns = await freshNamespace("edges-readopt");
      const d = await dispatchServer();
      const workerId = uniqueId("edges-readopt");
      const echoed = marker("echoed");
      // The pod template's literal SANDBOX_LOG makes the simulated container print the value;
      // only the task's Secret (key my.2edotted) tells a new worker that it is a secret.
      const podTemplate = { containers: [{ name: "task", env: [{ name: "SANDBOX_LOG", value: echoed }] }] };
      const start = () => worker({ workerId, kubeconfig: KUBECONFIG, namespace: ns, dispatch: d, kubernetes: { pod_template: podTemplate } });
      const w1 = await start();
      const task = await d.createTask({ docker_image: "x:exit-3", env_vars: { "my.dotted": echoed } });
      await d.waitForState(task.task_id, "claimed", { timeoutMs: 20_000 });
      // Oz goes away before the outcome can be reported; the worker is then killed.
      await d.pause();
      await waitFor("the task's Job to fail", async () => {
        const job = await findTaskJob(admin, ns, task.task_id);
        return (job?.status?.conditions ?? []).some((c) => c.type === "Failed" && c.status === "True") ? true : undefined;
      }, { timeoutMs: 30_000 });
      expect(await w1.stop("SIGKILL")).not.toBe(0);
      await d.resume();

      const w2 = await start();
      const logged = await w2.waitForLog("the failed container's log", (l) => l.task_id === task.task_id && l.msg === "container log of the failed task");
      expect(String(logged.log)).toContain(REDACTED);
      const failed = await d.waitForState(task.task_id, "failed", { timeoutMs: 30_000 });
      expect(failed.exit_code).toBe(3);
      expect(await w2.stop("SIGTERM")).toBe(0);
      for (const form of leakForms(echoed)) expect(w2.output).not.toContain(form);
    },
    120_000,
  );

  test(
    "a name the API server refuses (A=B) fails the task with job_create and the server's message, and leaves no Job",
    async () => {
      const ns = await freshNamespace("edges-refused");
      const d = await dispatchServer();
      const w = await worker({ workerId: uniqueId("edges-refused"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const value = marker("refused");
      const task = await d.createTask({ docker_image: "busybox:1.36", env_vars: { "A=B": value } });
      const failed = await d.waitForState(task.task_id, "failed", { timeoutMs: 30_000 });
      expect(fromWorker(failed).map((e) => e.type)).toEqual(["task_claimed", "task_failed"]);
      expect(failed.failure_reason).toBe("job_create");
      // The API server's own words, naming the env entry.
      expect(failed.message).toContain("A=B");
      expect(failed.message).toContain("printable ASCII characters other than '='");
      expect(failed.message).not.toContain(value);
      expect(await findTaskJob(admin, ns, task.task_id)).toBeUndefined();
      expect(await w.stop("SIGTERM")).toBe(0);
      expect(w.output).not.toContain(value);
    },
    60_000,
  );
});

describe("the per-task Secret's size limit (the API server's 1 MiB of values)", () => {
  test(
    "values past 1 MiB: the Secret is refused (job_create with the server's message, the held Job removed); inline_task_env runs the same task, as the Go worker would",
    async () => {
      const ns = await freshNamespace("edges-size");
      const d = await dispatchServer();
      // Values count, names do not: exactly 1 MiB is accepted, one byte more is not.
      const value = (n: number) => `${marker("big")}${"v".repeat(n)}`.slice(-n);
      const strict = await worker({ workerId: uniqueId("edges-size"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const atLimit = await d.createTask({ docker_image: "busybox:1.36", env_vars: { "BIG-A": value(512 * 1024), "BIG-B": value(512 * 1024) } });
      await d.waitForState(atLimit.task_id, "succeeded", { timeoutMs: 30_000 });
      const over = await d.createTask({ docker_image: "busybox:1.36", env_vars: { "BIG-A": value(512 * 1024), "BIG-B": value(512 * 1024 + 1) } });
      const failed = await d.waitForState(over.task_id, "failed", { timeoutMs: 30_000 });
      expect(failed.failure_reason).toBe("job_create");
      expect(failed.message).toContain("may not be more than 1048576 bytes");
      await waitFor("the held Job to be deleted", async () => ((await findTaskJob(admin, ns, over.task_id)) ? undefined : true), { timeoutMs: 20_000 });
      expect(await strict.stop("SIGTERM")).toBe(0);

      const inline = await worker({ workerId: uniqueId("edges-size-inline"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: d, kubernetes: { inline_task_env: true } });
      const same = await d.createTask({ docker_image: "busybox:1.36", env_vars: { "BIG-A": value(512 * 1024), "BIG-B": value(512 * 1024 + 1) } });
      await d.waitForState(same.task_id, "succeeded", { timeoutMs: 30_000 });
      expect(await inline.stop("SIGTERM")).toBe(0);
    },
    120_000,
  );
});

describe("an invalid assignment with a task_id", () => {
  test(
    "is claimed, then failed with the most precise reason and the field named; no Job is created",
    async () => {
      const ns = await freshNamespace("edges-invalid");
      const d = await dispatchServer();
      const w = await worker({ workerId: uniqueId("edges-invalid"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: d });
      const cases = [
        { body: { instance_shape: { vcpus: "two" } }, reason: "job_create", field: "data.instance_shape.vcpus: expected number, got string" },
        { body: { docker_image: "ubuntu 22.04" }, reason: "invalid_image", field: "data.docker_image: must not contain whitespace" },
        { body: { additional_sidecars: [{ image: "corp/tools:1", mount_path: "/opt/tools", read_write: "yes" }] }, reason: "sidecar_prep", field: "data.additional_sidecars[0].read_write: expected boolean, got string" },
        { body: { env_vars: { TOKEN: 42 } }, reason: "job_create", field: "data.env_vars.TOKEN: value must be a string, got number" },
      ];
      for (const c of cases) {
        const task = await d.createTask(c.body);
        const failed = await d.waitForState(task.task_id, "failed", { timeoutMs: 20_000 });
        const sent = fromWorker(failed);
        expect(sent.map((e) => e.type)).toEqual(["task_claimed", "task_failed"]);
        expect(sent[0]!.data).toEqual({ task_id: task.task_id, worker_id: w.workerId });
        expect(sent[1]!.data.failure_reason).toBe(c.reason);
        expect(String(sent[1]!.data.message)).toContain(c.field);
      }
      expect((await api(admin, BatchV1Api).listNamespacedJob({ namespace: ns })).items).toEqual([]);
      expect(await w.stop("SIGTERM")).toBe(0);
    },
    60_000,
  );
});
