// Kubeconfig resolution as kubectl does it: an explicit file, else in-cluster, else the
// default rules (KUBECONFIG list merged, or ~/.kube/config); plus the cluster's proxy-url check.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { type Cluster, type Context, KubeConfig, type User } from "@kubernetes/client-node";
import type { LoadKubeClientOptions } from "./client.ts";
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

/** A resolved kubeconfig, how it was found, and how to name its source for a context. */
export interface Resolved {
  kc: KubeConfig;
  sourceKind: KubeconfigSourceKind;
  describe: (context: string) => string;
}

/** Explicit file → in-cluster → default rules (KUBECONFIG, else ~/.kube/config). */
export function resolveKubeConfig(opts: LoadKubeClientOptions): Resolved {
  const env = opts.env ?? process.env;
  // 1. An explicit file.
  if (opts.kubeconfig) {
    const file = opts.kubeconfig.startsWith("~/") ? join(homedir(), opts.kubeconfig.slice(2)) : opts.kubeconfig;
    const source = `explicit file ${file}`;
    if (!existsSync(file)) throw new KubeconfigError(`kubeconfig file ${file} does not exist (backend.kubernetes.kubeconfig)`, source);
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(file);
    } catch (err) {
      throw new KubeconfigError(`cannot load kubeconfig file ${file}: ${describeError(err)}`, source, { cause: err });
    }
    return { kc, sourceKind: "explicit", describe: () => source };
  }
  // 2. In-cluster, when running inside a pod.
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(`${SA_DIR}/token`)) {
    const kc = new KubeConfig();
    try {
      kc.loadFromCluster();
    } catch (err) {
      throw new KubeconfigError(`cannot load the in-cluster config: ${describeError(err)}`, "in-cluster", { cause: err });
    }
    return { kc, sourceKind: "in-cluster", describe: () => "in-cluster" };
  }
  // 3. The default loading rules: KUBECONFIG (a path list, missing files skipped like kubectl does), else ~/.kube/config.
  const kc = new KubeConfig();
  const list = env.KUBECONFIG?.split(delimiter).filter(Boolean) ?? [];
  if (list.length > 0) {
    const files = list.filter((f) => existsSync(f));
    const source = `default rules (KUBECONFIG=${env.KUBECONFIG})`;
    if (files.length === 0) throw new KubeconfigError(`none of the files in KUBECONFIG exist (${env.KUBECONFIG})`, source);
    const loaded = files.map((f) => {
      const one = new KubeConfig();
      try {
        one.loadFromFile(f);
      } catch (err) {
        throw new KubeconfigError(`cannot load kubeconfig file ${f} (from KUBECONFIG=${env.KUBECONFIG}): ${describeError(err)}`, source, { cause: err });
      }
      return one;
    });
    kc.loadFromOptions(mergeKubeconfigs(loaded));
    return { kc, sourceKind: "default", describe: (ctx) => `${source}, context ${ctx}` };
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
  try {
    kc.loadFromFile(file);
  } catch (err) {
    throw new KubeconfigError(`cannot load kubeconfig file ${file}: ${describeError(err)}`, source, { cause: err });
  }
  return { kc, sourceKind: "default", describe: (ctx) => `${source}, context ${ctx}` };
}

/** What KubeConfig.loadFromOptions takes. */
export interface KubeconfigParts {
  clusters: Cluster[];
  users: User[];
  contexts: Context[];
  currentContext: string | undefined;
}

/**
 * Merges the files of a KUBECONFIG list as kubectl does: for each cluster, user and context
 * name the first file that defines it wins, and the current-context is the first one set.
 * (client-node's mergeConfig throws on a name defined twice and either keeps the first
 * file's current-context even when unset or lets the last file's win.) Each file's relative
 * paths were already made absolute against its own directory by loadFromFile.
 */
export function mergeKubeconfigs(files: readonly Pick<KubeConfig, "getClusters" | "getUsers" | "getContexts" | "getCurrentContext">[]): KubeconfigParts {
  const firstByName = <T extends { name: string }>(lists: T[][]): T[] => {
    const byName = new Map<string, T>();
    for (const list of lists) for (const item of list) if (!byName.has(item.name)) byName.set(item.name, item);
    return [...byName.values()];
  };
  return {
    clusters: firstByName(files.map((f) => f.getClusters())),
    users: firstByName(files.map((f) => f.getUsers())),
    contexts: firstByName(files.map((f) => f.getContexts())),
    currentContext: files.map((f) => f.getCurrentContext()).find((c) => !!c),
  };
}

/**
 * The cluster's `proxy-url`, checked: the schemes kubectl accepts (http, https, socks5).
 * Under Node and Deno client-node's dispatcher tunnels through it (HTTP CONNECT or SOCKS);
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


/** The in-cluster ServiceAccount's namespace, if its file is there and not empty. */
export function inClusterNamespace(): string | undefined {
  if (!existsSync(`${SA_DIR}/namespace`)) return undefined;
  return readFileSync(`${SA_DIR}/namespace`, "utf8").trim() || undefined;
}
