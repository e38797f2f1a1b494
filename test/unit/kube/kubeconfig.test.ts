// Pure parts of the kube client: merging a KUBECONFIG list (as kubectl does), reading an exec
// plugin's ExecCredential, and the runtime-independent wording of socket errors.
import { describe, expect, test } from "bun:test";
import { KubeConfig } from "@kubernetes/client-node";
import { networkErrorText } from "../../../src/kube/api-errors.ts";
import { mergeKubeconfigs } from "../../../src/kube/kubeconfig.ts";
import { ExecCredentialError, parseExecCredential } from "../../../src/kube/exec-credential.ts";

function kubeconfig(yaml: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(yaml);
  return kc;
}

const first = kubeconfig(`
apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://prod.example:6443"}}]
users: [{name: me, user: {token: first-token}}]
contexts: [{name: prod, context: {cluster: prod, user: me}}]
`);
const second = kubeconfig(`
apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://other.example:6443"}}, {name: dev, cluster: {server: "https://dev.example:6443"}}]
users: [{name: me, user: {token: second-token}}]
contexts: [{name: prod, context: {cluster: dev, user: me, namespace: x}}, {name: dev, context: {cluster: dev, user: me}}]
current-context: dev
`);

describe("mergeKubeconfigs", () => {
  test("a name defined in two files: the first file's entry wins", () => {
    const merged = mergeKubeconfigs([first, second]);
    expect(merged.clusters.map((c) => [c.name, c.server])).toEqual([
      ["prod", "https://prod.example:6443"],
      ["dev", "https://dev.example:6443"],
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
