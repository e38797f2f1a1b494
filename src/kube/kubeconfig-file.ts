// A kubeconfig file as kubectl (client-go's clientcmd) reads it: the model (clusters, users,
// contexts, current-context), parsed with `yaml`, relative paths resolved against the file's
// directory, and a KUBECONFIG list merged. Errors name the field (and, for YAML syntax, the
// line); kubeconfig.ts adds the file.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseDocument } from "yaml";
import type { ExecConfig } from "./exec-credential.ts";

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
