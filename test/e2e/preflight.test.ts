// `oz-worker preflight` against the sandbox's real control plane, through the compiled binary
// (dist/oz-worker) when it exists, else the source with bun: a pass in an ordinary namespace
// (and its wall time), Pod Security `restricted`, a Role without `delete` on jobs, an image
// that cannot be pulled, image-volume mode, a missing namespace, the JSON output, exit codes 2
// and 3, Ctrl-C, and the same checks gating `run`. After every run no preflight Job (nor its
// pod) is left behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  ADMIN_KUBECONFIG,
  ensureSandbox,
  freshNamespace as createNamespace,
  grantRole,
  kubectl,
  kubectlApply,
  type Namespace,
  REPO_ROOT,
  run as runCommand,
  serviceAccountKubeconfig,
  waitFor,
} from "../support/sandbox.ts";

const BINARY = resolve(REPO_ROOT, "dist/oz-worker");
/** The CLI: the compiled binary when built (scripts/test builds it), else the source. */
const CLI = existsSync(BINARY) ? [BINARY] : [process.execPath, resolve(REPO_ROOT, "src/cli/main.ts")];

const tmp = mkdtempSync(join(tmpdir(), "oz-preflight-e2e-"));
const namespaces: Namespace[] = [];
let fileCounter = 0;

/** A fresh namespace (deleted in afterAll); returns its name. */
async function freshNamespace(prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const ns = await createNamespace(prefix, labels);
  namespaces.push(ns);
  return ns.name;
}

/** A config file for the namespace; `extra` is YAML appended under backend.kubernetes. */
function configFile(ns: string, opts: { kubeconfig?: string; extra?: string } = {}): string {
  const file = join(tmp, `${ns}-${fileCounter++}.yaml`);
  const lines = [
    "worker_id: preflight-e2e",
    "backend:",
    "  kubernetes:",
    `    kubeconfig: ${JSON.stringify(opts.kubeconfig ?? ADMIN_KUBECONFIG)}`,
    `    namespace: ${ns}`,
    ...(opts.extra ? opts.extra.split("\n").map((l) => `    ${l}`) : []),
  ];
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function preflight(args: string[], timeoutMs = 60_000): Promise<CliRun> {
  const t0 = performance.now();
  const result = await runCommand([...CLI, "preflight", ...args], { timeoutMs, env: { NO_COLOR: "1" } });
  return { ...result, ms: performance.now() - t0 };
}

interface JsonCheck {
  name: string;
  status: string;
  durationMs: number;
  summary: string;
  details?: string[];
  fix?: string;
}

function parseJson(run: CliRun): JsonCheck[] {
  return run.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as JsonCheck);
}

async function preflightObjects(ns: string, kind: "jobs" | "pods"): Promise<string[]> {
  return (await kubectl("get", kind, "-n", ns, "-l", "oz-preflight", "-o", "name")).split("\n").filter(Boolean);
}

/** No preflight Job right after the CLI returned (it deletes before exiting), and its pods go soon after. */
async function expectNothingLeft(ns: string): Promise<void> {
  expect(await preflightObjects(ns, "jobs")).toEqual([]);
  await waitFor(`preflight pods in ${ns} to be gone`, async () => ((await preflightObjects(ns, "pods")).length === 0 ? true : undefined), { timeoutMs: 30_000 });
}

beforeAll(async () => {
  // Idempotent: returns at once when the sandbox is already healthy; builds it on first use.
  await ensureSandbox();
  // The kube client's first connection, JIT and so on: one run to warm up.
  const ns = await freshNamespace("pf-warm");
  await preflight(["--config-file", configFile(ns)]);
}, 60 * 60_000);

afterAll(async () => {
  await Promise.allSettled(namespaces.map((ns) => ns.cleanup()));
  rmSync(tmp, { recursive: true, force: true });
});

describe("oz-worker preflight on the sandbox", () => {
  test("passes in an ordinary namespace, well under 3 s on a warm sandbox", async () => {
    const ns = await freshNamespace("pf-ok");
    const file = configFile(ns);
    const times: number[] = [];
    let last: CliRun | undefined;
    for (let i = 0; i < 5; i++) {
      last = await preflight(["--config-file", file]);
      expect(last.code).toBe(0);
      times.push(last.ms);
    }
    const lines = last!.stdout.trim().split("\n");
    expect(lines.map((l) => l.split(/\s+/).slice(0, 3).join(" "))).toEqual([
      "✓ PASS connection",
      "✓ PASS permissions",
      "✓ PASS dry-run",
      "✓ PASS preflight-job",
      "preflight passed in",
    ]);
    expect(lines[0]).toContain(`namespace "${ns}" exists`);
    expect(lines[0]).toContain(`explicit file ${ADMIN_KUBECONFIG}`);
    expect(lines[3]).toContain("was admitted and started");
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[2]!;
    console.log(`preflight wall time (process start to exit), 5 passing runs: ${times.map((t) => `${Math.round(t)} ms`).join(", ")}; median ${Math.round(median)} ms`);
    expect(median).toBeLessThan(3_000);
    await expectNothingLeft(ns);
  });

  test("--output json: one object per check and line, in order, with the documented fields", async () => {
    const ns = await freshNamespace("pf-json");
    const run = await preflight(["--config-file", configFile(ns), "--output", "json"]);
    expect(run.code).toBe(0);
    const checks = parseJson(run);
    expect(checks.map((c) => c.name)).toEqual(["connection", "permissions", "dry-run", "preflight-job"]);
    for (const c of checks) {
      expect(Object.keys(c).slice(0, 4)).toEqual(["name", "status", "durationMs", "summary"]);
      for (const k of Object.keys(c)) expect(["name", "status", "durationMs", "summary", "details", "fix"]).toContain(k);
      expect(c.status).toBe("pass");
      expect(Number.isInteger(c.durationMs) && c.durationMs >= 0).toBe(true);
      expect(typeof c.summary).toBe("string");
      if (c.details) for (const d of c.details) expect(typeof d).toBe("string");
    }
    await expectNothingLeft(ns);
  });

  test("fails in a namespace enforcing Pod Security restricted: names it and the violated rule, suggests use_image_volumes or a policy change", async () => {
    const ns = await freshNamespace("pf-psa", { "pod-security.kubernetes.io/enforce": "restricted" });
    const run = await preflight(["--config-file", configFile(ns)]);
    expect(run.code).toBe(1);
    const text = run.stdout;
    const failLine = text.split("\n").find((l) => l.startsWith("✗ FAIL  preflight-job"));
    expect(failLine).toContain(`Pod Security "restricted:latest" in namespace "${ns}" rejected the preflight pod`);
    expect(failLine).toContain("runAsUser=0");
    expect(text).toContain('FailedCreate: pods "oz-preflight-');
    expect(text).toContain('violates PodSecurity "restricted:latest"');
    expect(text).toContain('violated: runAsUser=0 (container "root-init-preflight" must not set runAsUser=0)');
    expect(text).toContain("use_image_volumes: true");
    expect(text).toContain(`kubectl label namespace ${ns} --overwrite pod-security.kubernetes.io/enforce=baseline`);
    // The dry run of the task Job only warns (enforce applies to Pods); the warning is reported.
    expect(text).toMatch(/✓ PASS {2}dry-run .*with 1 warning/);
    expect(text).toContain('warning: would violate PodSecurity "restricted:latest"');
    await expectNothingLeft(ns);
  });

  test("fails for a ServiceAccount whose Role lacks delete on jobs, listing exactly that; the Role snippet fixes it", async () => {
    const ns = await freshNamespace("pf-rbac");
    await grantRole(ns, "worker", [
      { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "patch"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      { apiGroups: [""], resources: ["events"], verbs: ["list"] },
      { apiGroups: [""], resources: ["secrets"], verbs: ["create", "get"] },
    ]);
    const kubeconfig = await serviceAccountKubeconfig(ns, "worker");
    expect(existsSync(kubeconfig)).toBe(true);
    const file = configFile(ns, { kubeconfig });

    const run = await preflight(["--config-file", file, "--output", "json"]);
    expect(run.code).toBe(1);
    const checks = Object.fromEntries(parseJson(run).map((c) => [c.name, c]));
    expect(checks.connection?.status).toBe("pass");
    expect(checks.connection?.summary).toContain(`as system:serviceaccount:${ns}:worker`);
    expect(checks.permissions?.status).toBe("fail");
    expect(checks.permissions?.summary).toBe(`missing 1 of 13 permissions in namespace "${ns}": jobs delete (batch)`);
    expect(checks.permissions?.details).toEqual(["missing: jobs delete (batch): needed to delete succeeded and cancelled task Jobs, and the preflight Job"]);
    expect(checks["preflight-job"]).toMatchObject({ status: "skip", summary: "skipped: needs jobs delete (batch) (see permissions)" });
    await expectNothingLeft(ns);

    // The fix is ready to apply: after it, the same ServiceAccount passes (events listed: the Role grants no watch on them).
    const fix = checks.permissions!.fix!;
    const snippet = fix.slice(fix.indexOf("\n") + 1);
    await kubectlApply(snippet);
    const again = await preflight(["--config-file", file, "--output", "json"]);
    expect(parseJson(again).map((c) => `${c.name} ${c.status}`)).toEqual(["connection pass", "permissions pass", "dry-run pass", "preflight-job pass"]);
    expect(again.code).toBe(0);
    await expectNothingLeft(ns);
  });

  test("fails with preflight_image x:pull-error as an image pull problem", async () => {
    const ns = await freshNamespace("pf-pull");
    const run = await preflight(["--config-file", configFile(ns, { extra: "preflight_image: x:pull-error" }), "--output", "json"]);
    expect(run.code).toBe(1);
    const job = parseJson(run).find((c) => c.name === "preflight-job")!;
    expect(job.status).toBe("fail");
    expect(job.summary).toMatch(/^cannot pull the preflight image "x:pull-error" \((ErrImagePull|ImagePullBackOff)\)$/);
    expect(job.details?.[0]).toContain('init container "root-init-preflight" of pod oz-preflight-');
    expect(job.fix).toContain("preflight_image");
    expect(job.fix).toContain("imagePullSecrets");
    await expectNothingLeft(ns);
  });

  test("Ctrl-C while the preflight Job waits: exit 130 and the Job is deleted", async () => {
    const ns = await freshNamespace("pf-int");
    // No scheduler picks the pod up, so the check waits (up to --timeout) for its start.
    const file = configFile(ns, { extra: "pod_template:\n  schedulerName: no-such-scheduler" });
    const proc = Bun.spawn([...CLI, "preflight", "--config-file", file, "--timeout", "60s"], {
      cwd: REPO_ROOT,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    const out = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    try {
      await waitFor("the preflight Job", async () => ((await preflightObjects(ns, "jobs")).length > 0 ? true : undefined), { timeoutMs: 20_000 });
      const t0 = performance.now();
      proc.kill("SIGINT");
      const code = await Promise.race([proc.exited, Bun.sleep(15_000).then(() => "still running")]);
      expect(code).toBe(130);
      expect(performance.now() - t0).toBeLessThan(5_000);
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
    const [stdout, stderr] = await out;
    expect(stdout).toMatch(/✗ FAIL {2}preflight-job .*interrupted; the preflight Job oz-preflight-\S+ was deleted/);
    expect(stderr).toContain("interrupted");
    await expectNothingLeft(ns);
  });

  test("image-volume mode: passes once the pod ran with the preflight image mounted as an image volume", async () => {
    const ns = await freshNamespace("pf-imgvol");
    const run = await preflight(["--config-file", configFile(ns, { extra: "use_image_volumes: true" }), "--output", "json"]);
    expect(run.code).toBe(0);
    const checks = Object.fromEntries(parseJson(run).map((c) => [c.name, c]));
    expect(checks["dry-run"]?.summary).toContain("sidecars as image volumes");
    expect(checks["preflight-job"]?.summary).toContain("mounted as an image volume");
    await expectNothingLeft(ns);
  });

  test("fails for a namespace that does not exist, naming it and how to create it", async () => {
    const ns = `pf-missing-${crypto.randomUUID().slice(0, 8)}`;
    const run = await preflight(["--config-file", configFile(ns), "--output", "json"]);
    expect(run.code).toBe(1);
    const connection = parseJson(run)[0];
    expect(connection).toMatchObject({ name: "connection", status: "fail", summary: expect.stringContaining(`namespace "${ns}" does not exist`) });
    expect(connection?.fix).toContain(`kubectl create namespace ${ns}`);
  });

  test("`run` is gated by the same checks: a Role without delete on jobs stops it before it takes any task (exit 1); --skip-preflight warns", async () => {
    const ns = await freshNamespace("pf-gate");
    await grantRole(ns, "worker", [
      { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "patch"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      { apiGroups: [""], resources: ["events"], verbs: ["list"] },
      { apiGroups: [""], resources: ["secrets"], verbs: ["create", "get"] },
    ]);
    const file = configFile(ns, { kubeconfig: await serviceAccountKubeconfig(ns, "worker") });
    // Nothing listens at the Oz URL: a worker that got past preflight would keep retrying it.
    const runArgs = ["run", "--config-file", file, "--api-key", "gate-key", "--web-socket-url", "ws://127.0.0.1:1/ws", "--log-format", "json", "--health-addr", "127.0.0.1:0"];
    const gated = await runCommand([...CLI, ...runArgs], { timeoutMs: 60_000, env: { OTEL_METRICS_EXPORTER: "none" } });
    expect(gated.code).toBe(1);
    const lines = `${gated.stdout}${gated.stderr}`.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(lines.find((l) => l.msg.startsWith("preflight permissions:"))).toMatchObject({
      level: "error",
      msg: `preflight permissions: missing 1 of 13 permissions in namespace "${ns}": jobs delete (batch)`,
    });
    expect(lines.some((l) => l.msg.includes("Connected to Oz"))).toBe(false);
    await expectNothingLeft(ns);

    // Skipped on request: a warning, and the worker goes on to dial Oz (stopped here with SIGTERM).
    const skipped = Bun.spawn([...CLI, ...runArgs, "--skip-preflight", "--log-level", "debug"], { env: { ...process.env, OTEL_METRICS_EXPORTER: "none" }, stderr: "pipe", stdout: "pipe" });
    let err = "";
    const reader = (async () => {
      for await (const chunk of skipped.stderr) err += new TextDecoder().decode(chunk);
    })();
    await waitFor("the skip warning and a dial attempt", () => (err.includes("preflight skipped") && err.includes("oz connection") ? true : undefined), { timeoutMs: 20_000 });
    skipped.kill("SIGTERM");
    expect(await skipped.exited).toBe(0);
    await reader;
    expect(err).not.toContain("preflight permissions");
  });

  test("exit 3 when the API server is unreachable, exit 2 for a missing kubeconfig or bad usage", async () => {
    const ns = "pf-unreachable";
    const broken = join(tmp, "unreachable.kubeconfig");
    const admin = readFileSync(ADMIN_KUBECONFIG, "utf8");
    writeFileSync(broken, admin.replace(/server: https:\/\/127\.0\.0\.1:\d+/, "server: https://127.0.0.1:1"));
    const run = await preflight(["--config-file", configFile(ns, { kubeconfig: broken }), "--output", "json"]);
    expect(run.code).toBe(3);
    const checks = parseJson(run);
    expect(checks.map((c) => c.status)).toEqual(["fail", "skip", "skip", "skip"]);
    expect(checks[0]?.summary).toContain("https://127.0.0.1:1");

    const missing = await preflight(["--config-file", configFile(ns, { kubeconfig: join(tmp, "no-such.kubeconfig") }), "--output", "json"]);
    expect(missing.code).toBe(2);
    expect(parseJson(missing)[0]).toMatchObject({ name: "connection", status: "fail", summary: expect.stringContaining("no-such.kubeconfig") });

    const usage = await preflight(["--config-file", configFile("default"), "--timeout", "soon"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--timeout");
  });
});
