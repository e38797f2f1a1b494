// Kubernetes client: one HTTP path for every request (raw JSON and streams alike) and request
// counters. Kubeconfig resolution is in kubeconfig.ts, the user's headers in auth.ts, TLS
// material and the proxy dispatcher in tls.ts, typed errors in api-errors.ts.
//
// Transports: Node and Deno speak HTTP/2 (h2.ts) to an https server, and go through undici
// when the cluster has a proxy-url (tls.ts's proxyDispatcher); Bun uses its own fetch with the TLS
// material in fetch's `tls` option (its `undici` module is a shim whose fetch ignores a
// dispatcher), and h1-stream.ts for watches.
import { setTimeout as nodeSetTimeout } from "node:timers";
import type { Dispatcher } from "undici";
import { UserAuth } from "./auth.ts";
import { ExecCredentialProvider } from "./exec-credential.ts";
import { h1Stream } from "./h1-stream.ts";
import { H2Transport, type H2Tls } from "./h2.ts";
import { RequestSlots } from "./request-slots.ts";
import { type BunTls, proxyDispatcher, readTls, type TlsSettings, toH2Tls } from "./tls.ts";
import { loadUndici } from "./undici.ts";
import { ClusterUnreachableError, networkErrorText, parseStatus } from "./api-errors.ts";
import { checkProxyUrl, KubeconfigError, type KubeconfigSourceKind, resolveKubeConfig, selectCurrent } from "./kubeconfig.ts";
import { describeError } from "../util/errors.ts";

const USER_AGENT = "oz-worker";
/** Default deadline of a non-streaming API request. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How long TLS material read from files is used before the files are read again (they may rotate). */
const TLS_REREAD_MS = 60_000;

export interface LoadKubeClientOptions {
  /** Explicit kubeconfig file (config `backend.kubernetes.kubeconfig`). */
  kubeconfig?: string;
  /** Environment to resolve from (tests); defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Deadline of non-streaming requests without their own signal. */
  requestTimeoutMs?: number;
  /** Where the in-cluster ServiceAccount's files are (tests); default /var/run/secrets/kubernetes.io/serviceaccount. */
  serviceAccountDir?: string;
}

/** Counts of every request this client sent, by Kubernetes verb. */
export interface RequestCounters {
  byVerb: Record<string, number>;
  total: number;
}

/** The parts of a fetch Response the kube code relies on (undici's and Bun's both fit). */
export interface KubeResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: { get(name: string): string | null; forEach(cb: (value: string, key: string) => void): void };
  readonly body: ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface KubeFetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /**
   * Deadline of the whole request in ms, on top of `signal`. Default: the client's request
   * timeout, except for watches (`watch=true`), which have none. `null` = none (streams that
   * bound themselves, like log reads).
   */
  timeoutMs?: number | null;
}

export interface ServerVersion {
  major?: string;
  minor?: string;
  gitVersion: string;
  platform?: string;
}

export interface KubeClient {
  /** Human-readable: `explicit file <path>`, `in-cluster`, `default rules (…), context X`. */
  readonly source: string;
  readonly sourceKind: KubeconfigSourceKind;
  readonly server: string;
  readonly context: string;
  /** The namespace of the current context (or the in-cluster ServiceAccount's), if any. */
  readonly contextNamespace?: string;
  readonly counters: RequestCounters;
  /** A raw authenticated request; `pathOrUrl` is relative to the server unless absolute. */
  fetch(pathOrUrl: string, init?: KubeFetchInit): Promise<KubeResponse>;
  /** GET /version; throws ClusterUnreachableError naming the kubeconfig source and server. */
  checkReachable(opts?: { timeoutMs?: number }): Promise<ServerVersion>;
}

/** A signal that aborts when either does. */
function anySignal(a: AbortSignal | undefined, b: AbortSignal): AbortSignal {
  return a ? AbortSignal.any([a, b]) : b;
}

/**
 * Like AbortSignal.timeout(ms), but its timer never keeps the process alive: Deno keeps
 * running until an AbortSignal.timeout with a listener fires. (node:timers gives an
 * unref-able timer on every runtime.)
 */
export function deadlineSignal(ms: number): AbortSignal {
  const controller = new AbortController();
  nodeSetTimeout(() => controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")), ms).unref();
  return controller.signal;
}

/** Resolves the kubeconfig (explicit file → in-cluster → default rules) and builds the client. */
export function loadKubeClient(opts: LoadKubeClientOptions = {}): KubeClient {
  const { config, sourceKind, describe } = resolveKubeConfig(opts);
  const source = describe(config.currentContext || "(none)");
  const { context, cluster, user } = selectCurrent(config, source);
  const proxyUrl = checkProxyUrl(cluster.proxyUrl, cluster.name, source);
  const auth = new UserAuth(user, source);
  const tls: TlsSettings = { cluster, user, source };
  // At start rather than at the first request: an unreadable token file, CA, certificate or
  // key, or an expired oidc token, is a KubeconfigError naming the file and the field.
  auth.headers();
  readTls(tls);
  return new Client({
    source,
    sourceKind,
    server: cluster.server.replace(/\/+$/, ""),
    context: context.name,
    contextNamespace: context.namespace,
    requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    proxyUrl,
    auth,
    tls,
    // The user's exec plugin runs here (exec-credential.ts says why).
    exec: user?.exec ? new ExecCredentialProvider(user.exec) : undefined,
  });
}

/** GET /version through the client; the typed error names the kubeconfig source and server. */
export function checkReachable(client: KubeClient, opts?: { timeoutMs?: number }): Promise<ServerVersion> {
  return client.checkReachable(opts);
}

// ---------------------------------------------------------------------------
// The HTTP path

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
/** Requests in flight through Bun's fetch (bunSlots says why), below kube-apiserver's 100 streams per connection. */
const BUN_MAX_IN_FLIGHT = 64;

interface ClientParts {
  source: string;
  sourceKind: KubeconfigSourceKind;
  server: string;
  context: string;
  contextNamespace: string | undefined;
  requestTimeoutMs: number;
  /** The cluster's proxy-url (Bun's fetch takes it per request; elsewhere tls.ts's proxyDispatcher). */
  proxyUrl: string | undefined;
  auth: UserAuth;
  tls: TlsSettings;
  /** The current user's exec plugin, if it has one. */
  exec: ExecCredentialProvider | undefined;
}

class Client implements KubeClient {
  readonly counters: RequestCounters = { byVerb: {}, total: 0 };
  readonly source: string;
  readonly sourceKind: KubeconfigSourceKind;
  readonly server: string;
  readonly context: string;
  readonly contextNamespace: string | undefined;
  readonly #requestTimeoutMs: number;
  readonly #proxyUrl: string | undefined;
  readonly #auth: UserAuth;
  readonly #tlsSettings: TlsSettings;
  readonly #exec: ExecCredentialProvider | undefined;
  /** The HTTP/2 path, unless the server is plain http or reached through a proxy. */
  readonly #h2: { origin: string; transport: H2Transport } | undefined;

  constructor(parts: ClientParts) {
    this.source = parts.source;
    this.sourceKind = parts.sourceKind;
    this.server = parts.server;
    this.context = parts.context;
    this.contextNamespace = parts.contextNamespace;
    this.#requestTimeoutMs = parts.requestTimeoutMs;
    this.#proxyUrl = parts.proxyUrl;
    this.#auth = parts.auth;
    this.#tlsSettings = parts.tls;
    this.#exec = parts.exec;
    // Node and Deno: HTTP/2 (h2.ts) to an https server without a proxy-url; through a proxy,
    // undici (tls.ts's proxyDispatcher: HTTP CONNECT or SOCKS5). Bun: its fetch, which multiplexes over
    // HTTP/2 when started with --experimental-http2-fetch (the compiled binary is), and each
    // watch on its own HTTP/1.1 connection (h1-stream.ts says why).
    if (!isBun && this.server.startsWith("https://") && !this.#proxyUrl) {
      const origin = new URL(this.server).origin;
      this.#h2 = { origin, transport: new H2Transport(origin) };
    }
  }

  async fetch(pathOrUrl: string, init: KubeFetchInit = {}): Promise<KubeResponse> {
    const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${this.server}${pathOrUrl.startsWith("/") ? "" : "/"}${pathOrUrl}`;
    const headers = { "User-Agent": USER_AGENT, ...this.#auth.headers(), ...init.headers };
    return this.#send(url, init.method ?? "GET", headers, init.body, init.signal, init.timeoutMs);
  }

  async checkReachable(opts: { timeoutMs?: number } = {}): Promise<ServerVersion> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const where = `the Kubernetes API server at ${this.server} (kubeconfig: ${this.source})`;
    let res: KubeResponse;
    try {
      res = await this.fetch("/version", { signal: deadlineSignal(timeoutMs) });
    } catch (err) {
      // The kubeconfig's credentials failed before a request was sent (an oidc token expired since start, a token file gone).
      if (err instanceof KubeconfigError) throw new ClusterUnreachableError(`cannot authenticate to ${where}: ${err.message}`, this.source, this.server, "auth", { cause: err });
      const text = describeError(err);
      const timeout = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
      const tls = /cert|tls|ssl|self.signed|verify/i.test(text);
      const kind = timeout ? "timeout" : tls ? "tls" : "network";
      const hint =
        kind === "timeout"
          ? `no answer within ${timeoutMs / 1000}s`
          : kind === "tls"
            ? `TLS failed (${text}); check the kubeconfig's certificate-authority and client certificate`
            : `${networkErrorText(err) ?? text}; check that the server is up and reachable from here`;
      throw new ClusterUnreachableError(`cannot reach ${where}: ${hint}`, this.source, this.server, kind, { cause: err });
    }
    if (res.status === 401 || res.status === 403) {
      const body = await res.text().catch(() => "");
      throw new ClusterUnreachableError(
        `${where} rejected the worker's credentials (HTTP ${res.status}${body ? `: ${parseStatus(body)?.message ?? body.slice(0, 200)}` : ""}); check the kubeconfig user or the ServiceAccount token`,
        this.source,
        this.server,
        "auth",
      );
    }
    if (res.status !== 200) {
      const body = await res.text().catch(() => "");
      throw new ClusterUnreachableError(`${where} answered HTTP ${res.status} to GET /version: ${body.slice(0, 200)}`, this.source, this.server, "http");
    }
    const v = JSON.parse(await res.text()) as ServerVersion;
    return v;
  }

  #count(method: string, url: string): void {
    const verb = verbOf(method, url);
    this.counters.byVerb[verb] = (this.counters.byVerb[verb] ?? 0) + 1;
    this.counters.total++;
  }

  async #send(
    url: string,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number | null | undefined,
    retry = true,
  ): Promise<KubeResponse> {
    this.#count(method, url);
    const isWatch = /[?&]watch=(true|1)(&|$)/.test(url) || /[?&]follow=true(&|$)/.test(url);
    const deadline = timeoutMs === undefined ? (isWatch ? null : this.#requestTimeoutMs) : timeoutMs;
    const timeout = deadline === null ? undefined : deadlineSignal(deadline);
    const sig = signal && timeout ? AbortSignal.any([signal, timeout]) : (signal ?? timeout);
    // The exec plugin runs within the request's deadline (a watch's: the request timeout).
    const cred = this.#exec ? await this.#exec.get(timeout ? sig : anySignal(signal, deadlineSignal(this.#requestTimeoutMs))) : undefined;
    const sent = cred?.token && !("Authorization" in headers || "authorization" in headers) ? { ...headers, Authorization: `Bearer ${cred.token}` } : headers;
    let res: KubeResponse;
    if (this.#h2 && url.startsWith(this.#h2.origin + "/")) {
      const certKey = cred?.cert ? `${cred.cert}\n${cred.key ?? ""}` : "";
      res = await this.#h2.transport.request({
        method,
        path: url.slice(this.#h2.origin.length),
        headers: sent,
        ...(body !== undefined ? { body } : {}),
        ...(sig ? { signal: sig } : {}),
        // Watches and log reads (no deadline of their own) are read as streams, not buffered whole.
        stream: isWatch || deadline === null,
        tlsKey: certKey,
        tls: async () => this.#h2Tls(cred?.cert, cred?.key),
      });
    } else if (isBun && isWatch && method === "GET" && url.startsWith("https://") && !this.#proxyUrl) {
      res = await h1Stream(url, sent, this.#h2Tls(cred?.cert, cred?.key), sig);
    } else if (isBun) {
      const tls = this.#cachedTls().tls;
      const init: Record<string, unknown> = { method, headers: sent, body, signal: sig, tls: cred?.cert ? { ...tls, cert: cred.cert, key: cred.key } : tls };
      if (this.#proxyUrl) init.proxy = this.#proxyUrl;
      const release = await this.#bunSlots.acquire(sig);
      try {
        res = (await globalThis.fetch(url, init as RequestInit)) as unknown as KubeResponse;
      } finally {
        release();
      }
    } else {
      const init: Record<string, unknown> = { method, headers: sent, body, signal: sig };
      if (this.#proxyUrl) init.dispatcher = await this.#proxyAgent(this.#proxyUrl, cred?.cert, cred?.key);
      const { fetch: undiciFetch } = await loadUndici();
      res = (await undiciFetch(url, init as Parameters<typeof undiciFetch>[1])) as unknown as KubeResponse;
    }
    // A refused exec token without (or before) its expiry: run the plugin again, once (as client-go does on 401).
    if (res.status === 401 && retry && cred?.token && sent !== headers) {
      await res.body?.cancel().catch(() => {});
      this.#exec!.invalidate(cred.token);
      return this.#send(url, method, headers, body, signal, timeoutMs, false);
    }
    return res;
  }

  /**
   * A place among Bun's requests in flight (until the response head). Bun's HTTP/2 fetch opens
   * another connection once one has as many streams as the server allows (kube-apiserver: 100);
   * fewer in flight keep it on one. Beyond that the API server would only queue them anyway.
   */
  readonly #bunSlots = new RequestSlots(BUN_MAX_IN_FLIGHT);

  /** TLS options of a new connection: the kubeconfig's (files read now), with an exec plugin's certificate if it gave one. */
  #h2Tls(cert: string | undefined, key: string | undefined): H2Tls {
    return toH2Tls(readTls(this.#tlsSettings), cert, key);
  }

  #tlsCache: { at: number; tls: BunTls; id: string } | undefined;

  /** The kubeconfig's TLS material, re-read every minute (files may rotate); `id` tells when it changed. */
  #cachedTls(): { tls: BunTls; id: string } {
    const now = Date.now();
    if (!this.#tlsCache || now - this.#tlsCache.at > TLS_REREAD_MS) {
      const tls = readTls(this.#tlsSettings);
      this.#tlsCache = { at: now, tls, id: JSON.stringify(tls) };
    }
    return this.#tlsCache;
  }

  #proxy: { id: string; agent: Promise<Dispatcher> } | undefined;

  /** Under Node and Deno: the proxy dispatcher for the current TLS material (a new one, and the old one closed, when it changes). */
  #proxyAgent(proxyUrl: string, cert: string | undefined, key: string | undefined): Promise<Dispatcher> {
    const base = this.#cachedTls();
    const id = `${base.id}\n${cert ?? ""}\n${key ?? ""}`;
    if (this.#proxy?.id !== id) {
      this.#proxy?.agent.then((old) => old.close()).catch(() => {});
      this.#proxy = { id, agent: proxyDispatcher(proxyUrl, toH2Tls(base.tls, cert, key)) };
    }
    return this.#proxy.agent;
  }
}

/** The Kubernetes verb of a request, from its method and URL (for counters). */
export function verbOf(method: string, url: string): string {
  const u = new URL(url, "https://x");
  const m = method.toUpperCase();
  if (u.searchParams.get("watch") === "true" || u.searchParams.get("watch") === "1") return "watch";
  const segs = u.pathname.split("/").filter(Boolean);
  // /api/v1/... or /apis/<group>/<version>/...
  let rest: string[];
  if (segs[0] === "api") rest = segs.slice(2);
  else if (segs[0] === "apis") rest = segs.slice(3);
  else return m === "GET" ? "get" : m.toLowerCase();
  if (rest[0] === "namespaces" && rest.length >= 3) rest = rest.slice(2);
  const collection = rest.length <= 1;
  switch (m) {
    case "GET":
      return collection ? "list" : "get";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return collection ? "deletecollection" : "delete";
    default:
      return m.toLowerCase();
  }
}
