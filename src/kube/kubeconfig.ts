// Kubeconfig files read the way kubectl (client-go's clientcmd) reads them: the model
// (clusters, users, contexts, current-context), parsed with `yaml`; a KUBECONFIG list merged;
// the resolution order (explicit file, else in-cluster, else the default rules); and the
// current context's cluster and user, checked with kubectl's rules.
//
// Why our own and not @kubernetes/client-node's KubeConfig: importing that package builds its
// whole generated model and serializer graph at start (~20 MB RSS in the compiled binary);
// the worker needs only this file's few hundred lines.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { parseDocument } from "yaml";
import type { LoadKubeClientOptions } from "./client.ts";
import type { ExecConfig } from "./exec-credential.ts";
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

export interface KubeCluster {
  name: string;
  server?: string;
  /** Absolute path (relative ones are resolved against the kubeconfig file's directory). */
  caFile?: string;
  /** PEM, base64-decoded. */
  caData?: string;
  skipTLSVerify: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
  /** The file it came from ("in-cluster" for the ServiceAccount). */
  origin: string;
}

export interface KubeAuthProvider {
  name: string;
  config: Record<string, string>;
}

export interface KubeUser {
  name: string;
  token?: string;
  /** Re-read as it rotates (see auth.ts). */
  tokenFile?: string;
  username?: string;
  password?: string;
  certFile?: string;
  certData?: string;
  keyFile?: string;
  keyData?: string;
  /** `as`, `as-uid`, `as-groups`, `as-user-extra`. */
  impersonate?: string;
  impersonateUid?: string;
  impersonateGroups?: string[];
  impersonateExtra?: Record<string, string[]>;
  exec?: ExecConfig;
  authProvider?: KubeAuthProvider;
  origin: string;
}

export interface KubeContext {
  name: string;
  cluster: string;
  user?: string;
  namespace?: string;
}

export interface KubeConfig {
  clusters: KubeCluster[];
  users: KubeUser[];
  contexts: KubeContext[];
  currentContext?: string;
}

// ---------------------------------------------------------------------------
// Parsing

type Obj = Record<string, unknown>;
const kindOf = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "a mapping" : `a ${typeof v}`);

function field<T>(obj: Obj, key: string, at: string, want: "string" | "boolean", fallback?: T): T | undefined {
  const v = obj[key];
  if (v === undefined || v === null || v === "") return fallback;
  if (typeof v !== want) throw new Error(`${at}.${key} must be a ${want}, not ${kindOf(v)}${want === "string" ? " (quote it)" : ""}`);
  return v as T;
}

function mapping(v: unknown, at: string): Obj {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new Error(`${at} must be a mapping, not ${kindOf(v)}`);
  return v as Obj;
}

function list(v: unknown, at: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${at} must be a list, not ${kindOf(v)}`);
  return v;
}

function stringList(v: unknown, at: string): string[] | undefined {
  const items = list(v, at);
  items.forEach((s, i) => {
    if (typeof s !== "string") throw new Error(`${at}[${i}] must be a string, not ${kindOf(s)}`);
  });
  return items.length ? (items as string[]) : undefined;
}

/** A named entry (`{name, <key>: {...}}`) and the path that names it in messages. */
function named(v: unknown, section: string, i: number, key: string): { name: string; body: Obj; at: string } {
  const entry = mapping(v, `${section}[${i}]`);
  const name = entry.name;
  if (typeof name !== "string" || !name) throw new Error(`${section}[${i}].name is missing`);
  const at = `${section}[${i}] (${name}).${key}`;
  return { name, body: mapping(entry[key], at), at };
}

const b64 = (v: string | undefined) => (v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8"));

/**
 * One kubeconfig document. `file` names it in messages; relative certificate, key and token
 * file paths (and an exec command with a `/`) are resolved against its directory, as kubectl does.
 */
export function parseKubeconfig(text: string, file: string): KubeConfig {
  const doc = parseDocument(text);
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = syntax.linePos?.[0];
    // The yaml package's message ends with its own position and a code excerpt: keep the sentence.
    const what = syntax.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    throw new Error(`YAML syntax error${pos ? ` at line ${pos.line}, column ${pos.col}` : ""}: ${what}`);
  }
  const root = mapping(doc.toJS(), "the document");
  const dir = dirname(resolve(file));
  const path = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : join(dir, p));

  const clusters = list(root.clusters, "clusters").map((v, i): KubeCluster => {
    const { name, body: c, at } = named(v, "clusters", i, "cluster");
    const cluster: KubeCluster = { name, skipTLSVerify: field<boolean>(c, "insecure-skip-tls-verify", at, "boolean", false)!, origin: file };
    const server = field<string>(c, "server", at, "string");
    if (server) cluster.server = server;
    const caFile = path(field<string>(c, "certificate-authority", at, "string"));
    if (caFile) cluster.caFile = caFile;
    const caData = b64(field<string>(c, "certificate-authority-data", at, "string"));
    if (caData) cluster.caData = caData;
    const tlsServerName = field<string>(c, "tls-server-name", at, "string");
    if (tlsServerName) cluster.tlsServerName = tlsServerName;
    const proxyUrl = field<string>(c, "proxy-url", at, "string");
    if (proxyUrl) cluster.proxyUrl = proxyUrl;
    return cluster;
  });

  const users = list(root.users, "users").map((v, i): KubeUser => {
    const { name, body: u, at } = named(v, "users", i, "user");
    const user: KubeUser = { name, origin: file };
    const s = (key: string) => field<string>(u, key, at, "string");
    const set = <K extends keyof KubeUser>(key: K, value: KubeUser[K] | undefined) => {
      if (value !== undefined) user[key] = value;
    };
    set("token", s("token"));
    // kubectl's key is tokenFile; client-node read token-file, which is kept working.
    set("tokenFile", path(s("tokenFile") ?? s("token-file")));
    set("username", s("username"));
    set("password", s("password"));
    set("certFile", path(s("client-certificate")));
    set("certData", b64(s("client-certificate-data")));
    set("keyFile", path(s("client-key")));
    set("keyData", b64(s("client-key-data")));
    set("impersonate", s("as"));
    set("impersonateUid", s("as-uid"));
    set("impersonateGroups", stringList(u["as-groups"], `${at}.as-groups`));
    if (u["as-user-extra"] !== undefined) {
      const extra: Record<string, string[]> = {};
      for (const [k, vals] of Object.entries(mapping(u["as-user-extra"], `${at}.as-user-extra`))) extra[k] = stringList(vals, `${at}.as-user-extra.${k}`) ?? [];
      if (Object.keys(extra).length) user.impersonateExtra = extra;
    }
    if (u.exec !== undefined && u.exec !== null) set("exec", parseExec(mapping(u.exec, `${at}.exec`), `${at}.exec`, dir));
    if (u["auth-provider"] !== undefined && u["auth-provider"] !== null) {
      const p = mapping(u["auth-provider"], `${at}.auth-provider`);
      const config: Record<string, string> = {};
      for (const [k, val] of Object.entries(mapping(p.config, `${at}.auth-provider.config`))) if (typeof val === "string") config[k] = val;
      user.authProvider = { name: field<string>(p, "name", `${at}.auth-provider`, "string") ?? "", config };
    }
    return user;
  });

  const contexts = list(root.contexts, "contexts").map((v, i): KubeContext => {
    const { name, body: c, at } = named(v, "contexts", i, "context");
    const context: KubeContext = { name, cluster: field<string>(c, "cluster", at, "string") ?? "" };
    const user = field<string>(c, "user", at, "string");
    if (user) context.user = user;
    const namespace = field<string>(c, "namespace", at, "string");
    if (namespace) context.namespace = namespace;
    return context;
  });

  const config: KubeConfig = { clusters, users, contexts };
  const current = field<string>(root, "current-context", "the document", "string");
  if (current) config.currentContext = current;
  return config;
}

function parseExec(e: Obj, at: string, dir: string): ExecConfig {
  const command = field<string>(e, "command", at, "string");
  if (!command) throw new Error(`${at}.command is missing`);
  // kubectl resolves a command with a path separator against the kubeconfig's directory; a bare name is looked up in PATH.
  const exec: ExecConfig = { command: command.includes("/") && !isAbsolute(command) ? join(dir, command) : command };
  const args = stringList(e.args, `${at}.args`);
  if (args) exec.args = args;
  const env = list(e.env, `${at}.env`).map((v, i) => {
    const entry = mapping(v, `${at}.env[${i}]`);
    const name = field<string>(entry, "name", `${at}.env[${i}]`, "string");
    if (!name) throw new Error(`${at}.env[${i}].name is missing`);
    return { name, value: field<string>(entry, "value", `${at}.env[${i}]`, "string") ?? "" };
  });
  if (env.length) exec.env = env;
  for (const key of ["apiVersion", "interactiveMode", "installHint"] as const) {
    const value = field<string>(e, key, at, "string");
    if (value) exec[key] = value;
  }
  return exec;
}

/** Reads and parses one kubeconfig file. */
export function loadKubeconfigFile(file: string): KubeConfig {
  return parseKubeconfig(readFileSync(file, "utf8"), file);
}

/**
 * Merges the files of a KUBECONFIG list as kubectl does: for each cluster, user and context
 * name the first file that defines it wins, and the current-context is the first one set.
 */
export function mergeKubeconfigs(files: readonly KubeConfig[]): KubeConfig {
  const firstByName = <T extends { name: string }>(lists: T[][]): T[] => {
    const byName = new Map<string, T>();
    for (const entries of lists) for (const item of entries) if (!byName.has(item.name)) byName.set(item.name, item);
    return [...byName.values()];
  };
  const merged: KubeConfig = {
    clusters: firstByName(files.map((f) => f.clusters)),
    users: firstByName(files.map((f) => f.users)),
    contexts: firstByName(files.map((f) => f.contexts)),
  };
  const current = files.map((f) => f.currentContext).find((c) => !!c);
  if (current) merged.currentContext = current;
  return merged;
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
