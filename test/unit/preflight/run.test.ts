// The preflight's orchestration on a fake API: order, skipping, the verdict from watch events,
// and the preflight Job deleted on every path (pass, fail, timeout, abort).
import { describe, expect, test } from "bun:test";
import { runPreflight } from "../../../src/preflight/run.ts";
import type { CheckResult } from "../../../src/preflight/types.ts";
import { exitCodeFor } from "../../../src/preflight/types.ts";
import { makeConfig } from "../core/fixtures.ts";
import { FakeKube, type FakeOptions } from "./fake-kube.ts";
import { PSA_REJECTION } from "./fixtures.ts";

const config = (k8s: Parameters<typeof makeConfig>[0] = {}) => makeConfig({ namespace: "tasks", inlineTaskEnv: false, ...k8s });

function podOf(job: string, status: unknown) {
  return { metadata: { name: `${job}-abcde`, labels: { "job-name": job } }, status };
}

const started = (job: string) =>
  podOf(job, {
    phase: "Pending",
    conditions: [{ type: "PodScheduled", status: "True" }],
    initContainerStatuses: [{ name: "root-init-preflight", state: { running: { startedAt: "2025-01-01T00:00:00Z" } } }],
  });

async function run(opts: FakeOptions, extra: { timeoutMs?: number; signal?: AbortSignal; k8s?: Parameters<typeof makeConfig>[0] } = {}) {
  const kube = new FakeKube(opts);
  const seen: CheckResult[] = [];
  const report = await runPreflight({
    config: config(extra.k8s),
    kube,
    timeoutMs: extra.timeoutMs ?? 2_000,
    ...(extra.signal ? { signal: extra.signal } : {}),
    onResult: (r) => seen.push(r),
  });
  return { kube, report, seen, byName: Object.fromEntries(report.results.map((r) => [r.name, r])) };
}

describe("runPreflight", () => {
  test("all pass: four results in order, reported as they end; the Job deleted with background propagation", async () => {
    const { kube, report, seen, byName } = await run({ onJobCreated: (k, job) => k.push("pods", "ADDED", started(job.metadata.name)) });
    expect(report.results.map((r) => [r.name, r.status])).toEqual([
      ["connection", "pass"],
      ["permissions", "pass"],
      ["dry-run", "pass"],
      ["preflight-job", "pass"],
    ]);
    expect(seen).toEqual(report.results);
    expect(report.ok).toBe(true);
    expect(exitCodeFor(report)).toBe(0);
    expect(byName.connection?.summary).toBe(
      'Kubernetes v1.33.1 at https://127.0.0.1:6443 (explicit file /tmp/kubeconfig, context fake) as system:serviceaccount:tasks:w; namespace "tasks" exists',
    );
    expect(byName.permissions?.summary).toContain("all 13 permissions granted");
    expect(byName["dry-run"]?.summary).toContain("env in Secret");
    expect(kube.created).toHaveLength(1);
    expect(kube.deleted).toEqual([`${kube.created[0]} Background`]);
    // Watches were opened before the Job was created, on the Job's pods and events.
    const podWatch = kube.streams.find((s) => s.path.endsWith("/pods"));
    expect(podWatch?.query.get("labelSelector")).toBe(`job-name=${kube.created[0]}`);
    const createIndex = kube.requests.findIndex((r) => r.method === "POST" && r.path.endsWith("/jobs") && !r.query.includes("dryRun"));
    const watchIndex = kube.requests.findIndex((r) => r.query.includes("watch=true"));
    expect(watchIndex).toBeLessThan(createIndex);
  });

  test("unreachable: connection fails, the rest skipped, exit 3", async () => {
    const { kube, report } = await run({ unreachable: true });
    expect(report.results.map((r) => r.status)).toEqual(["fail", "skip", "skip", "skip"]);
    expect(report.results[0]?.summary).toBe("cannot reach the API server at https://127.0.0.1:6443 (network)");
    expect(report.results[1]?.summary).toBe("skipped: the API server is unreachable");
    expect(exitCodeFor(report)).toBe(3);
    expect(kube.created).toEqual([]);
  });

  test("missing namespace: connection fails and names it", async () => {
    const { report } = await run({ namespace: "missing" });
    expect(report.results[0]).toMatchObject({ status: "fail", summary: expect.stringContaining('namespace "tasks" does not exist') });
    expect(report.results[0]?.fix).toContain("kubectl create namespace tasks");
    expect(exitCodeFor(report)).toBe(1);
  });

  test("a namespace that cannot be read does not fail the connection check", async () => {
    const { report } = await run({ namespace: "forbidden", onJobCreated: (k, job) => k.push("pods", "ADDED", started(job.metadata.name)) });
    expect(report.results[0]?.status).toBe("pass");
    expect(report.results[0]?.summary).toContain("not verified");
  });

  test("jobs delete missing: listed exactly, with a Role snippet; the preflight Job is never created", async () => {
    const { kube, byName, report } = await run({ denied: ["jobs delete"] });
    expect(byName.permissions?.status).toBe("fail");
    expect(byName.permissions?.summary).toBe('missing 1 of 13 permissions in namespace "tasks": jobs delete (batch)');
    expect(byName.permissions?.fix).toContain('verbs: ["delete"]');
    expect(byName.permissions?.fix).toContain("kind: ServiceAccount");
    expect(byName["dry-run"]?.status).toBe("pass");
    expect(byName["preflight-job"]).toMatchObject({ status: "skip", summary: "skipped: needs jobs delete (batch) (see permissions)" });
    expect(kube.created).toEqual([]);
    expect(exitCodeFor(report)).toBe(1);
  });

  test("inline env: secrets permissions are not required and no Secret is dry-run", async () => {
    const { kube, byName } = await run({ denied: ["secrets create", "secrets get"], onJobCreated: (k, job) => k.push("pods", "ADDED", started(job.metadata.name)) }, { k8s: { inlineTaskEnv: true } });
    expect(byName.permissions?.status).toBe("pass");
    expect(byName.permissions?.summary).toContain("all 11 permissions");
    expect(kube.requests.some((r) => r.path.endsWith("/secrets"))).toBe(false);
  });

  test("dry-run warnings are reported without failing", async () => {
    const warning = 'would violate PodSecurity "restricted:latest": runAsUser=0 (container "sidecar-copy-0" must not set runAsUser=0)';
    const { byName } = await run({ dryRunWarnings: [warning], onJobCreated: (k, job) => k.push("pods", "ADDED", started(job.metadata.name)) });
    expect(byName["dry-run"]?.status).toBe("pass");
    expect(byName["dry-run"]?.details?.[0]).toBe(`warning: ${warning}`);
    expect(byName["dry-run"]?.details?.[1]).toContain("not Jobs");
  });

  test("FailedCreate by Pod Security: fails at once, quoting the event; the Job deleted", async () => {
    const { kube, byName } = await run({
      onJobCreated: (k, job) =>
        k.push("events", "ADDED", {
          metadata: { uid: "e1" },
          type: "Warning",
          reason: "FailedCreate",
          message: `Error creating: ${PSA_REJECTION}`,
          involvedObject: { kind: "Job", name: job.metadata.name },
        }),
    });
    const r = byName["preflight-job"];
    expect(r?.status).toBe("fail");
    expect(r?.summary).toContain('Pod Security "restricted:latest" in namespace "tasks"');
    expect(r?.details?.[0]).toBe(`FailedCreate: ${PSA_REJECTION}`);
    expect(r?.fix).toContain("use_image_volumes");
    expect(r?.durationMs).toBeLessThan(1000);
    expect(kube.deleted).toEqual([`${kube.created[0]} Background`]);
  });

  test("events listed when watching them is forbidden, with a note", async () => {
    const { byName } = await run({
      eventsWatchForbidden: true,
      onJobCreated: (k, job) =>
        k.listedEvents.push({ metadata: { uid: "e1" }, type: "Warning", reason: "FailedCreate", message: `Error creating: ${PSA_REJECTION}`, involvedObject: { kind: "Job", name: job.metadata.name } }),
    });
    const r = byName["preflight-job"];
    expect(r?.status).toBe("fail");
    expect(r?.details?.at(-1)).toContain("events were listed, not watched");
  });

  test("timeout with no pod: fails naming what was last seen; the Job deleted", async () => {
    const { kube, byName } = await run({}, { timeoutMs: 300 });
    const r = byName["preflight-job"];
    expect(r?.status).toBe("fail");
    expect(r?.summary).toMatch(/^no verdict within 0\.3 s: no pod created yet/);
    expect(kube.deleted).toHaveLength(1);
  });

  test("abort while waiting: interrupted, exit 130, the Job deleted before the report returns", async () => {
    const ac = new AbortController();
    const { kube, report, byName } = await run({ onJobCreated: () => setTimeout(() => ac.abort(), 50) }, { signal: ac.signal, timeoutMs: 10_000 });
    expect(report.interrupted).toBe(true);
    expect(exitCodeFor(report)).toBe(130);
    expect(byName["preflight-job"]?.summary).toBe(`interrupted; the preflight Job ${kube.created[0]} was deleted`);
    expect(byName["preflight-job"]?.durationMs).toBeLessThan(1000);
    expect(kube.deleted).toEqual([`${kube.created[0]} Background`]);
  });

  test("abort before the preflight Job: remaining checks skipped, nothing created", async () => {
    const ac = new AbortController();
    ac.abort();
    const { kube, report } = await run({}, { signal: ac.signal });
    expect(report.results.map((r) => r.status)).toEqual(["skip", "skip", "skip", "skip"]);
    expect(exitCodeFor(report)).toBe(130);
    expect(kube.created).toEqual([]);
  });

  test("a namespace that cannot be read and does not exist: the dry run says so, the preflight Job is skipped", async () => {
    const { kube, byName, report } = await run({
      namespace: "forbidden",
      dryRunError: { code: 404, reason: "NotFound", message: 'namespaces "tasks" not found', details: { name: "tasks", kind: "namespaces" } },
    });
    expect(byName["dry-run"]).toMatchObject({ status: "fail", summary: 'namespace "tasks" does not exist' });
    expect(byName["dry-run"]?.fix).toContain("kubectl create namespace tasks");
    expect(byName["preflight-job"]).toMatchObject({ status: "skip", summary: 'skipped: namespace "tasks" does not exist' });
    expect(kube.created).toEqual([]);
    expect(exitCodeFor(report)).toBe(1);
  });

  test("a policy webhook rejecting the task Job: named, quoted", async () => {
    const message = 'admission webhook "validate.kyverno.svc-fail" denied the request: policy Job/tasks/oz-task-x for resource violation: require-labels';
    const { byName } = await run({ dryRunError: { code: 400, reason: "BadRequest", message }, onJobCreated: (k, job) => k.push("pods", "ADDED", started(job.metadata.name)) });
    expect(byName["dry-run"]?.status).toBe("fail");
    expect(byName["dry-run"]?.summary).toBe('the admission webhook "validate.kyverno.svc-fail" rejects the task Job in namespace "tasks"');
    expect(byName["dry-run"]?.details?.[0]).toContain(message);
    // The real preflight Job is a different object: still tried.
    expect(byName["preflight-job"]?.status).toBe("pass");
  });

  test("image volumes dropped by an API server without the feature: says so", async () => {
    const { byName } = await run(
      {
        dryRunError: {
          code: 422,
          reason: "Invalid",
          message: 'Job.batch "oz-task-x" is invalid: spec.template.spec.volumes[1]: Required value: must specify a volume type',
          details: { causes: [{ field: "spec.template.spec.volumes[1]", message: "Required value: must specify a volume type" }] },
        },
        onJobCreated: (k, job) => k.push("pods", "ADDED", { ...started(job.metadata.name), status: { phase: "Succeeded" } }),
      },
      { k8s: { useImageVolumes: true } },
    );
    expect(byName["dry-run"]?.summary).toContain("does not accept image volumes");
    expect(byName["dry-run"]?.fix).toContain("use_image_volumes: false");
  });
});
