// Kubernetes client: one HTTP path for every request (typed API clients and raw streams
// alike) and request counters. Kubeconfig resolution is in kubeconfig.ts, typed errors in
// api-errors.ts.
//
// Why our own HTTP path: @kubernetes/client-node sends requests with undici's `fetch` and
// puts the cluster CA / client certificate into an undici `dispatcher`. Bun replaces the
// `undici` module with a shim whose fetch ignores the dispatcher, so under Bun every request
// to an API server with a private CA fails (SELF_SIGNED_CERT_IN_CHAIN) and client certs are
// never sent. Under Bun we pass the same TLS material through fetch's `tls` option instead;
// under Node (and Deno's npm compat) we keep undici + dispatcher exactly like the library.
import { setTimeout as nodeSetTimeout } from "node:timers";
import {
  createConfiguration,
  HttpMethod,
  type KubeConfig,
  RequestContext,
  ResponseContext,
  ServerConfiguration,
  setHeaderMiddleware,
  wrapHttpLibrary,
  type Configuration,
} from "@kubernetes/client-node";
import { fetch as undiciFetch } from "undici";
import { type ExecConfig, ExecCredentialProvider } from "./exec-credential.ts";
import { h1Stream } from "./h1-stream.ts";
import { H2Transport, type H2Tls } from "./h2.ts";
import { RequestSlots } from "./request-slots.ts";
import { type BunTls, readBunTls, toH2Tls } from "./tls.ts";
import { ClusterUnreachableError, networkErrorText, parseStatus } from "./api-errors.ts";
import { checkProxyUrl, inClusterNamespace, KubeconfigError, type KubeconfigSourceKind, resolveKubeConfig } from "./kubeconfig.ts";
import { describeError } from "../util/errors.ts";

const USER_AGENT = "oz-worker";
/** Default deadline of a non-streaming API request. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export interface LoadKubeClientOptions {
  /** Explicit kubeconfig file (config `backend.kubernetes.kubeconfig`). */
  kubeconfig?: string;
  /** Environment to resolve from (tests); defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Deadline of non-streaming requests without their own signal. */
  requestTimeoutMs?: number;
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
  method?: HttpMethod;
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

type ApiConstructor<T> = new (configuration: Configuration) => T;

export interface ServerVersion {
  major?: string;
  minor?: string;
  gitVersion: string;
  platform?: string;
}

export interface KubeClient {
  readonly kc: KubeConfig;
  /** Human-readable: `explicit file <path>`, `in-cluster`, `default rules (…), context X`. */
  readonly source: string;
  readonly sourceKind: KubeconfigSourceKind;
  readonly server: string;
  readonly context: string;
  /** The namespace of the current context (or the in-cluster ServiceAccount's), if any. */
  readonly contextNamespace?: string;
  readonly counters: RequestCounters;
  /** A typed API client (e.g. BatchV1Api) that sends through this client's HTTP path. */
  api<T>(cls: ApiConstructor<T>): T;
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
  const { kc, sourceKind, describe } = resolveKubeConfig(opts);
  const context = kc.getCurrentContext();
  const source = describe(context || "(none)");
  if (!context) throw new KubeconfigError(`the kubeconfig (${source}) has no current-context`, source);
  const ctxObj = kc.getContextObject(context);
  if (!ctxObj) throw new KubeconfigError(`the kubeconfig's current-context ${context} is not defined (${source})`, source);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new KubeconfigError(`context ${context} names no cluster with a server (${source})`, source);
  const proxyUrl = checkProxyUrl(cluster.proxyUrl, cluster.name, source);
  // The user's exec plugin runs here (exec-credential.ts says why), not in client-node.
  const user = kc.getCurrentUser();
  const exec = user?.exec ? new ExecCredentialProvider(user.exec as ExecConfig) : undefined;
  if (exec) {
    kc.loadFromOptions({
      clusters: kc.getClusters(),
      contexts: kc.getContexts(),
      currentContext: kc.getCurrentContext(),
      users: kc.getUsers().map((u) => (u === user ? { ...u, exec: undefined } : u)),
    });
  }
  let contextNamespace = ctxObj.namespace;
  if (sourceKind === "in-cluster" && !contextNamespace) contextNamespace = inClusterNamespace();
  return new Client(kc, source, sourceKind, cluster.server.replace(/\/+$/, ""), context, contextNamespace, opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, proxyUrl, exec);
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

class Client implements KubeClient {
  readonly counters: RequestCounters = { byVerb: {}, total: 0 };
  private readonly configuration: Configuration;

  readonly kc: KubeConfig;
  readonly source: string;
  readonly sourceKind: KubeconfigSourceKind;
  readonly server: string;
  readonly context: string;
  readonly contextNamespace: string | undefined;
  private readonly requestTimeoutMs: number;
  /** The cluster's proxy-url (Bun's fetch takes it per request; elsewhere the dispatcher has it). */
  private readonly proxyUrl: string | undefined;
  /** The current user's exec plugin, if it has one. */
  private readonly exec: ExecCredentialProvider | undefined;
  /** The HTTP/2 path, unless the server is plain http or reached through a proxy. */
  private readonly h2: { origin: string; transport: H2Transport } | undefined;
  /** Authenticate with headers only (no per-request undici dispatcher). */
  private readonly headersOnly: boolean;
  constructor(
    kc: KubeConfig,
    source: string,
    sourceKind: KubeconfigSourceKind,
    server: string,
    context: string,
    contextNamespace: string | undefined,
    requestTimeoutMs: number,
    proxyUrl: string | undefined,
    exec: ExecCredentialProvider | undefined,
  ) {
    this.kc = kc;
    this.source = source;
    this.sourceKind = sourceKind;
    this.server = server;
    this.context = context;
    this.contextNamespace = contextNamespace;
    this.requestTimeoutMs = requestTimeoutMs;
    this.proxyUrl = proxyUrl;
    this.exec = exec;
    // Node and Deno: HTTP/2 (h2.ts) to an https server without a proxy-url; through a proxy,
    // undici (which tunnels through HTTP CONNECT or SOCKS). Bun: its fetch, which multiplexes
    // over HTTP/2 when started with --experimental-http2-fetch (the compiled binary is), and
    // each watch on its own HTTP/1.1 connection (h1-stream.ts says why).
    if (!isBun && server.startsWith("https://") && !proxyUrl) {
      const origin = new URL(server).origin;
      this.h2 = { origin, transport: new H2Transport(origin) };
    }
    // Only undici needs client-node's dispatcher; Bun's fetch and h2.ts take the TLS material themselves.
    this.headersOnly = isBun || this.h2 !== undefined;
    const httpApi = wrapHttpLibrary({
      send: async (req: RequestContext): Promise<ResponseContext> => {
        const res = await this.send(req.getUrl(), req.getHttpMethod(), req.getHeaders(), req.getBody(), req.getSignal(), req.getDispatcher(), undefined);
        const headers: Record<string, string> = {};
        res.headers.forEach((value, name) => {
          headers[name] = value;
        });
        return new ResponseContext(res.status, headers, {
          text: () => res.text(),
          binary: async () => Buffer.from(await res.arrayBuffer()),
          stream: () => res.body,
        });
      },
    });
    this.configuration = createConfiguration({
      baseServer: new ServerConfiguration(server, {}),
      // client-node's own authentication also reads the TLS files and builds an undici Agent
      // for every request; only undici needs that.
      authMethods: { default: this.headersOnly ? { getName: () => "kubeconfig", applySecurityAuthentication: (ctx: RequestContext) => this.authenticate(ctx) } : kc },
      httpApi,
      middleware: [setHeaderMiddleware("User-Agent", USER_AGENT)],
    });
  }

  api<T>(cls: ApiConstructor<T>): T {
    return new cls(this.configuration);
  }

  async fetch(pathOrUrl: string, init: KubeFetchInit = {}): Promise<KubeResponse> {
    const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${this.server}${pathOrUrl.startsWith("/") ? "" : "/"}${pathOrUrl}`;
    const ctx = new RequestContext(url, init.method ?? HttpMethod.GET);
    await (this.headersOnly ? this.authenticate(ctx) : this.kc.applySecurityAuthentication(ctx));
    const headers = { "User-Agent": USER_AGENT, ...ctx.getHeaders(), ...init.headers };
    return this.send(url, init.method ?? HttpMethod.GET, headers, init.body, init.signal, ctx.getDispatcher(), init.timeoutMs);
  }

  async checkReachable(opts: { timeoutMs?: number } = {}): Promise<ServerVersion> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const where = `the Kubernetes API server at ${this.server} (kubeconfig: ${this.source})`;
    let res: KubeResponse;
    try {
      res = await this.fetch("/version", { signal: deadlineSignal(timeoutMs) });
    } catch (err) {
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

  /** The kubeconfig user's headers (basic auth, bearer token or token file, impersonation), as client-node sets them. */
  private async authenticate(ctx: RequestContext): Promise<void> {
    const user = this.kc.getCurrentUser();
    if (!user) return;
    if (user.username) ctx.setHeaderParam("Authorization", `Basic ${Buffer.from(`${user.username}:${user.password}`).toString("base64")}`);
    if (user.impersonateUser) ctx.setHeaderParam("Impersonate-User", user.impersonateUser);
    const opts: { headers: Record<string, string> } = { headers: {} };
    // Public in client-node's JavaScript (token, token file, auth providers), not in its types.
    await (this.kc as unknown as { applyAuthorizationHeader(o: object): Promise<void> }).applyAuthorizationHeader(opts);
    for (const [k, v] of Object.entries(opts.headers)) ctx.setHeaderParam(k, v);
  }

  private count(method: string, url: string): void {
    const verb = verbOf(method, url);
    this.counters.byVerb[verb] = (this.counters.byVerb[verb] ?? 0) + 1;
    this.counters.total++;
  }

  private async send(
    url: string,
    method: string,
    headers: Record<string, string>,
    body: unknown,
    signal: AbortSignal | undefined,
    dispatcher: unknown,
    timeoutMs: number | null | undefined,
    retry = true,
  ): Promise<KubeResponse> {
    this.count(method, url);
    const isWatch = /[?&]watch=(true|1)(&|$)/.test(url) || /[?&]follow=true(&|$)/.test(url);
    const deadline = timeoutMs === undefined ? (isWatch ? null : this.requestTimeoutMs) : timeoutMs;
    const timeout = deadline === null ? undefined : deadlineSignal(deadline);
    const sig = signal && timeout ? AbortSignal.any([signal, timeout]) : (signal ?? timeout);
    const b = body === undefined || body === null ? undefined : typeof body === "string" ? body : String(body);
    // The exec plugin runs within the request's deadline (a watch's: the request timeout).
    const cred = this.exec ? await this.exec.get(timeout ? sig : anySignal(signal, deadlineSignal(this.requestTimeoutMs))) : undefined;
    const sent = cred?.token && !("Authorization" in headers || "authorization" in headers) ? { ...headers, Authorization: `Bearer ${cred.token}` } : headers;
    let res: KubeResponse;
    if (this.h2 && url.startsWith(this.h2.origin + "/")) {
      const certKey = cred?.cert ? `${cred.cert}\n${cred.key ?? ""}` : "";
      res = await this.h2.transport.request({
        method,
        path: url.slice(this.h2.origin.length),
        headers: sent,
        ...(b !== undefined ? { body: b } : {}),
        ...(sig ? { signal: sig } : {}),
        // Watches and log reads (no deadline of their own) are read as streams, not buffered whole.
        stream: isWatch || deadline === null,
        tlsKey: certKey,
        tls: () => this.h2Tls(cred?.cert, cred?.key),
      });
    } else if (isBun && isWatch && method === "GET" && url.startsWith("https://") && !this.proxyUrl) {
      res = await h1Stream(url, sent, await this.h2Tls(cred?.cert, cred?.key), sig);
    } else if (isBun) {
      const tls = await this.bunTls();
      const init: Record<string, unknown> = { method, headers: sent, body: b, signal: sig, tls: cred?.cert ? { ...tls, cert: cred.cert, key: cred.key } : tls };
      if (this.proxyUrl) init.proxy = this.proxyUrl;
      const release = await this.bunSlots.acquire(sig);
      try {
        res = (await globalThis.fetch(url, init as RequestInit)) as unknown as KubeResponse;
      } finally {
        release();
      }
    } else {
      const init: Record<string, unknown> = { method, headers: sent, body: b, signal: sig };
      const d = cred?.cert ? await this.certDispatcher(cred.cert, cred.key ?? "") : dispatcher;
      if (d) init.dispatcher = d;
      res = (await undiciFetch(url, init as Parameters<typeof undiciFetch>[1])) as unknown as KubeResponse;
    }
    // A refused exec token without (or before) its expiry: run the plugin again, once (as client-go does on 401).
    if (res.status === 401 && retry && cred?.token && sent !== headers) {
      await res.body?.cancel().catch(() => {});
      this.exec!.invalidate(cred.token);
      return this.send(url, method, headers, body, signal, dispatcher, timeoutMs, false);
    }
    return res;
  }

  /**
   * A place among Bun's requests in flight (until the response head). Bun's HTTP/2 fetch opens
   * another connection once one has as many streams as the server allows (kube-apiserver: 100);
   * fewer in flight keep it on one. Beyond that the API server would only queue them anyway.
   */
  private readonly bunSlots = new RequestSlots(BUN_MAX_IN_FLIGHT);

  /** TLS options of a new HTTP/2 connection: the kubeconfig's (files read now), with an exec plugin's certificate if it gave one. */
  private async h2Tls(cert: string | undefined, key: string | undefined): Promise<H2Tls> {
    return toH2Tls(await readBunTls(this.kc), cert, key);
  }

  private certDispatcherCache: { cert: string; dispatcher: Promise<unknown> } | undefined;

  /** Under Node and Deno: client-node's dispatcher for the cluster, with the exec plugin's client certificate. */
  private certDispatcher(cert: string, key: string): Promise<unknown> {
    if (this.certDispatcherCache?.cert !== cert) {
      const dispatcher = readBunTls(this.kc).then((tls) =>
        // createDispatcher is private in client-node's types; it is what applySecurityAuthentication uses.
        (this.kc as unknown as { createDispatcher(cluster: unknown, options: object): unknown }).createDispatcher(this.kc.getCurrentCluster(), {
          ...tls,
          servername: tls.serverName,
          cert,
          key,
        }),
      );
      this.certDispatcherCache = { cert, dispatcher };
    }
    return this.certDispatcherCache.dispatcher;
  }

  private tlsCache: { at: number; tls: Promise<BunTls> } | undefined;

  /** The kubeconfig's TLS material in Bun's fetch `tls` shape, re-read every minute (files may rotate). */
  private bunTls(): Promise<BunTls> {
    const now = Date.now();
    if (!this.tlsCache || now - this.tlsCache.at > 60_000) {
      const tls = readBunTls(this.kc);
      this.tlsCache = { at: now, tls };
      tls.catch(() => {
        if (this.tlsCache?.tls === tls) this.tlsCache = undefined;
      });
    }
    return this.tlsCache.tls;
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
