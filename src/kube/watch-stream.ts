// One Kubernetes watch request as an async stream of events, on any fetch that returns a web
// ReadableStream (undici under Node, Bun's fetch). Why not client-node's `Watch`: it gives no
// hook to count open connections, drops unparsable lines silently, and its 30 s inactivity
// timeout (private) cuts quiet watches long before the API server's periodic bookmarks arrive.
import { KubeApiError, responseError } from "./api-errors.ts";
import type { KubeClient } from "./client.ts";
import { deletedMetadataText, withoutManagedFields } from "./slim.ts";

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
  /**
   * The object of a DELETED event is read only for its metadata (a cache that forgets it):
   * the rest of the line is not parsed. Objects whose metadata is not followed by a `spec`
   * are parsed whole.
   */
  deletedMetadataOnly?: boolean;
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
  // One timer, re-armed only when it fires (not for every chunk): it aborts once no byte came for inactivityMs.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastData = 0;
  const check = () => {
    const quiet = Date.now() - lastData;
    if (quiet >= inactivityMs) local.abort(new DOMException(`no data for ${inactivityMs} ms`, "TimeoutError"));
    else timer = setTimeout(check, inactivityMs - quiet);
  };
  const arm = () => {
    lastData = Date.now();
    timer ??= setTimeout(check, inactivityMs);
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
    const lines = new LineSplitter();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arm();
      for (let line = lines.push(value); line !== undefined; line = lines.next()) {
        yield parseWatchLine(line, ctx.resource, opts.namespace, opts.deletedMetadataOnly);
      }
    }
    const rest = lines.end();
    if (rest !== undefined) yield parseWatchLine(rest, ctx.resource, opts.namespace, opts.deletedMetadataOnly);
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

/**
 * Splits a byte stream into its non-blank lines (newline-delimited JSON), decoding each line
 * once it is complete: no growing string buffer, no re-scan of text already searched. `push` a
 * chunk, then call `next` until it returns undefined; `end` gives a last unterminated line.
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder();
  /** Bytes of an unfinished line, from earlier chunks. */
  private pending: Uint8Array[] = [];
  private chunk: Uint8Array = new Uint8Array(0);
  private pos = 0;

  /** Takes the next chunk (the previous one must have been read to its end); returns its first line. */
  push(chunk: Uint8Array): string | undefined {
    this.chunk = chunk;
    this.pos = 0;
    return this.next();
  }

  next(): string | undefined {
    const chunk = this.chunk;
    while (this.pos < chunk.length) {
      const nl = chunk.indexOf(10, this.pos);
      if (nl < 0) {
        // Copied: the reader may reuse the chunk's memory.
        this.pending.push(Uint8Array.prototype.slice.call(chunk, this.pos));
        this.pos = chunk.length;
        return undefined;
      }
      const line = this.take(chunk.subarray(this.pos, nl));
      this.pos = nl + 1;
      if (line !== undefined) return line;
    }
    return undefined;
  }

  end(): string | undefined {
    return this.take(new Uint8Array(0));
  }

  private take(tail: Uint8Array): string | undefined {
    let bytes = tail;
    if (this.pending.length > 0) {
      this.pending.push(tail);
      bytes = new Uint8Array(this.pending.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of this.pending) {
        bytes.set(b, at);
        at += b.length;
      }
      this.pending = [];
    }
    const line = this.decoder.decode(bytes).trim();
    return line ? line : undefined;
  }
}

/** One line of a watch response as an event; ERROR events throw (410 as WatchExpiredError). */
export function parseWatchLine(line: string, resource: string, namespace: string | undefined, deletedMetadataOnly = false): RawWatchEvent {
  let ev: unknown;
  try {
    const head = deletedMetadataOnly ? deletedMetadataText(line) : undefined;
    ev = JSON.parse(head ?? withoutManagedFields(line));
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
