// Pure parts of the kube client: reading kubeconfig files as kubectl does (parsing, relative
// paths, a KUBECONFIG list merged, in-cluster, the checks of the current context), the user's
// request headers, the TLS files, reading an exec plugin's ExecCredential, and the
// runtime-independent wording of socket errors.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { networkErrorText } from "../../../src/kube/api-errors.ts";
import { TOKEN_FILE_REREAD_MS, UserAuth, jwtExpiry } from "../../../src/kube/auth.ts";
import { loadKubeClient } from "../../../src/kube/client.ts";
import { type KubeUser, mergeKubeconfigs, parseKubeconfig } from "../../../src/kube/kubeconfig-file.ts";
import { KubeconfigError, resolveKubeConfig, selectCurrent } from "../../../src/kube/kubeconfig.ts";
import { readTls } from "../../../src/kube/tls.ts";
import { ExecCredentialError, parseExecCredential } from "../../../src/kube/exec-credential.ts";

const tmp = mkdtempSync(join(tmpdir(), "oz-kubeconfig-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileCounter = 0;
/** Writes `text` to a new file under tmp (in `dir` when given); returns its path. */
function write(text: string, dir = tmp, name = `file-${fileCounter++}`): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** The error `fn` throws (and fails the test when it throws none). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected an error");
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

const first = parseKubeconfig(
  `
apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://prod.example:6443"}}]
users: [{name: me, user: {token: first-token}}]
contexts: [{name: prod, context: {cluster: prod, user: me}}]
`,
  "/home/u/.kube/first",
);
const second = parseKubeconfig(
  `
apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://other.example:6443"}}, {name: dev, cluster: {server: "https://dev.example:6443"}}]
users: [{name: me, user: {token: second-token}}]
contexts: [{name: prod, context: {cluster: dev, user: me, namespace: x}}, {name: dev, context: {cluster: dev, user: me}}]
current-context: dev
`,
  "/home/u/.kube/second",
);

describe("mergeKubeconfigs", () => {
  test("a name defined in two files: the first file's entry wins", () => {
    const merged = mergeKubeconfigs([first, second]);
    expect(merged.clusters.map((c) => [c.name, c.server, c.origin])).toEqual([
      ["prod", "https://prod.example:6443", "/home/u/.kube/first"],
      ["dev", "https://dev.example:6443", "/home/u/.kube/second"],
    ]);
    expect(merged.users.map((u) => [u.name, u.token])).toEqual([["me", "first-token"]]);
    expect(merged.contexts.map((c) => [c.name, c.cluster])).toEqual([
      ["prod", "prod"],
      ["dev", "dev"],
    ]);
  });

  test("the current-context is the first one set, even when the first file has none", () => {
    expect(mergeKubeconfigs([first, second]).currentContext).toBe("dev");
    expect(mergeKubeconfigs([second, first]).currentContext).toBe("dev");
    expect(mergeKubeconfigs([first]).currentContext).toBeUndefined();
  });
});

describe("parseKubeconfig", () => {
  test("relative certificate, key, tokenFile and exec command paths are resolved against the file's directory, as kubectl does", () => {
    const config = parseKubeconfig(
      `
clusters: [{name: c, cluster: {server: "https://k:6443", certificate-authority: ca.crt}}]
users:
- name: files
  user: {client-certificate: certs/me.crt, client-key: /abs/me.key, tokenFile: ./token}
- name: client-node-spelling
  user: {token-file: token}
- name: plugin
  user: {exec: {command: ./bin/login, args: [get-token], env: [{name: A, value: b}], apiVersion: client.authentication.k8s.io/v1}}
- name: in-path
  user: {exec: {command: kubelogin, apiVersion: client.authentication.k8s.io/v1}}
`,
      "/etc/kube/config",
    );
    expect(config.clusters[0]!.caFile).toBe("/etc/kube/ca.crt");
    const [files, clientNode, plugin, inPath] = config.users;
    expect([files!.certFile, files!.keyFile, files!.tokenFile, clientNode!.tokenFile]).toEqual(["/etc/kube/certs/me.crt", "/abs/me.key", "/etc/kube/token", "/etc/kube/token"]);
    expect(plugin!.exec).toEqual({ command: "/etc/kube/bin/login", args: ["get-token"], env: [{ name: "A", value: "b" }], apiVersion: "client.authentication.k8s.io/v1" });
    expect(inPath!.exec!.command).toBe("kubelogin");
  });

  test("the -data fields are base64-decoded PEM; insecure-skip-tls-verify, tls-server-name, proxy-url and impersonation are read", () => {
    const config = parseKubeconfig(
      `
clusters: [{name: c, cluster: {server: "https://k", certificate-authority-data: ${b64("CA PEM")}, insecure-skip-tls-verify: false, tls-server-name: kubernetes, proxy-url: "http://proxy:3128"}}]
users: [{name: u, user: {client-certificate-data: ${b64("CERT PEM")}, client-key-data: ${b64("KEY PEM")}, as: jane, as-uid: "42", as-groups: [devs], as-user-extra: {reason: [debug]}}}]
`,
      "/k/config",
    );
    expect(config.clusters[0]).toEqual({ name: "c", server: "https://k", caData: "CA PEM", skipTLSVerify: false, tlsServerName: "kubernetes", proxyUrl: "http://proxy:3128", origin: "/k/config" });
    expect(config.users[0]).toEqual({
      name: "u",
      certData: "CERT PEM",
      keyData: "KEY PEM",
      impersonate: "jane",
      impersonateUid: "42",
      impersonateGroups: ["devs"],
      impersonateExtra: { reason: ["debug"] },
      origin: "/k/config",
    });
  });

  test("an empty file is an empty kubeconfig", () => {
    expect(parseKubeconfig("", "/k/empty")).toEqual({ clusters: [], users: [], contexts: [] });
  });

  test.each([
    ["clusters: [{name: c, cluster: {server: https://k, insecure-skip-tls-verify: \"yes\"}}]", "clusters[0] (c).cluster.insecure-skip-tls-verify must be a boolean, not a string"],
    ["users: [{name: u, user: {token: 12345}}]", "users[0] (u).user.token must be a string, not a number (quote it)"],
    ["users: [{user: {token: t}}]", "users[0].name is missing"],
    ["contexts: {name: c}", "contexts must be a list, not a mapping"],
    ["users: [{name: u, user: {exec: {args: [x]}}}]", "users[0] (u).user.exec.command is missing"],
  ])("%s is refused, naming the field", (text, message) => {
    expect(thrown(() => parseKubeconfig(text, "/k/config")).message).toBe(message);
  });

  test("a YAML syntax error names the file and the line", () => {
    const file = write("apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: https://k\ncontexts: []\n");
    const err = thrown(() => resolveKubeConfig({ kubeconfig: file }));
    expect(err).toBeInstanceOf(KubeconfigError);
    expect(err.message).toBe(`cannot load kubeconfig file ${file}: YAML syntax error at line 5, column 1: Flow map in block collection must be sufficiently indented and end with a }`);
  });
});

describe("resolveKubeConfig", () => {
  const saDir = join(tmp, "serviceaccount");
  write("sa-token\n", saDir, "token");
  write("CA", saDir, "ca.crt");
  write("team-a\n", saDir, "namespace");

  test("in a pod: the ServiceAccount's token file, CA and namespace, https to the service (IPv6 in brackets)", () => {
    const { config, sourceKind } = resolveKubeConfig({ env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443", KUBECONFIG: "/ignored" }, serviceAccountDir: saDir });
    expect(sourceKind).toBe("in-cluster");
    const { cluster, user, context } = selectCurrent(config, "in-cluster");
    expect(cluster).toMatchObject({ server: "https://[fd00::1]:443", caFile: join(saDir, "ca.crt") });
    expect(user).toMatchObject({ tokenFile: join(saDir, "token") });
    expect(context.namespace).toBe("team-a");
    expect(new UserAuth(user, "in-cluster").headers()).toEqual({ Authorization: "Bearer sa-token" });
  });

  test("without the ServiceAccount token file the default rules apply", () => {
    const file = write("clusters: []\n");
    expect(resolveKubeConfig({ env: { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443", KUBECONFIG: file }, serviceAccountDir: join(tmp, "none") }).sourceKind).toBe("default");
  });

  test("KUBECONFIG: missing files are skipped; none there is an error naming the list", () => {
    const file = write("current-context: x\n");
    const list = `${join(tmp, "missing-1")}:${file}`;
    expect(resolveKubeConfig({ env: { KUBECONFIG: list } }).config.currentContext).toBe("x");
    const err = thrown(() => resolveKubeConfig({ env: { KUBECONFIG: join(tmp, "missing-2") } }));
    expect(err.message).toBe(`none of the files in KUBECONFIG exist (${join(tmp, "missing-2")})`);
  });

  test("no KUBECONFIG: ~/.kube/config", () => {
    const home = join(tmp, "home");
    write("current-context: from-home\n", join(home, ".kube"), "config");
    const resolved = resolveKubeConfig({ env: { HOME: home } });
    expect(resolved.config.currentContext).toBe("from-home");
    expect(resolved.describe("from-home")).toBe(`default rules (~/.kube/config = ${join(home, ".kube", "config")}), context from-home`);
  });

  test("an explicit file that does not exist names the setting", () => {
    expect(thrown(() => resolveKubeConfig({ kubeconfig: join(tmp, "nope") })).message).toBe(`kubeconfig file ${join(tmp, "nope")} does not exist (backend.kubernetes.kubeconfig)`);
  });
});

describe("selectCurrent", () => {
  const select = (users: string, clusterExtra = "") =>
    selectCurrent(
      parseKubeconfig(
        `
clusters: [{name: c, cluster: {server: "https://k"${clusterExtra}}}]
users: [{name: u, user: ${users}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ns}}]
current-context: x
`,
        "/k/config",
      ),
      "explicit file /k/config",
    );

  test("the current context, its cluster and user", () => {
    const s = select("{token: t}");
    expect([s.context.name, s.context.namespace, s.cluster.server, s.user?.token]).toEqual(["x", "ns", "https://k", "t"]);
  });

  test.each([
    ["{token: t, username: a, password: b}", "", "user u (/k/config) sets both a token and username/password; keep one authentication method"],
    ["{client-certificate: c.crt}", "", "user u (/k/config) has a client certificate without a client-key or client-key-data"],
    ["{client-certificate: c.crt, client-certificate-data: eA==, client-key: k}", "", "sets both client-certificate and client-certificate-data; keep one"],
    ["{token: t}", ", certificate-authority: ca.crt, certificate-authority-data: eA==", "cluster c (/k/config) sets both certificate-authority and certificate-authority-data"],
    ["{token: t}", ", certificate-authority-data: eA==, insecure-skip-tls-verify: true", "sets insecure-skip-tls-verify with a certificate-authority"],
    ["{as-groups: [a]}", "", "sets as-uid, as-groups or as-user-extra without as"],
    ["{as: jane, as-groups: [a, b]}", "", "as-groups lists 2 groups; oz-worker can impersonate one group only"],
    ["{auth-provider: {name: gcp}}", "", "the gcp auth-provider was removed from kubectl and client-go; use the gke-gcloud-auth-plugin exec plugin instead"],
    ["{auth-provider: {name: azure, config: {}}}", "", "the azure auth-provider was removed from kubectl and client-go; use the kubelogin exec plugin instead"],
    ["{auth-provider: {name: openstack}}", "", "auth-provider openstack is not supported; use an exec credential plugin"],
    ["{auth-provider: {name: oidc, config: {client-id: k}}}", "", "the oidc auth-provider has no id-token"],
  ])("user %s (cluster%s) is refused as kubectl refuses it", (user, cluster, message) => {
    const err = thrown(() => select(user, cluster));
    expect(err).toBeInstanceOf(KubeconfigError);
    expect(err.message).toContain(message);
    expect(err.message).toEndWith("(explicit file /k/config)");
  });

  test.each([
    ["current-context: y\ncontexts: [{name: x, context: {cluster: c}}]", "the kubeconfig's current-context y is not defined"],
    ["contexts: [{name: x, context: {cluster: c}}]", "the kubeconfig has no current-context; set one with kubectl config use-context NAME"],
    ["current-context: x\ncontexts: [{name: x, context: {cluster: gone}}]", "context x names cluster gone, which is not defined"],
    ["current-context: x\ncontexts: [{name: x, context: {cluster: c, user: gone}}]\nclusters: [{name: c, cluster: {server: https://k}}]", "context x names user gone, which is not defined"],
    ["current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]", "cluster c (/k/config) has no server"],
  ])("%s is refused", (text, message) => {
    expect(thrown(() => selectCurrent(parseKubeconfig(text, "/k/config"), "src")).message).toBe(`${message} (src)`);
  });
});

describe("UserAuth", () => {
  const user = (u: Omit<KubeUser, "name" | "origin">): KubeUser => ({ name: "u", origin: "/k/config", ...u });

  test("a token, basic auth, impersonation: the headers client-go sends", () => {
    expect(new UserAuth(user({ token: "t" }), "s").headers()).toEqual({ Authorization: "Bearer t" });
    expect(new UserAuth(user({ username: "a", password: "b" }), "s").headers()).toEqual({ Authorization: `Basic ${b64("a:b")}` });
    expect(new UserAuth(user({ token: "t", impersonate: "jane", impersonateUid: "42", impersonateGroups: ["devs"], impersonateExtra: { "acme.com/reason": ["debug"] } }), "s").headers()).toEqual({
      Authorization: "Bearer t",
      "Impersonate-User": "jane",
      "Impersonate-Uid": "42",
      "Impersonate-Group": "devs",
      "Impersonate-Extra-acme.com%2Freason": "debug",
    });
    expect(new UserAuth(undefined, "s").headers()).toEqual({});
  });

  test("a tokenFile is re-read once a minute as it rotates, keeps its last token while unreadable, and wins over token", () => {
    const file = write("first\n");
    let now = 1_000_000;
    const auth = new UserAuth(user({ tokenFile: file, token: "static" }), "s", () => now);
    expect(auth.headers().Authorization).toBe("Bearer first");
    writeFileSync(file, "second");
    now += TOKEN_FILE_REREAD_MS - 1;
    expect(auth.headers().Authorization).toBe("Bearer first");
    now += 2;
    expect(auth.headers().Authorization).toBe("Bearer second");
    rmSync(file);
    now += TOKEN_FILE_REREAD_MS + 1;
    expect(auth.headers().Authorization).toBe("Bearer second");
  });

  test("an unreadable tokenFile without any token to fall back on names the user and the file", () => {
    const err = thrown(() => new UserAuth(user({ tokenFile: join(tmp, "no-token") }), "explicit file /k/config").headers());
    expect(err).toBeInstanceOf(KubeconfigError);
    expect(err.message).toStartWith(`user u (/k/config): cannot read its tokenFile ${join(tmp, "no-token")}: `);
  });

  const jwt = (claims: object) => `${b64("{}")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`;

  test("oidc: the id-token is the bearer token until it expires; then the error says to use an exec plugin such as kubelogin", () => {
    const token = jwt({ exp: 2_000 });
    expect(jwtExpiry(token)).toBe(2_000_000);
    let now = 1_999_999;
    const auth = new UserAuth(user({ authProvider: { name: "oidc", config: { "id-token": token, "refresh-token": "r" } } }), "src", () => now);
    expect(auth.headers()).toEqual({ Authorization: `Bearer ${token}` });
    now = 2_000_000;
    const err = thrown(() => auth.headers());
    expect(err).toBeInstanceOf(KubeconfigError);
    expect(err.message).toContain("the oidc auth-provider's id-token expired at 1970-01-01T00:33:20.000Z");
    expect(err.message).toContain("use an exec plugin such as kubelogin");
    // Not a JWT, or no exp: used as it is.
    expect(jwtExpiry("opaque")).toBeUndefined();
    expect(jwtExpiry(jwt({ sub: "x" }))).toBeUndefined();
  });
});

describe("readTls", () => {
  test("CA, certificate and key from files (read when asked) or data; skip-verify and server name", () => {
    const dir = join(tmp, "tls");
    const config = parseKubeconfig(
      `
clusters: [{name: c, cluster: {server: "https://k", certificate-authority: ca.crt, tls-server-name: kubernetes}}]
users: [{name: u, user: {client-certificate: me.crt, client-key-data: ${b64("KEY")}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
      join(dir, "config"),
    );
    const { cluster, user } = selectCurrent(config, "src");
    write("CA1", dir, "ca.crt");
    write("CERT", dir, "me.crt");
    expect(readTls({ cluster, user, source: "src" })).toEqual({ ca: "CA1", cert: "CERT", key: "KEY", serverName: "kubernetes" });
    write("CA2", dir, "ca.crt");
    expect(readTls({ cluster, user, source: "src" }).ca).toBe("CA2");
    rmSync(join(dir, "me.crt"));
    const err = thrown(() => readTls({ cluster, user, source: "src" }));
    expect(err).toBeInstanceOf(KubeconfigError);
    expect(err.message).toStartWith(`user u (${join(dir, "config")}): cannot read its client-certificate ${join(dir, "me.crt")}: `);
    expect(readTls({ cluster: { ...cluster, caFile: undefined, skipTLSVerify: true }, user: undefined, source: "src" })).toEqual({ rejectUnauthorized: false, serverName: "kubernetes" });
  });
});

describe("loadKubeClient", () => {
  test("in a pod: the server and the ServiceAccount's namespace; nothing is sent until asked", () => {
    const saDir = join(tmp, "sa-client");
    write("tok", saDir, "token");
    write("ns-from-file\n", saDir, "namespace");
    const client = loadKubeClient({ env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, serviceAccountDir: saDir });
    expect([client.sourceKind, client.source, client.server, client.contextNamespace, client.counters.total]).toEqual(["in-cluster", "in-cluster", "https://10.96.0.1:443", "ns-from-file", 0]);
  });

  test("a certificate file that cannot be read fails at load, naming it", () => {
    const file = write(`
clusters: [{name: c, cluster: {server: "https://k", certificate-authority: missing-ca.crt}}]
contexts: [{name: x, context: {cluster: c}}]
current-context: x
`);
    const err = thrown(() => loadKubeClient({ kubeconfig: file }));
    expect(err).toBeInstanceOf(KubeconfigError);
    expect(err.message).toStartWith(`cluster c (${file}): cannot read its certificate-authority ${join(tmp, "missing-ca.crt")}: `);
  });
});

describe("parseExecCredential", () => {
  test("a token and its expiry", () => {
    const cred = parseExecCredential('{"kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"2030-01-02T03:04:05Z"}}', "p");
    expect(cred).toEqual({ token: "t", expiresAt: Date.parse("2030-01-02T03:04:05Z") });
  });

  test("a client certificate without a token, and no expiry", () => {
    expect(parseExecCredential('{"kind":"ExecCredential","status":{"clientCertificateData":"C","clientKeyData":"K"}}', "p")).toEqual({ cert: "C", key: "K" });
  });

  test.each([
    ["not JSON", "printed no ExecCredential JSON"],
    ['{"kind":"Other","status":{"token":"t"}}', "printed no ExecCredential with a status"],
    ['{"kind":"ExecCredential","status":{}}', "returned neither a token nor a client certificate"],
    ['{"kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"soon"}}', "returned an invalid expirationTimestamp"],
  ])("%s is refused, naming the plugin", (stdout, message) => {
    expect(() => parseExecCredential(stdout, "/usr/bin/login-plugin")).toThrow(ExecCredentialError);
    expect(() => parseExecCredential(stdout, "/usr/bin/login-plugin")).toThrow(`the kubeconfig exec plugin /usr/bin/login-plugin ${message}`);
  });
});

describe("networkErrorText", () => {
  test("undici's and Bun's refused connections read the same", () => {
    const undici = new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }) });
    const bun = Object.assign(new Error("Unable to connect. Is the computer able to access the url?"), { code: "ECONNREFUSED" });
    expect(networkErrorText(undici)).toBe("connection refused (ECONNREFUSED)");
    expect(networkErrorText(bun)).toBe("connection refused (ECONNREFUSED)");
  });

  test("other errors are left to describeError", () => {
    expect(networkErrorText(new Error("self-signed certificate"))).toBeUndefined();
    expect(networkErrorText("text")).toBeUndefined();
  });
});
