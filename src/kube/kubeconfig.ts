// Kubeconfig resolution as kubectl does it: an explicit file, else in-cluster, else the
// default rules (KUBECONFIG list merged, or ~/.kube/config); the current context's cluster and
// user, checked with kubectl's rules; and the cluster's proxy-url check. The file format is
// kubeconfig-file.ts.
//
// Why our own and not @kubernetes/client-node's KubeConfig: importing that package builds its
// whole generated model and serializer graph at start (~20 MB RSS in the compiled binary);
// the worker needs only these few hundred lines.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import type { LoadKubeClientOptions } from "./client.ts";
import { type KubeCluster, type KubeConfig, type KubeContext, type KubeUser, loadKubeconfigFile, mergeKubeconfigs } from "./kubeconfig-file.ts";
import { describeError } from "../util/errors.ts";

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

export type KubeconfigSourceKind = "explicit" | "in-cluster" | "default";

/** The kubeconfig could not be found or used. */
export class KubeconfigError extends Error {
  override name = "KubeconfigError";
  readonly source: string;
  constructor(
    message: string,
    source: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.source = source;
  }
}

// ---------------------------------------------------------------------------
// Resolution

/** A resolved kubeconfig, how it was found, and how to name its source for a context. */
export interface Resolved {
  config: KubeConfig;
  sourceKind: KubeconfigSourceKind;
  describe: (context: string) => string;
}

/** Explicit file → in-cluster → default rules (KUBECONFIG, else ~/.kube/config). */
export function resolveKubeConfig(opts: LoadKubeClientOptions): Resolved {
  const env = opts.env ?? process.env;
  const load = (file: string, source: string, via = "") => {
    try {
      return loadKubeconfigFile(file);
    } catch (err) {
      throw new KubeconfigError(`cannot load kubeconfig file ${file}${via}: ${describeError(err)}`, source, { cause: err });
    }
  };
  // 1. An explicit file.
  if (opts.kubeconfig) {
    const file = opts.kubeconfig.startsWith("~/") ? join(homedir(), opts.kubeconfig.slice(2)) : opts.kubeconfig;
    const source = `explicit file ${file}`;
    if (!existsSync(file)) throw new KubeconfigError(`kubeconfig file ${file} does not exist (backend.kubernetes.kubeconfig)`, source);
    return { config: load(file, source), sourceKind: "explicit", describe: () => source };
  }
  // 2. In-cluster, when running inside a pod.
  const saDir = opts.serviceAccountDir ?? SA_DIR;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(`${saDir}/token`)) {
    return { config: inClusterConfig(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, saDir), sourceKind: "in-cluster", describe: () => "in-cluster" };
  }
  // 3. The default loading rules: KUBECONFIG (a path list, missing files skipped like kubectl does), else ~/.kube/config.
  const paths = env.KUBECONFIG?.split(delimiter).filter(Boolean) ?? [];
  if (paths.length > 0) {
    const files = paths.filter((f) => existsSync(f));
    const source = `default rules (KUBECONFIG=${env.KUBECONFIG})`;
    if (files.length === 0) throw new KubeconfigError(`none of the files in KUBECONFIG exist (${env.KUBECONFIG})`, source);
    const config = mergeKubeconfigs(files.map((f) => load(f, source, ` (from KUBECONFIG=${env.KUBECONFIG})`)));
    return { config, sourceKind: "default", describe: (ctx) => `${source}, context ${ctx}` };
  }
  const home = env.HOME || homedir();
  const file = join(home, ".kube", "config");
  const source = `default rules (~/.kube/config = ${file})`;
  if (!existsSync(file)) {
    throw new KubeconfigError(
      `no Kubernetes configuration found: not running in a pod (KUBERNETES_SERVICE_HOST unset), KUBECONFIG unset and ${file} missing; ` +
        `set backend.kubernetes.kubeconfig or KUBECONFIG`,
      "default rules",
    );
  }
  return { config: load(file, source), sourceKind: "default", describe: (ctx) => `${source}, context ${ctx}` };
}

/**
 * The pod's ServiceAccount, as client-go's InClusterConfig: https to the service host and
 * port, the token file (re-read as the kubelet rotates it), its CA, and its namespace.
 */
function inClusterConfig(host: string, port: string, saDir: string): KubeConfig {
  const origin = "in-cluster";
  const cluster: KubeCluster = { name: "in-cluster", server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`, skipTLSVerify: false, origin };
  // client-go goes on without the CA when it cannot be read (the system roots then apply).
  if (existsSync(`${saDir}/ca.crt`)) cluster.caFile = `${saDir}/ca.crt`;
  const context: KubeContext = { name: "in-cluster", cluster: "in-cluster", user: "in-cluster" };
  const namespace = existsSync(`${saDir}/namespace`) ? readFileSync(`${saDir}/namespace`, "utf8").trim() : "";
  if (namespace) context.namespace = namespace;
  return { clusters: [cluster], users: [{ name: "in-cluster", tokenFile: `${saDir}/token`, origin }], contexts: [context], currentContext: "in-cluster" };
}

// ---------------------------------------------------------------------------
// The current context

export interface Selected {
  context: KubeContext;
  cluster: KubeCluster & { server: string };
  /** Undefined when the context names no user (anonymous requests). */
  user: KubeUser | undefined;
}

/** The current context, its cluster and user, checked as kubectl checks the context it uses. */
export function selectCurrent(config: KubeConfig, source: string): Selected {
  const fail = (message: string): never => {
    throw new KubeconfigError(`${message} (${source})`, source);
  };
  const name = config.currentContext;
  if (!name) return fail(`the kubeconfig has no current-context; set one with kubectl config use-context NAME`);
  const context = config.contexts.find((c) => c.name === name) ?? fail(`the kubeconfig's current-context ${name} is not defined`);
  if (!context.cluster) fail(`context ${name} names no cluster`);
  const cluster = config.clusters.find((c) => c.name === context.cluster) ?? fail(`context ${name} names cluster ${context.cluster}, which is not defined`);
  const where = `cluster ${cluster.name} (${cluster.origin})`;
  if (!cluster.server) fail(`${where} has no server`);
  if (cluster.caFile && cluster.caData) fail(`${where} sets both certificate-authority and certificate-authority-data; keep one, as kubectl requires`);
  if (cluster.skipTLSVerify && (cluster.caFile || cluster.caData)) {
    fail(`${where} sets insecure-skip-tls-verify with a certificate-authority; kubectl refuses this too: remove one of them`);
  }
  const user = context.user ? (config.users.find((u) => u.name === context.user) ?? fail(`context ${name} names user ${context.user}, which is not defined`)) : undefined;
  if (user) checkUser(user, fail);
  return { context, cluster: cluster as Selected["cluster"], user };
}

/** kubectl's rules for a user entry (client-go's validateAuthInfo), and the auth providers it removed. */
function checkUser(user: KubeUser, fail: (message: string) => never): void {
  const where = `user ${user.name} (${user.origin})`;
  if (user.token && (user.username || user.password)) fail(`${where} sets both a token and username/password; keep one authentication method, as kubectl requires`);
  if (user.certFile && user.certData) fail(`${where} sets both client-certificate and client-certificate-data; keep one`);
  if (user.keyFile && user.keyData) fail(`${where} sets both client-key and client-key-data; keep one`);
  if ((user.certFile || user.certData) && !(user.keyFile || user.keyData)) fail(`${where} has a client certificate without a client-key or client-key-data`);
  if ((user.keyFile || user.keyData) && !(user.certFile || user.certData)) fail(`${where} has a client key without a client-certificate or client-certificate-data`);
  if ((user.impersonateUid || user.impersonateGroups || user.impersonateExtra) && !user.impersonate) {
    fail(`${where} sets as-uid, as-groups or as-user-extra without as (the user to impersonate)`);
  }
  // One value per impersonation header: the transports send one header line per name.
  if ((user.impersonateGroups?.length ?? 0) > 1) fail(`${where}: as-groups lists ${user.impersonateGroups!.length} groups; oz-worker can impersonate one group only`);
  for (const [key, values] of Object.entries(user.impersonateExtra ?? {})) {
    if (values.length > 1) fail(`${where}: as-user-extra ${key} lists ${values.length} values; oz-worker can send one value per key only`);
  }
  if (user.exec && user.authProvider) fail(`${where} sets both exec and auth-provider; keep the exec plugin`);
  const provider = user.authProvider?.name;
  if (provider === "gcp") {
    fail(
      `${where}: the gcp auth-provider was removed from kubectl and client-go; use the gke-gcloud-auth-plugin exec plugin instead ` +
        `(gcloud components install gke-gcloud-auth-plugin, then gcloud container clusters get-credentials CLUSTER rewrites the kubeconfig; ` +
        `see https://cloud.google.com/blog/products/containers-kubernetes/kubectl-auth-changes-in-gke)`,
    );
  }
  if (provider === "azure") {
    fail(
      `${where}: the azure auth-provider was removed from kubectl and client-go; use the kubelogin exec plugin instead ` +
        `(kubelogin convert-kubeconfig rewrites the kubeconfig; see https://azure.github.io/kubelogin/)`,
    );
  }
  if (provider !== undefined && provider !== "oidc") {
    fail(`${where}: auth-provider ${provider || "(no name)"} is not supported; use an exec credential plugin (user.exec), as kubectl recommends`);
  }
  if (provider === "oidc" && !user.authProvider!.config["id-token"]) {
    fail(`${where}: the oidc auth-provider has no id-token; oz-worker does not run the OIDC login: use an exec plugin such as kubelogin (https://github.com/int128/kubelogin)`);
  }
}

/**
 * The cluster's `proxy-url`, checked: the schemes kubectl accepts (http, https, socks5).
 * Under Node and Deno undici tunnels through it (tls.ts's proxyDispatcher: HTTP CONNECT or SOCKS5);
 * under Bun fetch's `proxy` option does, which speaks HTTP CONNECT only.
 */
export function checkProxyUrl(proxyUrl: string | undefined, cluster: string, source: string): string | undefined {
  if (!proxyUrl) return undefined;
  let url: URL;
  try {
    url = new URL(proxyUrl);
  } catch {
    throw new KubeconfigError(`cluster ${cluster}: proxy-url is not a URL (${source})`, source);
  }
  const shown = `${url.protocol}//${url.host}`;
  if (!["http:", "https:", "socks5:"].includes(url.protocol)) {
    throw new KubeconfigError(`cluster ${cluster}: proxy-url ${shown} has an unsupported scheme; use http, https or socks5, as kubectl does (${source})`, source);
  }
  if (isBun && url.protocol === "socks5:") {
    throw new KubeconfigError(
      `cluster ${cluster}: proxy-url ${shown} is a SOCKS proxy, which oz-worker cannot use under Bun (its fetch speaks HTTP CONNECT only); ` +
        `use an HTTP proxy, or run oz-worker on Node or Deno (${source})`,
      source,
    );
  }
  return proxyUrl;
}
