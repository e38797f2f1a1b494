// A container's logs, the TAIL kept: the response is streamed and only the last `maxBytes`
// stay in memory (limitBytes would keep the head), so a 50 MB log costs at most maxBytes plus
// one chunk. The read is bounded in time as well.
import { KubeApiError, responseError } from "./api-errors.ts";
import type { KubeClient } from "./client.ts";
import { describeError } from "../util/errors.ts";

export const DEFAULT_LOG_MAX_BYTES = 1024 * 1024;
export const DEFAULT_LOG_TIMEOUT_MS = 30_000;

export interface ReadLogsOptions {
  /** Bytes of the tail to keep (default 1 MiB). */
  maxBytes?: number;
  /** Give up reading after this long and return what arrived (default 30 s). */
  timeoutMs?: number;
  /** Logs of the previous instance of a restarted container. */
  previous?: boolean;
  signal?: AbortSignal;
  /** The registered secrets: the end of one at the cut edge is redacted too. */
  secrets?: CutSecrets;
}

/** The part of the log redactor (src/telemetry/secrets.ts SecretRegistry) a cut tail needs. */
export interface CutSecrets {
  redactCutStart(text: string): string;
}

export interface ContainerLogs {
  /** The tail, prefixed with `[... N bytes truncated ...]\n` when cut. */
  text: string;
  /** Bytes received from the API server. */
  totalBytes: number;
  /** Bytes dropped from the head. */
  truncatedBytes: number;
  /** The time bound hit before the log ended. */
  timedOut: boolean;
}

/** Keeps the last `max` bytes of a byte stream in a bounded list of chunks. */
export class TailBuffer {
  private chunks: Uint8Array[] = [];
  private size = 0;
  total = 0;

  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }

  push(chunk: Uint8Array): void {
    this.total += chunk.byteLength;
    if (this.max <= 0) return;
    if (chunk.byteLength >= this.max) {
      this.chunks = [chunk.slice(chunk.byteLength - this.max)];
      this.size = this.max;
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
    while (this.size > this.max) {
      const first = this.chunks[0]!;
      const over = this.size - this.max;
      if (first.byteLength <= over) {
        this.chunks.shift();
        this.size -= first.byteLength;
      } else {
        this.chunks[0] = first.subarray(over);
        this.size -= over;
      }
    }
  }

  get dropped(): number {
    return this.total - this.size;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    return out;
  }

  /**
   * The kept bytes as UTF-8 with the truncation marker; a character cut at the start is
   * skipped, and so is the end of a secret the cut went through (see redactCutStart).
   */
  text(secrets?: CutSecrets): string {
    let b = this.bytes();
    let dropped = this.dropped;
    if (dropped > 0) {
      let skip = 0;
      while (skip < b.length && skip < 4 && (b[skip]! & 0xc0) === 0x80) skip++;
      b = b.subarray(skip);
      dropped += skip;
    }
    const body = new TextDecoder().decode(b);
    if (dropped === 0) return body;
    return `${truncationMarker(dropped)}\n${secrets ? secrets.redactCutStart(body) : body}`;
  }
}

export function truncationMarker(bytes: number): string {
  return `[... ${bytes} bytes truncated ...]`;
}

/** Reads the tail of one container's log (GET pods/log), streaming. */
export async function readContainerLogs(
  client: KubeClient,
  namespace: string,
  pod: string,
  container: string,
  opts: ReadLogsOptions = {},
): Promise<ContainerLogs> {
  const maxBytes = opts.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_LOG_TIMEOUT_MS;
  const q = new URLSearchParams({ container });
  if (opts.previous) q.set("previous", "true");
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(new DOMException(`log read exceeded ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);
  const onAbort = () => ac.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const tail = new TailBuffer(maxBytes);
  const ctx = { verb: "get", resource: "pods/log", namespace, name: `${pod} (container ${container})` };
  try {
    const res = await client.fetch(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log?${q}`, {
      signal: ac.signal,
      timeoutMs: null,
      headers: { Accept: "text/plain, */*" },
    });
    if (res.status !== 200) throw await responseError(res, ctx);
    if (res.body) {
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (value) tail.push(value);
        }
      } catch (err) {
        if (!timedOut) throw err;
      } finally {
        try {
          reader.releaseLock();
        } catch {
          // already released
        }
      }
    }
  } catch (err) {
    if (!timedOut) {
      if (err instanceof KubeApiError) throw err;
      throw new Error(`cannot read logs of container ${container} in pod ${pod} (namespace ${namespace}): ${describeError(err)}`, {
        cause: err,
      });
    }
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
    ac.abort();
  }
  let text = tail.text(opts.secrets);
  if (timedOut) text += `\n[... log read stopped after ${timeoutMs / 1000}s ...]`;
  return { text, totalBytes: tail.total, truncatedBytes: tail.dropped, timedOut };
}
