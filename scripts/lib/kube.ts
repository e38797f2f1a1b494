// A minimal Kubernetes client for the demo and benchmark harness (Bun fetch
// with the kubeconfig's TLS material): JSON requests, /metrics, and list+watch
// with the arrival time of every event. Deliberately independent of src/kube so
// the harness measures the worker without sharing its code paths.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";

export interface KubeTarget {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  namespace?: string;
}

interface NamedEntry<T> {
  name: string;
  [k: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

/** Reads the current context of a kubeconfig file into a request target. */
export function loadKubeconfig(path: string): KubeTarget {
  const doc = parseYaml(readFileSync(path, "utf8")) as Record<string, unknown>;
  const base = dirname(resolve(path));
  const list = <T>(key: string) => (Array.isArray(doc[key]) ? (doc[key] as NamedEntry<T>[]) : []);
  const contextName = doc["current-context"] as string | undefined;
  const ctxEntry = list<Record<string, string>>("contexts").find((c) => c.name === contextName) ?? list<Record<string, string>>("contexts")[0];
  const ctx = ctxEntry?.context ?? {};
  const cluster = list<Record<string, string>>("clusters").find((c) => c.name === ctx.cluster)?.cluster ?? list<Record<string, string>>("clusters")[0]?.cluster;
  const user = list<Record<string, string>>("users").find((u) => u.name === ctx.user)?.user ?? {};
  if (!cluster?.server) throw new Error(`kubeconfig ${path}: no cluster server in the current context`);
  const material = (data: string | undefined, file: string | undefined) =>
    data ? Buffer.from(data, "base64").toString("utf8") : file ? readFileSync(resolve(base, file), "utf8") : undefined;
  const target: KubeTarget = { server: cluster.server.replace(/\/+$/, "") };
  const ca = material(cluster["certificate-authority-data"], cluster["certificate-authority"]);
  const cert = material(user["client-certificate-data"], user["client-certificate"]);
  const key = material(user["client-key-data"], user["client-key"]);
  const token = user.token ?? (user.tokenFile ? readFileSync(resolve(base, user.tokenFile), "utf8").trim() : undefined);
  if (ca) target.ca = ca;
  if (cert) target.cert = cert;
  if (key) target.key = key;
  if (token) target.token = token;
  if (ctx.namespace) target.namespace = ctx.namespace;
  return target;
}

export class KubeError extends Error {
  override name = "KubeError";
  readonly status: number;
  readonly body: string;
  constructor(
    message: string,
    status: number,
    body: string,
  ) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: unknown;
  status?: Record<string, unknown>;
}

/** Wall-clock milliseconds with sub-millisecond precision. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export class Kube {
  /** Requests this client sent, by `"<VERB> <path without query>"`; the harness's own footprint. */
  readonly sent = new Map<string, number>();

  readonly target: KubeTarget;
  constructor(target: KubeTarget) {
    this.target = target;
  }

  static fromKubeconfig(path: string): Kube {
    return new Kube(loadKubeconfig(path));
  }

  /** The same credentials against another API server URL. */
  withServer(server: string): Kube {
    return new Kube({ ...this.target, server });
  }

  private init(method: string, body?: string, contentType?: string, signal?: AbortSignal): RequestInit {
    const headers: Record<string, string> = { Accept: "application/json", "User-Agent": "oz-worker-harness" };
    if (this.target.token) headers.Authorization = `Bearer ${this.target.token}`;
    if (body !== undefined) headers["Content-Type"] = contentType ?? "application/json";
    const tls: Record<string, string> = {};
    if (this.target.ca) tls.ca = this.target.ca;
    if (this.target.cert) tls.cert = this.target.cert;
    if (this.target.key) tls.key = this.target.key;
    return { method, headers, ...(body !== undefined ? { body } : {}), ...(signal ? { signal } : {}), tls } as RequestInit;
  }

  async raw(method: string, path: string, opts: { body?: unknown; contentType?: string; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Response> {
    const key = `${method} ${path.split("?")[0]}`;
    this.sent.set(key, (this.sent.get(key) ?? 0) + 1);
    const signal = opts.signal ?? AbortSignal.timeout(opts.timeoutMs ?? 30_000);
    const body = opts.body === undefined ? undefined : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    return fetch(`${this.target.server}${path}`, this.init(method, body, opts.contentType, signal));
  }

  async json<T = unknown>(method: string, path: string, opts: { body?: unknown; contentType?: string; timeoutMs?: number; okStatuses?: number[] } = {}): Promise<T> {
    const res = await this.raw(method, path, opts);
    const text = await res.text();
    const ok = res.ok || (opts.okStatuses ?? []).includes(res.status);
    if (!ok) throw new KubeError(`${method} ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`, res.status, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async text(path: string, timeoutMs = 30_000): Promise<string> {
    const res = await this.raw("GET", path, { timeoutMs });
    const text = await res.text();
    if (!res.ok) throw new KubeError(`GET ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`, res.status, text);
    return text;
  }

  /**
   * Lists `collectionPath` then watches it from the list's resourceVersion,
   * calling `onEvent` for every listed object (as "ADDED", listed: true) and
   * every watch event with the time it arrived. Re-watches when the server ends
   * a watch, re-lists after 410 Gone. Resolves `synced` after the first list;
   * `done` settles when `signal` aborts.
   */
  informer(
    collectionPath: string,
    onEvent: (type: WatchEventType, obj: KubeObject, receivedAt: number, listed: boolean) => void,
    signal: AbortSignal,
    query: Record<string, string> = {},
  ): { synced: Promise<void>; done: Promise<void>; openWatches: () => number } {
    let open = 0;
    let markSynced: () => void = () => {};
    let failSynced: (e: unknown) => void = () => {};
    const synced = new Promise<void>((res, rej) => {
      markSynced = res;
      failSynced = rej;
    });
    const qs = (extra: Record<string, string>) => `?${new URLSearchParams({ ...query, ...extra }).toString()}`;
    const loop = async () => {
      let first = true;
      while (!signal.aborted) {
        let rv: string;
        try {
          const list = await this.json<{ metadata: { resourceVersion: string }; items: KubeObject[] }>("GET", `${collectionPath}${qs({})}`);
          const at = nowMs();
          for (const item of list.items) onEvent("ADDED", item, at, true);
          rv = list.metadata.resourceVersion;
          if (first) markSynced();
          first = false;
        } catch (err) {
          if (first) {
            failSynced(err);
            return;
          }
          if (signal.aborted) return;
          await Bun.sleep(500);
          continue;
        }
        // Watch until the server ends it or says the version is gone.
        for (;;) {
          if (signal.aborted) return;
          let gone = false;
          try {
            const res = await this.raw("GET", `${collectionPath}${qs({ watch: "true", resourceVersion: rv, allowWatchBookmarks: "true", timeoutSeconds: "300" })}`, { signal });
            if (res.status === 410) {
              await res.body?.cancel();
              break;
            }
            if (!res.ok || !res.body) {
              await res.body?.cancel();
              await Bun.sleep(500);
              continue;
            }
            open++;
            try {
              const reader = res.body.getReader();
              const decoder = new TextDecoder();
              let buf = "";
              for (;;) {
                const { done, value } = await reader.read();
                if (done) break;
                const at = nowMs();
                buf += decoder.decode(value, { stream: true });
                let nl = buf.indexOf("\n");
                while (nl !== -1) {
                  const line = buf.slice(0, nl).trim();
                  buf = buf.slice(nl + 1);
                  nl = buf.indexOf("\n");
                  if (!line) continue;
                  const ev = JSON.parse(line) as { type: WatchEventType; object: KubeObject & { code?: number } };
                  if (ev.type === "ERROR") {
                    if (ev.object.code === 410) gone = true;
                    continue;
                  }
                  if (ev.object.metadata?.resourceVersion) rv = ev.object.metadata.resourceVersion;
                  if (ev.type !== "BOOKMARK") onEvent(ev.type, ev.object, at, false);
                }
                if (gone) {
                  await reader.cancel();
                  break;
                }
              }
            } finally {
              open--;
            }
          } catch {
            if (signal.aborted) return;
            await Bun.sleep(200);
          }
          if (gone) break;
        }
      }
    };
    const done = loop();
    return { synced, done, openWatches: () => open };
  }
}
