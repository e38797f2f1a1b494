// HTTP/2 to the API server over `node:http2`, under Node and Deno: every request of a kind
// shares one TCP+TLS connection, as client-go does, instead of one connection (and one TLS
// handshake) per request in flight. Not under Bun: its node:http2 client sends no WINDOW_UPDATE
// for a stream (Bun 1.4.5: a 4 MB list or 1 MB of watch events stalls for good); Bun's own
// fetch speaks HTTP/2 instead (client.ts). Two sessions per client: one for
// ordinary requests, one for watches and followed logs, so long-lived streams can never take
// the stream slots or the connection's flow-control window that a create needs.
import { STATUS_CODES } from "node:http";
import http2 from "node:http2";
import type { KubeResponse } from "./client.ts";
import { untilAborted } from "../util/timers.ts";

/** TLS material of a session (strings, as read from the kubeconfig or an exec plugin). */
export interface H2Tls {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface H2Request {
  method: string;
  /** Path and query. */
  path: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /**
   * A long-lived or large stream (watch, log read): sent on the stream session and read with
   * backpressure. Anything else is read whole as it arrives, so its stream slot is free as soon
   * as the server has answered, whether or not the caller reads the body.
   */
  stream: boolean;
  /** Identity of the TLS material (e.g. an exec plugin's client certificate); a change opens a new session. */
  tlsKey: string;
  tls: () => Promise<H2Tls>;
}

/** The server's limit until its SETTINGS arrive (kube-apiserver advertises 100). */
const DEFAULT_MAX_STREAMS = 100;
/** Connection-level receive window: many paused streams cannot exhaust it. */
const SESSION_WINDOW = 32 << 20;
/** Per-stream receive window (a paused watch holds at most this much). */
const STREAM_WINDOW = 1 << 20;
const PING_TIMEOUT_MS = 5_000;
const FORBIDDEN_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "host", "upgrade", "proxy-connection", "content-length"]);

interface Session {
  /** Set once the TLS material is read and the connection is started. */
  session?: http2.ClientHttp2Session;
  readonly tlsKey: string;
  /** Resolves once the server's SETTINGS arrived (its stream limit is known). */
  readonly ready: Promise<void>;
  active: number;
  /** A PING is out (probe()). */
  probing?: boolean;
  /** No new streams (GOAWAY, error, close, or replaced by another TLS identity). */
  closed: boolean;
}

/** One lane (ordinary requests, or long-lived streams): its current session and the requests waiting for a stream slot. */
class Lane {
  private current: Session | undefined;
  private readonly waiting: { wake: () => void }[] = [];
  private readonly authority: string;
  constructor(authority: string) {
    this.authority = authority;
  }

  /** A session with a free stream slot for this TLS identity, counted as taken. */
  async acquire(req: H2Request): Promise<Session> {
    for (;;) {
      req.signal?.throwIfAborted();
      let s = this.current;
      if (s && (s.closed || s.tlsKey !== req.tlsKey)) {
        this.retire(s);
        s = undefined;
      }
      if (!s) s = this.current = this.open(req);
      try {
        await untilAborted(s.ready, req.signal);
      } catch (err) {
        if (s.active === 0) s.session?.unref();
        throw err;
      }
      if (s.closed) continue;
      const limit = Math.min(s.session!.remoteSettings.maxConcurrentStreams ?? DEFAULT_MAX_STREAMS, 1000);
      if (s.active < limit) {
        // Only a connection with requests in flight keeps the process alive.
        if (s.active++ === 0) s.session!.ref();
        return s;
      }
      const waiter = { wake: () => {} };
      const woken = new Promise<void>((wake) => (waiter.wake = wake));
      this.waiting.push(waiter);
      try {
        await untilAborted(woken, req.signal);
      } finally {
        // An aborted waiter must not take the wake-up meant for the next one.
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
      }
    }
  }

  /** An idle connection must not keep the process alive (a finished command exits). */
  release(s: Session): void {
    if (--s.active === 0) s.session?.unref();
    if (s === this.current || s.closed) this.waiting.shift()?.wake();
    if (s.closed && s.active === 0) s.session?.close();
  }

  /**
   * A request timed out: is the connection still alive? A PING unanswered within 5 s means a
   * dead connection (no RST ever came); drop it so the next request connects anew.
   */
  probe(s: Session): void {
    const session = s.session;
    if (!session || s.closed || s.probing) return;
    s.probing = true;
    const timer = setTimeout(() => {
      this.retire(s);
      session.destroy(new Error("the API server did not answer an HTTP/2 PING within 5 s"));
    }, PING_TIMEOUT_MS);
    const ok = session.ping((err) => {
      clearTimeout(timer);
      s.probing = false;
      if (err) this.retire(s);
    });
    if (!ok) {
      clearTimeout(timer);
      s.probing = false;
    }
  }

  private retire(s: Session): void {
    s.closed = true;
    if (this.current === s) this.current = undefined;
    if (s.active === 0) s.session?.close();
    // Whoever waits for a slot retries on a fresh session.
    for (const w of this.waiting.splice(0)) w.wake();
  }

  private open(req: H2Request): Session {
    let resolveReady!: () => void;
    let rejectReady!: (err: unknown) => void;
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    ready.catch(() => {});
    const s: Session = { tlsKey: req.tlsKey, ready, active: 0, closed: false };
    const fail = (err: unknown) => {
      rejectReady(err);
      this.retire(s);
    };
    // The TLS material may come from files (re-read for every new connection) or an exec plugin.
    req.tls().then((tls) => {
      const session = http2.connect(this.authority, { ...tls, settings: { initialWindowSize: STREAM_WINDOW, enablePush: false } });
      s.session = session;
      session.once("remoteSettings", () => {
        try {
          session.setLocalWindowSize(SESSION_WINDOW);
        } catch {
          // a runtime without it keeps the default window; streams still work
        }
        resolveReady();
      });
      session.on("error", fail);
      session.once("goaway", () => this.retire(s));
      session.once("close", () => fail(new Error("the HTTP/2 connection to the API server closed")));
      if (s.closed && s.active === 0) session.close();
    }, fail);
    return s;
  }

  close(): void {
    if (this.current) this.retire(this.current);
  }
}

export class H2Transport {
  private readonly api: Lane;
  private readonly streams: Lane;
  constructor(authority: string) {
    this.api = new Lane(authority);
    this.streams = new Lane(authority);
  }

  async request(req: H2Request): Promise<KubeResponse> {
    const lane = req.stream ? this.streams : this.api;
    // A stream the server refused before processing it (REFUSED_STREAM) is safe to send again, once.
    for (let attempt = 0; ; attempt++) {
      const s = await lane.acquire(req);
      try {
        return await send(s, req, () => lane.release(s), () => lane.probe(s));
      } catch (err) {
        if (attempt === 0 && (err as { code?: unknown }).code === "ERR_HTTP2_STREAM_ERROR" && /REFUSED_STREAM/.test(String((err as Error).message))) continue;
        throw err;
      }
    }
  }

  close(): void {
    this.api.close();
    this.streams.close();
  }
}

/** Sends one request on a session slot; `done` frees the slot when the stream ends, however it ends. */
function send(s: Session, req: H2Request, done: () => void, timedOut: () => void): Promise<KubeResponse> {
  const headers: http2.OutgoingHttpHeaders = { ":method": req.method, ":path": req.path };
  for (const [k, v] of Object.entries(req.headers)) {
    const name = k.toLowerCase();
    if (!FORBIDDEN_HEADERS.has(name)) headers[name] = v;
  }
  const body = req.body === undefined ? undefined : Buffer.from(req.body, "utf8");
  if (body) headers["content-length"] = body.byteLength;
  let stream: http2.ClientHttp2Stream;
  try {
    stream = s.session!.request(headers, { endStream: !body });
  } catch (err) {
    done();
    return Promise.reject(err);
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    req.signal?.removeEventListener("abort", onAbort);
    done();
  };
  stream.once("close", release);
  const res = new H2Response(stream, !req.stream);
  const onAbort = () => {
    const reason = req.signal!.reason;
    if ((reason as { name?: unknown } | undefined)?.name === "TimeoutError") timedOut();
    res.fail(reason);
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  };
  req.signal?.addEventListener("abort", onAbort, { once: true });
  if (body) stream.end(body);
  return new Promise<KubeResponse>((resolve, reject) => {
    res.onHead = (err) => (err ? reject(err) : resolve(res));
    if (req.signal?.aborted) onAbort();
  });
}

/** A fetch-like response over one HTTP/2 stream: the body is read either whole (text, arrayBuffer) or as a web stream. */
class H2Response implements KubeResponse {
  status = 0;
  statusText = "";
  readonly headers: KubeResponse["headers"];
  onHead: ((err?: unknown) => void) | undefined;
  private raw: http2.IncomingHttpHeaders = {};
  private error: unknown;
  private used = false;
  private webBody: ReadableStream<Uint8Array> | null | undefined;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  private rejectWhole: ((err: unknown) => void) | undefined;
  /** The whole body, read as it arrives (not a stream request). */
  private readonly complete: Promise<Buffer> | undefined;

  private readonly stream: http2.ClientHttp2Stream;
  constructor(stream: http2.ClientHttp2Stream, eager: boolean) {
    this.stream = stream;
    if (eager) {
      this.complete = this.read();
      this.complete.catch(() => {});
    }
    const raw = () => this.raw;
    this.headers = {
      get(name: string): string | null {
        const v = raw()[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(", ") : String(v);
      },
      forEach(cb: (value: string, key: string) => void): void {
        for (const [k, v] of Object.entries(raw())) if (!k.startsWith(":") && v !== undefined) cb(Array.isArray(v) ? v.join(", ") : String(v), k);
      },
    };
    stream.once("response", (h) => {
      this.raw = h;
      this.status = Number(h[":status"]);
      this.statusText = STATUS_CODES[this.status] ?? "";
      this.head();
    });
    stream.on("error", (err) => this.fail(err));
    stream.once("close", () => {
      if (!this.status) this.fail(new Error(`the HTTP/2 stream closed before a response (code ${stream.rstCode})`));
      else if (stream.rstCode && !stream.readableEnded) this.fail(new Error(`the HTTP/2 stream closed before the end of the response (code ${stream.rstCode})`));
    });
  }

  private head(err?: unknown): void {
    const cb = this.onHead;
    this.onHead = undefined;
    cb?.(err);
  }

  /** The request failed or was aborted: before the head, the request rejects; after it, the body errors. */
  fail(err: unknown): void {
    if (this.error !== undefined) return;
    this.error = err;
    this.head(err);
    this.rejectWhole?.(err);
    try {
      this.controller?.error(err);
    } catch {
      // already closed
    }
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.webBody !== undefined) return this.webBody;
    if (this.used) return (this.webBody = null);
    this.used = true;
    const complete = this.complete;
    if (complete) {
      this.webBody = new ReadableStream<Uint8Array>({
        async start(c) {
          const b = await complete;
          if (b.byteLength > 0) c.enqueue(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
          c.close();
        },
      });
      return this.webBody;
    }
    const stream = this.stream;
    this.webBody = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
          if (this.error !== undefined) return c.error(this.error);
          stream.on("data", (chunk: Buffer) => {
            try {
              c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            } catch {
              return;
            }
            if ((c.desiredSize ?? 1) <= 0) stream.pause();
          });
          stream.once("end", () => {
            try {
              c.close();
            } catch {
              // errored
            }
          });
        },
        pull: () => {
          stream.resume();
        },
        cancel: () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        },
      },
      { highWaterMark: 16 },
    );
    return this.webBody;
  }

  private whole(): Promise<Buffer> {
    if (this.used) return Promise.reject(new TypeError("response body already used"));
    this.used = true;
    return this.complete ?? this.read();
  }

  private read(): Promise<Buffer> {
    if (this.error !== undefined) return Promise.reject(this.error);
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      this.stream.on("data", (c: Buffer) => chunks.push(c));
      this.stream.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
      this.rejectWhole = reject;
    });
  }

  async text(): Promise<string> {
    return (await this.whole()).toString("utf8");
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.whole();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
}
