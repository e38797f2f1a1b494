// Kubeconfig features behave as kubectl's do with the same kubeconfig, against the sandbox's
// API server: `proxy-url` (through an HTTP CONNECT proxy started here on loopback), a KUBECONFIG
// list of several files (merged as kubectl merges them), and `exec` credential plugins (run
// within the request's deadline, their stderr passed through, one run for concurrent
// requests, a token without expiry refreshed after a 401). The sandbox's kubectl is run with
// each kubeconfig first, so each test shows what kubectl does and that oz-worker does the same.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { loadKubeClient } from "../../src/kube/client.ts";
import { KubeconfigError } from "../../src/kube/kubeconfig.ts";
import { runtimes } from "../support/runtimes.ts";
import { freshNamespace, type Namespace, run, serviceAccountKubeconfig } from "../support/sandbox.ts";

const TEST_TIMEOUT_MS = 120_000;
const tmp = mkdtempSync(join(tmpdir(), "oz-kubeconfig-e2e-"));
let ns: Namespace;
/** The ServiceAccount's identity and the sandbox's cluster entry. */
let saUser = "";
let saToken = "";
let cluster: { server: string; "certificate-authority-data": string };
let fileCounter = 0;

interface KubeconfigSpec {
  proxyUrl?: string;
  server?: string;
  user?: Record<string, unknown>;
  userName?: string;
  currentContext?: string | null;
  namespace?: string;
}

/** Writes a kubeconfig for the sandbox cluster; returns its path. */
function writeKubeconfig(spec: KubeconfigSpec = {}): string {
  const file = join(tmp, `kubeconfig-${fileCounter++}.yaml`);
  const doc: Record<string, unknown> = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "sandbox", cluster: { ...cluster, ...(spec.server ? { server: spec.server } : {}), ...(spec.proxyUrl ? { "proxy-url": spec.proxyUrl } : {}) } }],
    users: [{ name: spec.userName ?? "u", user: spec.user ?? { token: saToken } }],
    contexts: [{ name: "c", context: { cluster: "sandbox", user: spec.userName ?? "u", ...(spec.namespace ? { namespace: spec.namespace } : {}) } }],
  };
  if (spec.currentContext !== null) doc["current-context"] = spec.currentContext ?? "c";
  writeFileSync(file, YAML.stringify(doc));
  return file;
}

/** Who the API server says the kubeconfig's credentials are (a SelfSubjectReview), through oz-worker's client. */
async function whoAmI(client: ReturnType<typeof loadKubeClient>): Promise<string> {
  const res = await client.fetch("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
    method: "POST" as never,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" }),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`SelfSubjectReview answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { status: { userInfo: { username: string } } }).status.userInfo.username;
}

/** kubectl auth whoami with `kubeconfig` (or, with `env.KUBECONFIG`, the default loading rules). */
async function kubectlWhoAmI(kubeconfig: string | undefined, env: Record<string, string> = {}) {
  const argv = ["scripts/sandbox", "kubectl", kubeconfig ? `--kubeconfig=${kubeconfig}` : "--kubeconfig=", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"];
  return run(argv, { env, timeoutMs: 60_000 });
}

// ---------------------------------------------------------------------------
// An HTTP CONNECT proxy on loopback that records the targets it tunnelled to.

interface Proxy {
  url: string;
  targets: string[];
  close(): void;
}

async function startConnectProxy(): Promise<Proxy> {
  const targets: string[] = [];
  const server: Server = createServer((client) => {
    let head = "";
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      const m = /^CONNECT (127\.0\.0\.1|localhost):(\d+) HTTP\/1\.[01]\r\n/.exec(head);
      if (!m) {
        client.end("HTTP/1.1 403 Forbidden\r\n\r\n");
        return;
      }
      targets.push(`${m[1]}:${m[2]}`);
      const upstream = netConnect(Number(m[2]), "127.0.0.1", () => {
        client.write("HTTP/1.1 200 Connection established\r\n\r\n");
        const rest = Buffer.from(head.slice(end + 4), "latin1");
        if (rest.length) upstream.write(rest);
        client.pipe(upstream).pipe(client);
      });
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, targets, close: () => server.close() };
}

let proxy: Proxy;

beforeAll(async () => {
  ns = await freshNamespace("kc-parity");
  const saKubeconfig = await serviceAccountKubeconfig(ns.name, "kc-user");
  const doc = YAML.parse(readFileSync(saKubeconfig, "utf8")) as { clusters: { cluster: typeof cluster }[]; users: { user: { token: string } }[] };
  cluster = { server: doc.clusters[0]!.cluster.server, "certificate-authority-data": doc.clusters[0]!.cluster["certificate-authority-data"] };
  saToken = doc.users[0]!.user.token;
  saUser = `system:serviceaccount:${ns.name}:kc-user`;
  proxy = await startConnectProxy();
}, 40 * 60_000);

afterAll(async () => {
  proxy?.close();
  await ns?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

const apiHostPort = () => new URL(cluster.server).host;

describe("proxy-url", () => {
  test("an HTTP CONNECT proxy: kubectl and oz-worker both tunnel to the API server through it", async () => {
    const kubeconfig = writeKubeconfig({ proxyUrl: proxy.url });
    const before = proxy.targets.length;
    const viaKubectl = await kubectlWhoAmI(kubeconfig);
    expect(viaKubectl.stdout).toBe(saUser);
    const afterKubectl = proxy.targets.length;
    expect(afterKubectl).toBeGreaterThan(before);

    const client = loadKubeClient({ kubeconfig });
    expect(await whoAmI(client)).toBe(saUser);
    await client.checkReachable();
    expect(proxy.targets.length).toBeGreaterThan(afterKubectl);
    expect(new Set(proxy.targets)).toEqual(new Set([apiHostPort()]));
  }, TEST_TIMEOUT_MS);

  test("an HTTP CONNECT proxy under every runtime: preflight's connection check passes through it", async () => {
    const kubeconfig = writeKubeconfig({ proxyUrl: proxy.url });
    const config = join(tmp, "proxy-config.yaml");
    writeFileSync(config, YAML.stringify({ worker_id: "kc-parity", backend: { kubernetes: { kubeconfig, namespace: ns.name } } }));
    for (const rt of runtimes()) {
      const before = proxy.targets.length;
      const out = await run([...rt.argv, "preflight", "--config-file", config], { env: { NO_COLOR: "1" }, timeoutMs: 90_000 });
      expect({ runtime: rt.name, connection: out.stdout.split("\n")[0]?.slice(0, 18) }).toEqual({ runtime: rt.name, connection: "✓ PASS  connection" });
      expect({ runtime: rt.name, tunnelled: proxy.targets.length > before }).toEqual({ runtime: rt.name, tunnelled: true });
    }
  }, TEST_TIMEOUT_MS);

  test("a SOCKS proxy-url under Bun is refused at load, naming the cluster and what to use instead", () => {
    const kubeconfig = writeKubeconfig({ proxyUrl: "socks5://127.0.0.1:1080" });
    let err: unknown;
    try {
      loadKubeClient({ kubeconfig });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KubeconfigError);
    expect((err as Error).message).toContain("cluster sandbox: proxy-url socks5://127.0.0.1:1080 is a SOCKS proxy");
    expect((err as Error).message).toContain("use an HTTP proxy, or run oz-worker on Node or Deno");
  });
});

describe("KUBECONFIG with several files", () => {
  test("a user in two files and no current-context in the first: merged as kubectl merges (first wins, first current-context)", async () => {
    // First file: the good token, no current-context. Second: the same names with a bad token,
    // an unreachable server, a namespace, and the current-context.
    const first = writeKubeconfig({ currentContext: null });
    const second = writeKubeconfig({ user: { token: "not-a-valid-token" }, server: "https://127.0.0.1:1", currentContext: "c" });
    const KUBECONFIG = `${first}:${join(tmp, "missing.yaml")}:${second}`;

    const viaKubectl = await kubectlWhoAmI(undefined, { KUBECONFIG });
    expect({ code: viaKubectl.code, user: viaKubectl.stdout }).toEqual({ code: 0, user: saUser });

    const client = loadKubeClient({ env: { KUBECONFIG } });
    expect({ context: client.context, server: client.server }).toEqual({ context: "c", server: cluster.server });
    expect(await whoAmI(client)).toBe(saUser);
  }, TEST_TIMEOUT_MS);
});

describe("exec credential plugins", () => {
  /**
   * A plugin that counts its runs in `<dir>/runs`, prints its PLUGIN_PROMPT to stderr, sleeps
   * PLUGIN_SLEEP seconds (or becomes `sleep PLUGIN_HANG`, never answering), and returns the n-th line of `<dir>/tokens` (the last one after that),
   * without an expirationTimestamp.
   */
  function plugin(tokens: string[]): { dir: string; command: string; runs: () => number } {
    const dir = mkdtempSync(join(tmp, "plugin-"));
    const command = join(dir, "plugin.sh");
    writeFileSync(join(dir, "tokens"), `${tokens.join("\n")}\n`);
    writeFileSync(
      command,
      [
        "#!/bin/sh",
        'dir="$(dirname "$0")"',
        'echo run >> "$dir/runs"',
        'n=$(wc -l < "$dir/runs")',
        '[ -n "$PLUGIN_PROMPT" ] && echo "$PLUGIN_PROMPT" >&2',
        '[ -n "$PLUGIN_HANG" ] && exec sleep "$PLUGIN_HANG"',
        '[ -n "$PLUGIN_SLEEP" ] && sleep "$PLUGIN_SLEEP"',
        'token=$(sed -n "${n}p" "$dir/tokens"); [ -n "$token" ] || token=$(tail -n 1 "$dir/tokens")',
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}\\n\' "$token"',
        "",
      ].join("\n"),
    );
    chmodSync(command, 0o755);
    const runs = () => {
      try {
        return readFileSync(join(dir, "runs"), "utf8").split("\n").filter(Boolean).length;
      } catch {
        return 0;
      }
    };
    return { dir, command, runs };
  }

  const execUser = (command: string, env: Record<string, string> = {}) => ({
    exec: {
      apiVersion: "client.authentication.k8s.io/v1",
      command,
      interactiveMode: "IfAvailable",
      env: Object.entries(env).map(([name, value]) => ({ name, value })),
    },
  });

  test("its stderr reaches the user (a login prompt) on every runtime, as with kubectl", async () => {
    const p = plugin([saToken]);
    const prompt = "open https://login.example.com/device and enter code WXYZ-1234";
    const kubeconfig = writeKubeconfig({ user: execUser(p.command, { PLUGIN_PROMPT: prompt }) });
    const viaKubectl = await kubectlWhoAmI(kubeconfig);
    expect(viaKubectl.stdout).toBe(saUser);
    expect(viaKubectl.stderr).toContain(prompt);

    const config = join(tmp, "exec-config.yaml");
    writeFileSync(config, YAML.stringify({ worker_id: "kc-parity", backend: { kubernetes: { kubeconfig, namespace: ns.name } } }));
    for (const rt of runtimes()) {
      const out = await run([...rt.argv, "preflight", "--config-file", config], { env: { NO_COLOR: "1" }, timeoutMs: 90_000 });
      expect({ runtime: rt.name, authenticated: out.stdout.includes(`as ${saUser}`), prompted: out.stderr.includes(prompt) }).toEqual({
        runtime: rt.name,
        authenticated: true,
        prompted: true,
      });
    }
  }, TEST_TIMEOUT_MS);

  test("a plugin that waits (a browser login) is bounded by the request deadline: preflight --timeout 5s ends at 5 s", async () => {
    const p = plugin([saToken]);
    const kubeconfig = writeKubeconfig({ user: execUser(p.command, { PLUGIN_HANG: "60" }) });
    const config = join(tmp, "exec-slow.yaml");
    writeFileSync(config, YAML.stringify({ worker_id: "kc-parity", backend: { kubernetes: { kubeconfig, namespace: ns.name } } }));
    const [bun] = runtimes();
    const t0 = performance.now();
    const out = await run([...bun!.argv, "preflight", "--timeout", "5s", "--config-file", config], { env: { NO_COLOR: "1" }, timeoutMs: 90_000 });
    const ms = performance.now() - t0;
    expect(out.code).toBe(3);
    expect(out.stdout).toContain("no answer within 5s");
    // Far from the plugin's 60 s.
    expect(ms).toBeLessThan(40_000);
  }, TEST_TIMEOUT_MS);

  test("five concurrent requests run the plugin once", async () => {
    const p = plugin([saToken]);
    const client = loadKubeClient({ kubeconfig: writeKubeconfig({ user: execUser(p.command, { PLUGIN_SLEEP: "1" }) }) });
    const users = await Promise.all(Array.from({ length: 5 }, () => whoAmI(client)));
    expect(users).toEqual(Array.from({ length: 5 }, () => saUser));
    expect(p.runs()).toBe(1);
  }, TEST_TIMEOUT_MS);

  test("a token without expirationTimestamp that the API server refuses (401) is refreshed: the plugin runs again and the request succeeds", async () => {
    // First run: a token the API server rejects; second run: the valid one.
    const p = plugin(["revoked-token", saToken]);
    const kubeconfig = writeKubeconfig({ user: execUser(p.command) });
    // kubectl (client-go) runs the plugin again on the 401 but still fails that request; the
    // next kubectl gets a fresh token. oz-worker also retries the refused request once.
    const first = await kubectlWhoAmI(kubeconfig);
    expect({ code: first.code, runs: p.runs() }).toEqual({ code: 1, runs: 2 });
    expect((await kubectlWhoAmI(kubeconfig)).stdout).toBe(saUser);

    const q = plugin(["revoked-token", saToken]);
    const client = loadKubeClient({ kubeconfig: writeKubeconfig({ user: execUser(q.command) }) });
    expect(await whoAmI(client)).toBe(saUser);
    expect(q.runs()).toBe(2);
    // The good token is kept: no further runs.
    expect(await whoAmI(client)).toBe(saUser);
    expect(q.runs()).toBe(2);
  }, TEST_TIMEOUT_MS);
});
