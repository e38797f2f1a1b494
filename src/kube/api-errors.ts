// Typed errors of Kubernetes API requests: KubeApiError (with the Status object's reason),
// ClusterUnreachableError, and the same words for well-known socket errors on every runtime.
import type { KubeResponse } from "./client.ts";
import { describeError } from "../util/errors.ts";

/** The API server cannot be reached (network, TLS, auth or server error). The CLI maps it to exit 3. */
export class ClusterUnreachableError extends Error {
  override name = "ClusterUnreachableError";
  readonly source: string;
  readonly server: string;
  readonly kind: "network" | "timeout" | "tls" | "auth" | "http";
  constructor(
    message: string,
    source: string,
    server: string,
    kind: "network" | "timeout" | "tls" | "auth" | "http",
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.source = source;
    this.server = server;
    this.kind = kind;
  }
}

/** A Kubernetes API request failed with an HTTP status (or without one: status 0). */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  /** HTTP status; 0 when the request never got an answer. */
  readonly status: number;
  /** The Status object's reason (AlreadyExists, NotFound, Forbidden, Expired, …). */
  readonly reason: string | undefined;
  readonly verb: string;
  readonly resource: string;
  readonly namespace?: string;
  readonly objectName?: string;
  constructor(
    message: string,
    status: number,
    reason: string | undefined,
    verb: string,
    resource: string,
    namespace?: string,
    objectName?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = status;
    this.reason = reason;
    this.verb = verb;
    this.resource = resource;
    this.namespace = namespace;
    this.objectName = objectName;
  }
  get notFound(): boolean {
    return this.status === 404;
  }
  get alreadyExists(): boolean {
    return this.status === 409 && this.reason === "AlreadyExists";
  }
  get conflict(): boolean {
    return this.status === 409;
  }
  get forbidden(): boolean {
    return this.status === 403;
  }
  get gone(): boolean {
    return this.status === 410;
  }
}

export interface KubeErrorContext {
  verb: string;
  resource: string;
  namespace?: string;
  name?: string;
}

/** Turns anything an API call threw into a KubeApiError with a readable message. */
export function toKubeApiError(err: unknown, ctx: KubeErrorContext): KubeApiError {
  if (err instanceof KubeApiError) return err;
  // Not an HTTP answer (those become KubeApiError in responseError): a network error, an abort, a failed exec plugin.
  return new KubeApiError(formatApiError(0, undefined, describeError(err), ctx), 0, undefined, ctx.verb, ctx.resource, ctx.namespace, ctx.name, {
    cause: err,
  });
}

/** Builds the error for a non-2xx response of a raw request. */
export async function responseError(res: KubeResponse, ctx: KubeErrorContext): Promise<KubeApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // body unreadable: the status says enough
  }
  const parsed = parseStatus(text);
  const detail = parsed?.message ?? (text.slice(0, 500) || res.statusText || `HTTP ${res.status}`);
  return new KubeApiError(formatApiError(res.status, parsed?.reason, detail, ctx), res.status, parsed?.reason, ctx.verb, ctx.resource, ctx.namespace, ctx.name);
}

function formatApiError(status: number, reason: string | undefined, detail: string, ctx: KubeErrorContext): string {
  const what = `${ctx.verb} ${ctx.resource}${ctx.name ? ` ${ctx.name}` : ""}${ctx.namespace ? ` in namespace ${ctx.namespace}` : ""}`;
  if (status === 403) {
    return (
      `forbidden: cannot ${what} (${detail}); check that the worker's Role grants "${ctx.verb}" on ` +
      `"${ctx.resource}"${ctx.namespace ? ` in namespace ${ctx.namespace}` : ""} and is bound to its ServiceAccount`
    );
  }
  if (status === 401) return `unauthorized: cannot ${what} (${detail}); check the kubeconfig's credentials or the ServiceAccount token`;
  if (status === 0) return `cannot ${what}: ${detail}`;
  return `cannot ${what}: HTTP ${status}${reason ? ` ${reason}` : ""}: ${detail}`;
}

export interface StatusLike {
  reason?: string;
  message?: string;
  code?: number;
}

export function parseStatus(body: unknown): StatusLike | undefined {
  let obj: unknown = body;
  if (typeof body === "string") {
    try {
      obj = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (!obj || typeof obj !== "object") return undefined;
  const o = obj as Record<string, unknown>;
  return {
    ...(typeof o.reason === "string" ? { reason: o.reason } : {}),
    ...(typeof o.message === "string" ? { message: o.message } : {}),
    ...(typeof o.code === "number" ? { code: o.code } : {}),
  };
}

const NETWORK_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
};

/**
 * The same words for a well-known socket error on every runtime ("connection refused
 * (ECONNREFUSED)"), whose messages differ (undici's "fetch failed", Bun's "Unable to
 * connect"); undefined for any other error.
 */
export function networkErrorText(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e && typeof e === "object"; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_ERRORS[code]) return `${NETWORK_ERRORS[code]} (${code})`;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
