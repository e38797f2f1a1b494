// Test helpers for the sandbox cluster (scripts/sandbox, docs/sandbox.md):
// a real Kubernetes control plane with simulated nodes on 127.0.0.1.
//
//   const kubeconfig = await ensureSandbox();          // reuse or start it
//   const ns = await freshNamespace("jobs");            // in beforeAll
//   await kubectl("-n", ns.name, "create", "job", "j", "--image=busybox:1.36");
//   await waitFor(async () => jobCondition(...), { what: "job j Complete" });
//   await ns.cleanup();                                 // in afterAll
//
// Waits poll a condition with a deadline; nothing sleeps in place of one.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse } from "yaml";
import { waitFor, type WaitForOptions } from "./wait.ts";

// The shared wait helper (test/support/wait.ts), re-exported for the importers of this module.
export { waitFor, type WaitForOptions };

export const REPO_ROOT = resolve(import.meta.dir, "../..");
export const SANDBOX_SCRIPT = resolve(REPO_ROOT, "scripts/sandbox");
/** The admin (cluster-admin) kubeconfig that `scripts/sandbox up` writes (SANDBOX_DIR moves it). */
export const ADMIN_KUBECONFIG = resolve(process.env.SANDBOX_DIR ?? resolve(REPO_ROOT, ".sandbox"), "kubeconfig");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A command that exited non-zero (or timed out). */
export class CommandError extends Error {
  readonly argv: string[];
  readonly result: RunResult;
  constructor(
    argv: string[],
    result: RunResult,
  ) {
    super(`${argv.join(" ")} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    this.argv = argv;
    this.result = result;
    this.name = "CommandError";
  }
}

/** Runs a command; never throws for a non-zero exit (see `code`). */
export async function run(
  argv: string[],
  options: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const proc = Bun.spawn(argv, {
    cwd: REPO_ROOT,
    stdin: options.input === undefined ? "ignore" : new TextEncoder().encode(options.input),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 120_000);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

let sandboxUp: Promise<string> | undefined;

/**
 * Reuses the running sandbox or starts one (`scripts/sandbox up`, which builds
 * the components on first use: that can take many minutes once). Returns the
 * admin kubeconfig path. Memoised per process.
 */
export function ensureSandbox(): Promise<string> {
  sandboxUp ??= (async () => {
    const argv = [SANDBOX_SCRIPT, "up"];
    const result = await run(argv, { timeoutMs: 60 * 60_000 });
    if (result.code !== 0) {
      sandboxUp = undefined;
      throw new CommandError(argv, result);
    }
    const lines = result.stdout.trim().split("\n");
    return lines[lines.length - 1] ?? ADMIN_KUBECONFIG;
  })();
  return sandboxUp;
}

/** Runs the sandbox's kubectl as cluster-admin and returns stdout; throws on failure. */
export async function kubectl(...args: string[]): Promise<string> {
  const result = await kubectlResult(args);
  if (result.code !== 0) throw new CommandError(["kubectl", ...args], result);
  return result.stdout;
}

/** Like `kubectl`, but returns the whole result (exit code, stderr) instead of throwing. */
export function kubectlResult(args: string[], options: { input?: string; kubeconfig?: string } = {}): Promise<RunResult> {
  // scripts/sandbox kubectl uses the admin kubeconfig unless --kubeconfig is given
  const base = [SANDBOX_SCRIPT, "kubectl", ...(options.kubeconfig ? ["--kubeconfig", options.kubeconfig] : [])];
  return run([...base, ...args], { ...(options.input === undefined ? {} : { input: options.input }), timeoutMs: 60_000 });
}

/** `kubectl apply -f -` of objects (sent as a JSON List) or of manifest text (YAML or JSON); returns stdout. */
export async function kubectlApply(objects: object | object[] | string, ...args: string[]): Promise<string> {
  const body = typeof objects === "string" ? objects : JSON.stringify({ apiVersion: "v1", kind: "List", items: Array.isArray(objects) ? objects : [objects] });
  const result = await kubectlResult(["apply", "-f", "-", ...args], { input: body });
  if (result.code !== 0) throw new CommandError(["kubectl", "apply", ...args], result);
  return result.stdout;
}

/** `kubectl get ... -o json`, parsed; undefined when the object does not exist. */
export async function getJson(...args: string[]): Promise<any | undefined> {
  const result = await kubectlResult(["get", ...args, "-o", "json"]);
  if (result.code !== 0) {
    if (/NotFound|not found/.test(result.stderr)) return undefined;
    throw new CommandError(["kubectl", "get", ...args], result);
  }
  return JSON.parse(result.stdout);
}

interface AdminTls {
  server: string;
  tls: { ca: string; cert: string; key: string };
}
let adminTls: { path: string; value: AdminTls } | undefined;

function readAdminTls(): AdminTls {
  if (adminTls?.path === ADMIN_KUBECONFIG) return adminTls.value;
  const doc = parse(readFileSync(ADMIN_KUBECONFIG, "utf8"));
  const b64 = (s: string) => Buffer.from(s, "base64").toString("utf8");
  const value = {
    server: doc.clusters[0].cluster.server as string,
    tls: {
      ca: b64(doc.clusters[0].cluster["certificate-authority-data"]),
      cert: b64(doc.users[0].user["client-certificate-data"]),
      key: b64(doc.users[0].user["client-key-data"]),
    },
  };
  adminTls = { path: ADMIN_KUBECONFIG, value };
  return value;
}

/** fetch() against the sandbox apiserver as cluster-admin; `path` like "/api/v1/namespaces". */
export function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const { server, tls } = readAdminTls();
  const headers = new Headers(init.headers);
  if (init.body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  return fetch(server + path, { ...init, headers, tls } as RequestInit);
}

/**
 * Watches a collection (e.g. "/api/v1/namespaces/ns/pods") as cluster-admin
 * and calls `onEvent` for each event. Resolves once the watch is established,
 * so objects created afterwards are all seen. Call `stop()` when done.
 */
export async function watchPath(
  path: string,
  onEvent: (type: string, object: any) => void,
): Promise<{ stop(): void }> {
  const controller = new AbortController();
  const sep = path.includes("?") ? "&" : "?";
  const res = await apiFetch(`${path}${sep}watch=true`, { signal: controller.signal });
  if (!res.ok || !res.body) throw new Error(`watch ${path}: HTTP ${res.status} ${await res.text()}`);
  const body = res.body;
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line) {
            const event = JSON.parse(line);
            onEvent(event.type, event.object);
          }
        }
      }
    } catch {
      // aborted by stop()
    }
  })();
  return { stop: () => controller.abort() };
}

/**
 * A kubeconfig that authenticates as ServiceAccount `serviceAccount` in
 * `namespace` (created if needed) with a token: it has exactly the
 * permissions that Roles grant it. Returns the file's path.
 */
export async function serviceAccountKubeconfig(namespace: string, serviceAccount: string): Promise<string> {
  const argv = [SANDBOX_SCRIPT, "kubeconfig", "--namespace", namespace, "--service-account", serviceAccount];
  const result = await run(argv);
  if (result.code !== 0) throw new CommandError(argv, result);
  return result.stdout.trim().split("\n").pop() ?? "";
}

/**
 * Grants ServiceAccount `serviceAccount` of `namespace` the `rules`: applies a Role
 * and a RoleBinding to it, both named `name` (by default the ServiceAccount's).
 */
export async function grantRole(namespace: string, serviceAccount: string, rules: object[], name = serviceAccount): Promise<void> {
  const metadata = { name, namespace };
  await kubectlApply([
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata, rules },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata,
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace }],
    },
  ]);
}

export interface Namespace {
  name: string;
  /** Deletes the namespace (and everything in it); waits until it is gone when `wait` is set. */
  cleanup(options?: { wait?: boolean }): Promise<void>;
}

/**
 * Creates a namespace named `<prefix>-<random>` (with optional labels), for
 * one test file. Call `cleanup()` in afterAll.
 */
export async function freshNamespace(prefix: string, labels: Record<string, string> = {}): Promise<Namespace> {
  await ensureSandbox();
  const suffix = Math.random().toString(36).slice(2, 8);
  const name = `${prefix.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 40)}-${suffix}`;
  await kubectlApply({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
  await waitFor(async () => (await getJson("serviceaccount", "default", "-n", name)) !== undefined, {
    what: `the default ServiceAccount of namespace ${name}`,
    timeoutMs: 30_000,
  });
  return {
    name,
    async cleanup(options = {}) {
      await kubectlResult(["delete", "namespace", name, "--wait=false", "--ignore-not-found"]);
      if (options.wait) {
        await waitFor(async () => (await getJson("namespace", name)) === undefined, {
          what: `namespace ${name} to be deleted`,
          timeoutMs: 60_000,
        });
      }
    },
  };
}

/** The sandbox's etcd client URL (plain HTTP on loopback; SANDBOX_PORT_BASE moves it). */
export const ETCD_URL = `http://127.0.0.1:${Number(process.env.SANDBOX_PORT_BASE ?? 26000) + 379}`;

/**
 * Makes every resourceVersion up to now unservable, as a long-running cluster does: etcd is
 * compacted to its current revision and the API server restarted, so its watch cache starts
 * after that revision too (a fresh cache would still serve old resourceVersions from memory).
 * A watch resumed from an older resourceVersion then gets 410 Gone.
 */
export async function expireResourceVersions(): Promise<void> {
  await compactEtcd();
  for (const args of [["stop-apiserver", "--kill"], ["start-apiserver"]]) {
    const argv = [SANDBOX_SCRIPT, ...args];
    const result = await run(argv, { timeoutMs: 180_000 });
    if (result.code !== 0) throw new CommandError(argv, result);
  }
}

/**
 * Compacts etcd up to its current revision, as the API server does every five minutes: every
 * older resourceVersion is then gone for real, so a watch resumed from one gets 410 Gone
 * whatever the age of the sandbox. Returns the revision compacted to.
 */
export async function compactEtcd(): Promise<number> {
  const post = async (path: string, body: object) => {
    const res = await fetch(`${ETCD_URL}${path}`, { method: "POST", body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as { header?: { revision?: string } };
  };
  // Any read answers with the current revision in its header.
  const { header } = await post("/v3/kv/range", { key: btoa("/") });
  const revision = Number(header?.revision);
  if (!Number.isFinite(revision) || revision < 1) throw new Error(`etcd gave no revision: ${JSON.stringify(header)}`);
  await post("/v3/kv/compaction", { revision: String(revision), physical: true });
  return revision;
}
