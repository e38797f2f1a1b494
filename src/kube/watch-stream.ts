// One Kubernetes watch request as an async stream of events, on any fetch that returns a web
// ReadableStream (undici under Node, Bun's fetch). Why not client-node's `Watch`: it gives no
// hook to count open connections, drops unparsable lines silently, and its 30 s inactivity
// timeout (private) cuts quiet watches long before the API server's periodic bookmarks arrive.
import { KubeApiError, responseError } from "./api-errors.ts";
import type { KubeClient } from "./client.ts";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface RawWatchEvent {
  type: WatchEventType;
  object: Record<string, unknown>;
}

export interface WatchParams {
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** Server-side timeout: the API server ends the stream cleanly after this long. */
  timeoutSeconds?: number;
}

export interface WatchStreamOptions {
  signal?: AbortSignal;
  /** Abort when no byte arrived for this long (a dead connection). Default: timeoutSeconds + 30 s. */
  inactivityMs?: number;
  /** Called once the API server accepted the watch (HTTP 200). */
  onOpen?: () => void;
  resource?: string;
  namespace?: string;
}

/** The API server said the resourceVersion is too old (HTTP 410 or an ERROR event with code 410). */
export class WatchExpiredError extends KubeApiError {
  override name = "WatchExpiredError";
}

/**
 * Streams the events of one watch request until the server ends it (normal return), the signal
 * aborts it, or it fails (throws; 410 as WatchExpiredError). ERROR events other than 410 throw
 * a KubeApiError with the Status code.
 */
export async function* watchStream(
  client: KubeClient,
  path: string,
  params: WatchParams,
  opts: WatchStreamOptions = {},
): AsyncGenerator<RawWatchEvent, void, undefined> {
  const q = new URLSearchParams({ watch: "true" });
  if (params.labelSelector) q.set("labelSelector", params.labelSelector);
  if (params.fieldSelector) q.set("fieldSelector", params.fieldSelector);
  if (params.resourceVersion) q.set("resourceVersion", params.resourceVersion);
  if (params.allowWatchBookmarks) q.set("allowWatchBookmarks", "true");
  if (params.timeoutSeconds !== undefined) q.set("timeoutSeconds", String(params.timeoutSeconds));
  const ctx = { verb: "watch", resource: opts.resource ?? path.split("/").pop() ?? path, ...(opts.namespace ? { namespace: opts.namespace } : {}) };

  const inactivityMs = opts.inactivityMs ?? ((params.timeoutSeconds ?? 1800) + 30) * 1000;
  const local = new AbortController();
  const onOuterAbort = () => local.abort(opts.signal?.reason);
  if (opts.signal?.aborted) return;
  opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => local.abort(new DOMException(`no data for ${inactivityMs} ms`, "TimeoutError")), inactivityMs);
  };

  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    arm();
    const res = await client.fetch(`${path}?${q}`, { signal: local.signal, headers: { Accept: "application/json" } });
    if (res.status !== 200) {
      const err = await responseError(res, ctx);
      if (err.status === 410) throw new WatchExpiredError(err.message, 410, err.reason, "watch", ctx.resource, opts.namespace);
      throw err;
    }
    if (!res.body) throw new KubeApiError(`watch ${ctx.resource}: empty response body`, 200, undefined, "watch", ctx.resource, opts.namespace);
    opts.onOpen?.();
    arm();
    reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arm();
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield parseEvent(line, ctx.resource, opts.namespace);
      }
    }
    const rest = (buf + decoder.decode()).trim();
    if (rest) yield parseEvent(rest, ctx.resource, opts.namespace);
  } catch (err) {
    // A caller's abort (close) ends the stream quietly.
    if (opts.signal?.aborted) return;
    throw err;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onOuterAbort);
    local.abort();
    try {
      reader?.releaseLock();
    } catch {
      // already released
    }
  }
}

function parseEvent(line: string, resource: string, namespace: string | undefined): RawWatchEvent {
  let ev: unknown;
  try {
    ev = JSON.parse(line);
  } catch {
    throw new KubeApiError(`watch ${resource}: unparsable event line: ${line.slice(0, 200)}`, 200, undefined, "watch", resource, namespace);
  }
  const e = ev as { type?: unknown; object?: unknown };
  if (typeof e.type !== "string" || !e.object || typeof e.object !== "object") {
    throw new KubeApiError(`watch ${resource}: malformed event: ${line.slice(0, 200)}`, 200, undefined, "watch", resource, namespace);
  }
  if (e.type === "ERROR") {
    const st = e.object as { code?: number; reason?: string; message?: string };
    const code = typeof st.code === "number" ? st.code : 500;
    const msg = `watch ${resource}: ERROR event ${code}${st.reason ? ` ${st.reason}` : ""}: ${st.message ?? ""}`;
    if (code === 410) throw new WatchExpiredError(msg, 410, st.reason, "watch", resource, namespace);
    throw new KubeApiError(msg, code, st.reason, "watch", resource, namespace);
  }
  return { type: e.type as WatchEventType, object: e.object as Record<string, unknown> };
}
