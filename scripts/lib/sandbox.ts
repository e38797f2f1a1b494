// The sandbox cluster from the scripts' side: status/up/down through
// scripts/sandbox (the contract in docs/sandbox.md), a worker namespace with
// the worker's Role and a ServiceAccount kubeconfig, and a dedicated
// kube-apiserver for measuring one client's requests.
import { existsSync, mkdirSync, openSync, readFileSync, readlinkSync, writeFileSync, closeSync } from "node:fs";
import { join, resolve } from "node:path";
import { Kube, nowMs } from "./kube.ts";

export const REPO = resolve(import.meta.dir, "../..");
export const SANDBOX = join(REPO, "scripts/sandbox");
/**
 * The admin kubeconfig the sandbox contract promises. SANDBOX_DIR (with
 * SANDBOX_PORT_BASE) selects a second, independent sandbox, as for scripts/sandbox.
 */
export const ADMIN_KUBECONFIG = join(process.env.SANDBOX_DIR || join(REPO, ".sandbox"), "kubeconfig");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, capturing its output. */
export async function run(argv: string[], opts: { input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  const proc = Bun.spawn(argv, {
    cwd: opts.cwd ?? REPO,
    stdin: opts.input === undefined ? "ignore" : new TextEncoder().encode(opts.input),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Runs a command with its output shown as it comes (progress of long builds), stdout on our stderr. */
export async function runShown(argv: string[]): Promise<number> {
  const proc = Bun.spawn(argv, { cwd: REPO, stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  for await (const chunk of proc.stdout) process.stderr.write(chunk);
  return proc.exited;
}

export async function sandboxRunning(): Promise<boolean> {
  if (!existsSync(SANDBOX)) return false;
  return (await run([SANDBOX, "status"], { timeoutMs: 30_000 })).code === 0;
}

/**
 * `scripts/sandbox up` with its progress on our stderr. `started` is whether
 * this call brought the sandbox up (it prints "ready in N s" then), rather than
 * finding it healthy, possibly after waiting for someone else's `up`.
 */
export async function sandboxUp(): Promise<{ kubeconfig: string; started: boolean }> {
  if (!existsSync(SANDBOX)) throw new Error(`${SANDBOX} not found`);
  const proc = Bun.spawn([SANDBOX, "up"], { cwd: REPO, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let started = false;
  const relay = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) {
      const text = decoder.decode(chunk, { stream: true });
      if (/sandbox: ready in /.test(text)) started = true;
      process.stderr.write(text);
    }
  })();
  const stdout = await new Response(proc.stdout).text();
  const code = await proc.exited;
  await relay;
  if (code !== 0) throw new Error(`scripts/sandbox up failed (exit ${code}); see its messages above`);
  return { kubeconfig: stdout.trim().split("\n").pop() || ADMIN_KUBECONFIG, started };
}

export async function sandboxDown(): Promise<void> {
  await run([SANDBOX, "down"], { timeoutMs: 120_000 });
}

export async function kubectl(args: string[], input?: string): Promise<RunResult> {
  return run([SANDBOX, "kubectl", ...args], input === undefined ? {} : { input });
}

/** The permissions the worker's namespace Role grants (the chart's Role plus patch and secrets). */
export const WORKER_RULES = [
  { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "delete", "patch"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
  { apiGroups: [""], resources: ["events"], verbs: ["list"] },
  { apiGroups: [""], resources: ["secrets"], verbs: ["create", "get"] },
] as const;

/** The resources of WORKER_RULES as apiserver metric labels (`resource[/subresource]`). */
export const WORKER_RESOURCES: ReadonlySet<string> = new Set(WORKER_RULES.flatMap((r) => r.resources));

/**
 * Creates `namespace` (labelled), a ServiceAccount bound to the worker's Role
 * in it, and returns the path of a kubeconfig that authenticates as that
 * ServiceAccount (from `scripts/sandbox kubeconfig`).
 */
export async function createWorkerNamespace(kube: Kube, namespace: string, serviceAccount: string, labels: Record<string, string>): Promise<string> {
  await kube.json("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace, labels } } });
  const ns = `/namespaces/${namespace}`;
  await kube.json("POST", `/api/v1${ns}/serviceaccounts`, { body: { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: serviceAccount } } });
  await kube.json("POST", `/apis/rbac.authorization.k8s.io/v1${ns}/roles`, {
    body: { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "oz-worker" }, rules: WORKER_RULES },
  });
  await kube.json("POST", `/apis/rbac.authorization.k8s.io/v1${ns}/rolebindings`, {
    body: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "oz-worker" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "oz-worker" },
      subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace }],
    },
  });
  const res = await run([SANDBOX, "kubeconfig", "--namespace", namespace, "--service-account", serviceAccount]);
  if (res.code !== 0) throw new Error(`scripts/sandbox kubeconfig failed: ${res.stderr.trim()}`);
  return res.stdout.trim().split("\n").pop()!;
}

/** Deletes a namespace without waiting for its finalization. */
export async function deleteNamespace(kube: Kube, namespace: string): Promise<void> {
  await kube.json("DELETE", `/api/v1/namespaces/${namespace}`, { okStatuses: [404], timeoutMs: 10_000 }).catch(() => {});
}

/** The pid of the sandbox's kube-apiserver, from `scripts/sandbox status`. */
export async function apiserverPid(): Promise<number | undefined> {
  const res = await run([SANDBOX, "status"], { timeoutMs: 30_000 });
  const line = res.stdout.split("\n").find((l) => /^apiserver\s/.test(l));
  const pid = Number(line?.trim().split(/\s+/)[1]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Rewrites a kube-apiserver command line for a second instance: another
 * secure port, no identity lease (two instances on one host would fight over
 * it), and an audit log of every request but the apiserver's own.
 */
export function dedicatedApiserverArgs(argv: readonly string[], port: number, auditPolicy: string, auditLog: string): string[] {
  const out: string[] = [];
  let gates: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const takesValue = (name: string) => flag === name;
    if (takesValue("--secure-port") || takesValue("--feature-gates") || takesValue("--audit-log-path") || takesValue("--audit-policy-file")) {
      const value = inline ?? argv[++i] ?? "";
      if (flag === "--feature-gates") gates = value;
      continue;
    }
    out.push(a);
  }
  out.push("--secure-port", String(port));
  out.push(`--feature-gates=${gates ? `${gates},` : ""}APIServerIdentity=false`);
  out.push("--audit-policy-file", auditPolicy, "--audit-log-path", auditLog, "--audit-log-maxsize", "0");
  return out;
}

export const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:apiserver"]
- level: None
  nonResourceURLs: ["/metrics", "/readyz", "/livez", "/healthz"]
- level: Metadata
`;

export interface DedicatedApiserver {
  url: string;
  port: number;
  pid: number;
  auditLog: string;
  logFile: string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/**
 * Starts a second kube-apiserver on the sandbox's etcd, certificates and
 * flags, so that one client (the worker) can be pointed at it alone: its
 * /metrics and audit log then describe that client's traffic only.
 */
export async function startDedicatedApiserver(dir: string, admin: Kube): Promise<DedicatedApiserver> {
  const pid = await apiserverPid();
  if (pid === undefined) throw new Error("cannot find the sandbox kube-apiserver pid in `scripts/sandbox status`");
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "");
  const exe = readlinkSync(`/proc/${pid}/exe`);
  mkdirSync(dir, { recursive: true });
  const policy = join(dir, "audit-policy.yaml");
  const auditLog = join(dir, "audit.log");
  const logFile = join(dir, "kube-apiserver.log");
  writeFileSync(policy, AUDIT_POLICY);
  writeFileSync(auditLog, "");
  const port = freePort();
  const args = dedicatedApiserverArgs(argv.slice(1), port, policy, auditLog);
  const fd = openSync(logFile, "a");
  const proc = Bun.spawn([exe, ...args], { stdin: "ignore", stdout: fd, stderr: fd });
  closeSync(fd);
  const url = `https://127.0.0.1:${port}`;
  const kube = admin.withServer(url);
  const deadline = nowMs() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the dedicated kube-apiserver exited with code ${proc.exitCode}; log: ${logFile}`);
    const ready = await kube
      .raw("GET", "/readyz", { timeoutMs: 2_000 })
      .then(async (r) => r.ok && (await r.text()).trim() === "ok")
      .catch(() => false);
    if (ready) break;
    if (nowMs() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`the dedicated kube-apiserver was not ready within 60 s; log: ${logFile}`);
    }
    await Bun.sleep(200);
  }
  return {
    url,
    port,
    pid: proc.pid,
    auditLog,
    logFile,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(15_000).then(() => false)]);
      if (!exited) proc.kill("SIGKILL");
    },
  };
}

/** A copy of `kubeconfig` whose clusters point at `server`. */
export function retargetKubeconfig(kubeconfig: string, server: string, out: string): string {
  const text = readFileSync(kubeconfig, "utf8").replace(/^(\s*server:\s*).*$/gm, `$1${server}`);
  writeFileSync(out, text, { mode: 0o600 });
  return out;
}
