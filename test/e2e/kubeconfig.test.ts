// Kubeconfig features behave as kubectl's do with the same kubeconfig, against the sandbox's
// API server: `proxy-url` (through an HTTP CONNECT or SOCKS5 proxy started here on loopback), a
// KUBECONFIG list of several files (merged as kubectl merges them), `exec` credential plugins
// (run within the request's deadline, their stderr passed through, one run for concurrent
// requests, a token without expiry refreshed after a 401), certificate, key and token files
// relative to the kubeconfig, impersonation, tls-server-name, insecure-skip-tls-verify, an oidc
// auth-provider's id-token, and the in-cluster ServiceAccount. The sandbox's kubectl is run
// with each kubeconfig first, so each test shows what kubectl does and that oz-worker does the same.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { loadKubeClient } from "../../src/kube/client.ts";
import { KubeconfigError } from "../../src/kube/kubeconfig.ts";
import { runtimes } from "../support/runtimes.ts";
import { ensureSandbox, freshNamespace, type Namespace, run, serviceAccountKubeconfig } from "../support/sandbox.ts";

const TEST_TIMEOUT_MS = 120_000;
const tmp = mkdtempSync(join(tmpdir(), "oz-kubeconfig-e2e-"));
let ns: Namespace;
/** The ServiceAccount's identity and the sandbox's cluster entry. */
let saUser = "";
let saToken = "";
let cluster: { server: string; "certificate-authority-data": string };
/** The sandbox admin's client certificate and key (PEM), and who the API server says it is. */
let admin: { cert: string; key: string; user: string };
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
  return (await userInfo(client)).username;
}

async function userInfo(client: ReturnType<typeof loadKubeClient>): Promise<{ username: string; groups: string[] }> {
  const res = await client.fetch("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
    method: "POST" as never,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" }),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`SelfSubjectReview answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { status: { userInfo: { username: string; groups: string[] } } }).status.userInfo;
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
      tunnel(client, Number(m[2]), "HTTP/1.1 200 Connection established\r\n\r\n", Buffer.from(head.slice(end + 4), "latin1"));
    };
    client.on("data", onData);
  });
  return { url: `http://127.0.0.1:${await listenOnLoopback(server)}`, targets, close: () => server.close() };
}

/** Answers `reply` once connected to 127.0.0.1:port, forwards what the client sent beyond its request, then pipes both ways. */
function tunnel(client: Socket, port: number, reply: string | Buffer, rest: Buffer): void {
  const upstream = netConnect(port, "127.0.0.1", () => {
    client.write(reply);
    if (rest.length) upstream.write(rest);
    client.pipe(upstream).pipe(client);
  });
  upstream.on("error", () => client.destroy());
  client.on("error", () => upstream.destroy());
}

/** Listens on a free loopback port; returns the port. */
async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

/** A SOCKS5 proxy (no authentication, CONNECT only) on loopback that records the targets it tunnelled to. */
async function startSocks5Proxy(): Promise<Proxy> {
  const targets: string[] = [];
  const server: Server = createServer((client) => {
    let buf = Buffer.alloc(0);
    let greeted = false;
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!greeted) {
        // VER NMETHODS METHODS…: answer "no authentication".
        if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
        buf = buf.subarray(2 + buf[1]!);
        greeted = true;
        client.write(Buffer.from([5, 0]));
      }
      // VER CMD RSV ATYP ADDR PORT: CONNECT to an IPv4 address or a domain name.
      if (buf.length < 5) return;
      const atyp = buf[3]!;
      const addrLen = atyp === 1 ? 4 : atyp === 3 ? 1 + buf[4]! : 16;
      if (buf.length < 4 + addrLen + 2) return;
      client.off("data", onData);
      const host = atyp === 1 ? [...buf.subarray(4, 8)].join(".") : atyp === 3 ? buf.subarray(5, 5 + buf[4]!).toString("latin1") : "";
      const port = buf.readUInt16BE(4 + addrLen);
      const rest = buf.subarray(4 + addrLen + 2);
      if (buf[1] !== 1 || !["127.0.0.1", "localhost"].includes(host)) {
        client.end(Buffer.from([5, 2, 0, 1, 0, 0, 0, 0, 0, 0]));
        return;
      }
      targets.push(`${host}:${port}`);
      tunnel(client, port, Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]), rest);
    };
    client.on("data", onData);
  });
  return { url: `socks5://127.0.0.1:${await listenOnLoopback(server)}`, targets, close: () => server.close() };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

let proxy: Proxy;
let socks: Proxy;

beforeAll(async () => {
  ns = await freshNamespace("kc-parity");
  const saKubeconfig = await serviceAccountKubeconfig(ns.name, "kc-user");
  const doc = YAML.parse(readFileSync(saKubeconfig, "utf8")) as { clusters: { cluster: typeof cluster }[]; users: { user: { token: string } }[] };
  cluster = { server: doc.clusters[0]!.cluster.server, "certificate-authority-data": doc.clusters[0]!.cluster["certificate-authority-data"] };
  saToken = doc.users[0]!.user.token;
  saUser = `system:serviceaccount:${ns.name}:kc-user`;
  const adminDoc = YAML.parse(readFileSync(await ensureSandbox(), "utf8")) as { users: { user: Record<string, string> }[] };
  const pem = (field: string) => Buffer.from(adminDoc.users[0]!.user[field]!, "base64").toString("utf8");
  admin = { cert: pem("client-certificate-data"), key: pem("client-key-data"), user: "" };
  admin.user = (await kubectlWhoAmI(writeKubeconfig({ user: { "client-certificate-data": b64(admin.cert), "client-key-data": b64(admin.key) } }))).stdout;
  proxy = await startConnectProxy();
  socks = await startSocks5Proxy();
}, 40 * 60_000);

afterAll(async () => {
  proxy?.close();
  socks?.close();
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

  test("a SOCKS5 proxy under Node and Deno: preflight's connection check passes through it", async () => {
    const kubeconfig = writeKubeconfig({ proxyUrl: socks.url });
    const config = join(tmp, "socks-config.yaml");
    writeFileSync(config, YAML.stringify({ worker_id: "kc-parity", backend: { kubernetes: { kubeconfig, namespace: ns.name } } }));
    for (const rt of runtimes().filter((r) => r.name !== "bun")) {
      const before = socks.targets.length;
      const out = await run([...rt.argv, "preflight", "--config-file", config], { env: { NO_COLOR: "1" }, timeoutMs: 90_000 });
      expect({ runtime: rt.name, connection: out.stdout.split("\n")[0]?.slice(0, 18), as: out.stdout.includes(`as ${saUser}`) }).toEqual({
        runtime: rt.name,
        connection: "✓ PASS  connection",
        as: true,
      });
      expect({ runtime: rt.name, tunnelled: socks.targets.slice(before) }).toEqual({ runtime: rt.name, tunnelled: expect.arrayContaining([apiHostPort()]) });
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

describe("files relative to the kubeconfig, TLS settings and impersonation", () => {
  /** A kubeconfig in a directory of its own, with `files` beside it; kubectl and the tests run elsewhere (the repository). */
  function kubeconfigDir(files: Record<string, string>, spec: KubeconfigSpec & { clusterFields?: Record<string, unknown> }): string {
    const dir = mkdtempSync(join(tmp, "dir-"));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    const file = join(dir, "config");
    writeFileSync(
      file,
      YAML.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "sandbox", cluster: { server: spec.server ?? cluster.server, ...spec.clusterFields } }],
        users: [{ name: "u", user: spec.user ?? {} }],
        contexts: [{ name: "c", context: { cluster: "sandbox", user: "u" } }],
        "current-context": "c",
      }),
    );
    return file;
  }
  const ca = () => Buffer.from(cluster["certificate-authority-data"], "base64").toString("utf8");

  test("relative certificate-authority, client-certificate and client-key files: kubectl and oz-worker both authenticate as the admin", async () => {
    const kubeconfig = kubeconfigDir(
      { "ca.crt": ca(), "certs/admin.crt": admin.cert, "certs/admin.key": admin.key },
      { user: { "client-certificate": "certs/admin.crt", "client-key": "certs/admin.key" }, clusterFields: { "certificate-authority": "ca.crt" } },
    );
    expect((await kubectlWhoAmI(kubeconfig)).stdout).toBe(admin.user);
    expect(await whoAmI(loadKubeClient({ kubeconfig }))).toBe(admin.user);
  }, TEST_TIMEOUT_MS);

  test("a relative tokenFile: both send its token", async () => {
    const kubeconfig = kubeconfigDir({ "ca.crt": ca(), "secret/token": `${saToken}\n` }, { user: { tokenFile: "secret/token" }, clusterFields: { "certificate-authority": "ca.crt" } });
    expect((await kubectlWhoAmI(kubeconfig)).stdout).toBe(saUser);
    expect(await whoAmI(loadKubeClient({ kubeconfig }))).toBe(saUser);
  }, TEST_TIMEOUT_MS);

  test("as and as-groups: the admin impersonates the ServiceAccount with a group, for kubectl and oz-worker alike", async () => {
    const kubeconfig = writeKubeconfig({
      user: { "client-certificate-data": b64(admin.cert), "client-key-data": b64(admin.key), as: saUser, "as-groups": ["oz-e2e-group"] },
    });
    const viaKubectl = await run(["scripts/sandbox", "kubectl", `--kubeconfig=${kubeconfig}`, "auth", "whoami", "-o", "json"], { timeoutMs: 60_000 });
    const kubectlInfo = (JSON.parse(viaKubectl.stdout) as { status: { userInfo: { username: string; groups: string[] } } }).status.userInfo;
    const ours = await userInfo(loadKubeClient({ kubeconfig }));
    expect(kubectlInfo.username).toBe(saUser);
    expect(kubectlInfo.groups).toContain("oz-e2e-group");
    expect({ username: ours.username, groups: [...ours.groups].sort() }).toEqual({ username: kubectlInfo.username, groups: [...kubectlInfo.groups].sort() });
  }, TEST_TIMEOUT_MS);

  test("tls-server-name: a name in the server's certificate is accepted, another one is refused, by both", async () => {
    const good = writeKubeconfig({});
    const goodDoc = YAML.parse(readFileSync(good, "utf8"));
    goodDoc.clusters[0].cluster["tls-server-name"] = "kubernetes.default.svc";
    writeFileSync(good, YAML.stringify(goodDoc));
    expect((await kubectlWhoAmI(good)).stdout).toBe(saUser);
    expect(await whoAmI(loadKubeClient({ kubeconfig: good }))).toBe(saUser);

    goodDoc.clusters[0].cluster["tls-server-name"] = "not-the-server.example";
    const bad = join(tmp, `kubeconfig-${fileCounter++}.yaml`);
    writeFileSync(bad, YAML.stringify(goodDoc));
    const viaKubectl = await kubectlWhoAmI(bad);
    expect(viaKubectl.code).not.toBe(0);
    expect(viaKubectl.stderr).toContain("not-the-server.example");
    let err: unknown;
    await loadKubeClient({ kubeconfig: bad })
      .checkReachable()
      .catch((e) => {
        err = e;
      });
    expect((err as { kind?: string })?.kind).toBe("tls");
  }, TEST_TIMEOUT_MS);

  test("insecure-skip-tls-verify without a certificate-authority: both connect", async () => {
    const kubeconfig = kubeconfigDir({}, { user: { token: saToken }, clusterFields: { "insecure-skip-tls-verify": true } });
    expect((await kubectlWhoAmI(kubeconfig)).stdout).toBe(saUser);
    expect(await whoAmI(loadKubeClient({ kubeconfig }))).toBe(saUser);
  }, TEST_TIMEOUT_MS);

  test("an oidc auth-provider: oz-worker sends its id-token as the bearer token", async () => {
    // The ServiceAccount token is a JWT with an exp in the future, like an OIDC id-token.
    const kubeconfig = writeKubeconfig({ user: { "auth-provider": { name: "oidc", config: { "id-token": saToken, "client-id": "k", "idp-issuer-url": "https://issuer.example" } } } });
    expect(await whoAmI(loadKubeClient({ kubeconfig }))).toBe(saUser);
  }, TEST_TIMEOUT_MS);
});

describe("in-cluster", () => {
  test("the ServiceAccount's token, CA and namespace files with KUBERNETES_SERVICE_HOST and _PORT reach the API server as the ServiceAccount", async () => {
    const saDir = mkdtempSync(join(tmp, "serviceaccount-"));
    writeFileSync(join(saDir, "token"), saToken);
    writeFileSync(join(saDir, "ca.crt"), Buffer.from(cluster["certificate-authority-data"], "base64"));
    writeFileSync(join(saDir, "namespace"), ns.name);
    const { hostname, port } = new URL(cluster.server);
    const client = loadKubeClient({ env: { KUBERNETES_SERVICE_HOST: hostname, KUBERNETES_SERVICE_PORT: port }, serviceAccountDir: saDir });
    expect({ kind: client.sourceKind, namespace: client.contextNamespace }).toEqual({ kind: "in-cluster", namespace: ns.name });
    expect(await whoAmI(client)).toBe(saUser);
  }, TEST_TIMEOUT_MS);
});
