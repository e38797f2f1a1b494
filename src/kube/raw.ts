// Raw JSON requests through the kube client's HTTP path, keeping what the generated API
// clients drop: the HTTP status, the Status object of an error, and the API server's
// `Warning` response headers (Pod Security warn/audit, unknown fields, deprecations).
import type { HttpMethod } from "@kubernetes/client-node";
import type { KubeClient } from "./client.ts";

export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
  };
}

export interface RawResult<T = unknown> {
  status: number;
  ok: boolean;
  /** The parsed body on success. */
  body?: T;
  /** The Status object of an error answer (or a synthesized one for a non-JSON body). */
  error?: KubeStatus;
  /** The texts of the `Warning` headers (`299 - "text"` → `text`), in order. */
  warnings: string[];
}

export interface RawRequest {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Content type of a PATCH body. */
  contentType?: string;
  signal?: AbortSignal;
}

/** One request; network failures throw (the caller decides what unreachable means), HTTP errors do not. */
export async function kubeRequest<T = unknown>(kube: Pick<KubeClient, "fetch">, req: RawRequest): Promise<RawResult<T>> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) q.set(k, v);
  const qs = q.toString();
  const method = req.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  if (req.body !== undefined) headers["Content-Type"] = req.contentType ?? "application/json";
  const res = await kube.fetch(`${req.path}${qs ? `?${qs}` : ""}`, {
    method: method as HttpMethod,
    headers,
    ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
  });
  const warnings = parseWarningHeader(res.headers.get("warning"));
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const ok = res.status >= 200 && res.status < 300;
  if (ok) return { status: res.status, ok, body: parsed as T, warnings };
  const error: KubeStatus =
    parsed && typeof parsed === "object" && (parsed as KubeStatus).kind === "Status"
      ? (parsed as KubeStatus)
      : { code: res.status, message: text.trim().slice(0, 500) || res.statusText || `HTTP ${res.status}` };
  return { status: res.status, ok, error, warnings };
}

/**
 * The texts of a (possibly combined) `Warning` header value. Each warning is
 * `<code> <agent> "<text>" ["<date>"]` (RFC 7234); several are joined with ", ", and texts
 * contain commas, so the quoted strings are read rather than split.
 */
export function parseWarningHeader(value: string | null | undefined): string[] {
  if (!value) return [];
  const out: string[] = [];
  const re = /(\d{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"(?:\s+"[^"]*")?/g;
  for (let m = re.exec(value); m; m = re.exec(value)) out.push(m[3]!.replace(/\\(.)/g, "$1"));
  return out;
}
