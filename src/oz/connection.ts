// The worker's WebSocket connection to the Oz control plane (oz-protocol.md,
// "Connection" and "Envelope"): Bearer auth on the upgrade, `worker_id` query
// parameter, `{"type","data"}` text frames, keepalive (ping every 30 s, dead
// after 60 s without a pong or a message, 10 s write deadline), reconnect with
// exponential backoff 1 s -> 60 s with jitter (reset after a successful dial),
// and an ordered, bounded outbox that survives disconnects (its policy and the
// in-flight accounting: outbox.ts; the envelope: envelope.ts). Every outbox
// drop is logged at error with the message type and task_id and counted in
// `stats.dropped`.
//
// Nothing here throws out of a callback: socket events, timers and the
// caller's handlers are all guarded.
import {
  openSocket as defaultOpenSocket,
  type OpenSocket,
  type SocketError,
  type SocketLike,
  utf8Length,
} from "./websocket.ts";
import { parseEnvelope } from "./envelope.ts";
import { InFlight, Outbox, type OutboxEntry, OzMessageDropped } from "./outbox.ts";
import { type Logger, serverText } from "../telemetry/log.ts";
import { errorText } from "../util/errors.ts";
import { nextBackoff, type BackoffOptions } from "../util/timers.ts";
import { redactUrl, safeDecode } from "../util/url.ts";

// ---------------------------------------------------------------- types

export type ReconnectReason = "dial_error" | "read_error" | "keepalive_timeout" | "server_closed" | "write_timeout";
export const RECONNECT_REASONS: readonly ReconnectReason[] = [
  "dial_error",
  "read_error",
  "keepalive_timeout",
  "server_closed",
  "write_timeout",
];

/** Server -> worker types delivered to onMessage by default; others are logged and ignored. */
export const SERVER_MESSAGE_TYPES: readonly string[] = ["task_assignment", "task_cancellation"];
/** Worker -> server types the outbox evicts last. */
export const TERMINAL_MESSAGE_TYPES: readonly string[] = ["task_completed", "task_failed"];

export interface OzConnectionOptions {
  /** The worker WebSocket URL (ws:, wss:, http: or https:); `worker_id` is appended. */
  url: string;
  apiKey: string;
  workerId: string;
  logger: Pick<Logger, "debug" | "info" | "warn" | "error">;
  /** A well-formed frame of a known type. May be async; errors are logged. */
  onMessage(type: string, data: Record<string, unknown>): void | Promise<void>;
  onConnectedChange?(connected: boolean): void;
  /** Called each time a reconnect is scheduled, with why (for metrics). */
  onReconnect?(reason: ReconnectReason): void;
  /** Types passed to onMessage; default SERVER_MESSAGE_TYPES; null passes every type. */
  knownTypes?: readonly string[] | null;
  /** Types the outbox drops last when full; default TERMINAL_MESSAGE_TYPES. */
  protectedTypes?: readonly string[];
  pingIntervalMs?: number;
  deadAfterMs?: number;
  writeTimeoutMs?: number;
  /** Deadline for the TCP/TLS connect plus the upgrade. Default 30000. */
  dialTimeoutMs?: number;
  backoff?: Partial<BackoffOptions>;
  outboxLimit?: number;
  /** Stop writing while the socket holds this many unsent bytes. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** For tests: the jitter source. */
  random?: () => number;
  /** For tests: replaces the runtime WebSocket adapter. */
  openSocket?: OpenSocket;
}

export interface ConnectionStats {
  /** Reconnects scheduled (each failed dial or lost connection counts once). */
  reconnects: number;
  reconnectsByReason: Record<ReconnectReason, number>;
  /** Messages waiting in the outbox now. */
  queued: number;
  /** Messages dropped (outbox bound, unserialisable, sent after stop). */
  dropped: number;
  /** Messages handed to a socket. */
  sent: number;
  /** Messages put back into the outbox because their connection died before they left the process. */
  requeued: number;
  /** Frames received (any kind). */
  received: number;
  malformed: number;
  unknown: number;
}

export interface StopOptions {
  /** Upper bound for flushing the outbox and the close handshake. Default 5000. */
  timeoutMs?: number;
}

export interface StopResult {
  /** Messages still in the outbox (not sent) when the connection stopped. */
  unsent: number;
}

// ---------------------------------------------------------------- pure functions

/** `url` with the query parameter worker_id=<id>, other parameters kept as they are, any fragment removed. */
export function withWorkerId(url: string, workerId: string): string {
  const u = new URL(url);
  u.hash = "";
  const kept = u.search
    .replace(/^\?/, "")
    .split("&")
    .filter((p) => p !== "" && safeDecode(p.split("=")[0] ?? "", { plusAsSpace: true }) !== "worker_id");
  kept.push(`worker_id=${encodeURIComponent(workerId)}`);
  u.search = `?${kept.join("&")}`;
  return u.toString();
}

/** Why a worker ID is refused, or undefined when it is acceptable. */
export function validateWorkerId(workerId: string): string | undefined {
  if (workerId.trim() === "") return "the worker ID is empty";
  if (workerId.startsWith("warp")) return `worker ID "${workerId}" is reserved: IDs beginning with "warp" are refused`;
  return undefined;
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${s.length} chars)`;
}

function scrubbedErrorText(err: unknown): string {
  return scrub(errorText(err));
}

/** Runtime error text for logs: clipped, and any user:password@ of a quoted URL removed. */
function scrub(text: string): string {
  return clip(text.replace(/\/\/[^/@\s'"]*@/g, "//"), 300);
}

// ---------------------------------------------------------------- the connection

/** State of one socket, from dial to close. Events from an old session are ignored. */
interface Session {
  socket?: SocketLike;
  open: boolean;
  /** Messages handed to this socket whose bytes may not have left the process. */
  inflight: InFlight;
  lastActivity: number;
  lastError?: SocketError;
  canPing: boolean;
  dialTimer?: ReturnType<typeof setTimeout>;
  pingTimer?: ReturnType<typeof setInterval>;
  deadTimer?: ReturnType<typeof setTimeout>;
  drainTimer?: ReturnType<typeof setTimeout>;
  dialStarted: number;
}

type State = "idle" | "running" | "stopping" | "stopped";

export class OzConnection {
  readonly #opts: OzConnectionOptions;
  readonly #log: OzConnectionOptions["logger"];
  readonly #url: string;
  readonly #pingIntervalMs: number;
  readonly #deadAfterMs: number;
  readonly #writeTimeoutMs: number;
  readonly #dialTimeoutMs: number;
  readonly #backoff: BackoffOptions;
  readonly #maxBufferedBytes: number;
  readonly #known: ReadonlySet<string> | null;
  readonly #openSocket: OpenSocket;

  #state: State = "idle";
  #session: Session | undefined;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #outbox: Outbox;
  #authRejected = false;
  #stopPromise: Promise<StopResult> | undefined;
  #stats: Omit<ConnectionStats, "queued" | "reconnectsByReason"> = {
    reconnects: 0,
    dropped: 0,
    sent: 0,
    requeued: 0,
    received: 0,
    malformed: 0,
    unknown: 0,
  };
  #byReason: Record<ReconnectReason, number> = {
    dial_error: 0,
    read_error: 0,
    keepalive_timeout: 0,
    server_closed: 0,
    write_timeout: 0,
  };

  /** Throws on a configuration error (bad URL, reserved or empty worker ID, empty API key). */
  constructor(options: OzConnectionOptions) {
    this.#opts = options;
    this.#log = options.logger;
    const bad = validateWorkerId(options.workerId);
    if (bad) throw new Error(bad);
    if (!options.apiKey) throw new Error("the API key is empty");
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new Error(`the WebSocket URL is not a valid URL: ${redactUrl(options.url)}`);
    }
    if (!["ws:", "wss:", "http:", "https:"].includes(parsed.protocol)) {
      throw new Error(`the WebSocket URL must use ws:// or wss:// (got ${parsed.protocol})`);
    }
    this.#url = withWorkerId(options.url, options.workerId);
    this.#pingIntervalMs = positive(options.pingIntervalMs, 30_000);
    this.#deadAfterMs = positive(options.deadAfterMs, 60_000);
    this.#writeTimeoutMs = positive(options.writeTimeoutMs, 10_000);
    this.#dialTimeoutMs = positive(options.dialTimeoutMs, 30_000);
    this.#backoff = {
      initialMs: positive(options.backoff?.initialMs, 1_000),
      maxMs: positive(options.backoff?.maxMs, 60_000),
      jitter: options.backoff?.jitter ?? 0.2,
    };
    this.#outbox = new Outbox(
      Math.max(1, Math.floor(positive(options.outboxLimit, 10_000))),
      options.protectedTypes ?? TERMINAL_MESSAGE_TYPES,
    );
    this.#maxBufferedBytes = positive(options.maxBufferedBytes, 1 << 20);
    this.#known = options.knownTypes === null ? null : new Set(options.knownTypes ?? SERVER_MESSAGE_TYPES);
    this.#openSocket = options.openSocket ?? defaultOpenSocket;
  }

  /** True while a socket is open. */
  get connected(): boolean {
    return this.#session?.open === true;
  }

  get stats(): ConnectionStats {
    return { ...this.#stats, queued: this.#outbox.length, reconnectsByReason: { ...this.#byReason } };
  }

  /** Begin connecting; reconnects until stop(). Calling it again is a no-op. */
  start(): void {
    if (this.#state !== "idle") {
      if (this.#state === "stopped") this.#log.warn("oz connection: start() after stop() is ignored");
      return;
    }
    this.#state = "running";
    this.#dial();
  }

  /**
   * Queue `{type, data}` for the server; written at once when connected, else
   * after the next successful dial, in order. Returns false when the message
   * was dropped (not serialisable, or the connection is stopped); never throws.
   */
  send(type: string, data: object): boolean {
    return this.#enqueue(type, data, undefined);
  }

  /**
   * send(), and a promise that resolves once the message has left the process
   * (its bytes went from the socket's buffer to the OS), however many
   * reconnects that takes. It rejects with OzMessageDropped when the message
   * will never be sent: dropped at the outbox bound, not serialisable, or
   * still unsent when stop() finishes.
   */
  sendAndWait(type: string, data: object): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#enqueue(type, data, { resolve, reject });
    });
  }

  #enqueue(type: string, data: object, waiter: OutboxEntry["waiter"]): boolean {
    const rawTaskId = (data as { task_id?: unknown } | null)?.task_id;
    const taskId = typeof rawTaskId === "string" ? rawTaskId : undefined;
    if (this.#state === "stopped") {
      this.#stats.dropped++;
      this.#log.error("oz connection: message dropped, the connection is stopped", { type, task_id: taskId });
      waiter?.reject(new OzMessageDropped("stopped", type, taskId));
      return false;
    }
    let text: string;
    try {
      text = JSON.stringify({ type, data });
    } catch (err) {
      this.#stats.dropped++;
      this.#log.error("oz connection: message dropped, it cannot be serialised", {
        type,
        task_id: taskId,
        error: scrubbedErrorText(err),
      });
      waiter?.reject(new OzMessageDropped("unserialisable", type, taskId));
      return false;
    }
    const entry: OutboxEntry = { type, text };
    if (taskId !== undefined) entry.taskId = taskId;
    if (waiter) entry.waiter = waiter;
    this.#logEvicted(this.#outbox.push(entry));
    const s = this.#session;
    if (s?.open) this.#flush(s);
    return true;
  }

  /**
   * Flush the outbox (while connected or while a reconnect can still succeed),
   * close with code 1000 and stop reconnecting; all within timeoutMs.
   */
  stop(options: StopOptions = {}): Promise<StopResult> {
    if (this.#stopPromise) return this.#stopPromise;
    this.#stopPromise = this.#doStop(positive(options.timeoutMs, 5_000)).catch((err: unknown) => {
      this.#log.error("oz connection: stop failed", { error: scrubbedErrorText(err) });
      this.#finalStop();
      return { unsent: this.#outbox.length };
    });
    return this.#stopPromise;
  }

  // ---------------------------------------------------------------- dialling

  #dial(): void {
    this.#clearReconnectTimer();
    const session: Session = {
      open: false,
      inflight: new InFlight(),
      lastActivity: Date.now(),
      canPing: true,
      dialStarted: Date.now(),
    };
    this.#session = session;
    this.#log.debug("oz connection: dialling", { url: redactUrl(this.#url), attempt: this.#attempt });
    try {
      session.socket = this.#openSocket(
        this.#url,
        { headers: { Authorization: `Bearer ${this.#opts.apiKey}` } },
        {
          onOpen: () => this.#guarded(() => this.#onOpen(session)),
          onMessage: (text) => this.#guarded(() => this.#onText(session, text)),
          onBinary: (n) => this.#guarded(() => this.#onBinary(session, n)),
          onPong: () => this.#guarded(() => this.#onActivity(session)),
          onError: (err) => {
            session.lastError = err;
          },
          onClose: (code, reason) => this.#guarded(() => this.#onClose(session, code, reason)),
        },
      );
    } catch (err) {
      session.lastError = { message: scrubbedErrorText(err) };
      this.#teardown(session, "dial_error");
      return;
    }
    session.dialTimer = setTimeout(
      () =>
        this.#guarded(() => {
          session.lastError = { message: `no WebSocket handshake within ${this.#dialTimeoutMs} ms` };
          this.#kill(session, "dial_error");
        }),
      this.#dialTimeoutMs,
    );
  }

  #onOpen(session: Session): void {
    if (this.#session !== session) {
      tryQuietly(() => session.socket?.terminate());
      return;
    }
    clearTimeout(session.dialTimer);
    session.open = true;
    session.lastActivity = Date.now();
    this.#attempt = 0;
    if (this.#authRejected) {
      this.#authRejected = false;
      this.#log.info("oz connection: the API key was accepted again");
    }
    this.#log.info("oz connection: connected", {
      url: redactUrl(this.#url),
      worker_id: this.#opts.workerId,
      queued: this.#outbox.length,
    });
    session.pingTimer = setInterval(() => this.#guarded(() => this.#ping(session)), this.#pingIntervalMs);
    this.#armDeadTimer(session);
    this.#callConnectedChange(true);
    this.#flush(session);
  }

  #onClose(session: Session, code: number, reason: string): void {
    if (this.#session !== session) return;
    const why: ReconnectReason = !session.open ? "dial_error" : code === 1006 ? "read_error" : "server_closed";
    this.#teardown(session, why, code, reason);
  }

  /** We decided the connection is dead: drop it now and move on. */
  #kill(session: Session, why: ReconnectReason): void {
    if (this.#session !== session) return;
    // Measure what never left the process before the socket goes away.
    this.#requeueUndrained(session);
    tryQuietly(() => session.socket?.terminate());
    this.#teardown(session, why);
  }

  #teardown(session: Session, why: ReconnectReason, code?: number, reason?: string): void {
    if (this.#session !== session) return;
    this.#session = undefined;
    clearTimeout(session.dialTimer);
    clearInterval(session.pingTimer);
    clearTimeout(session.deadTimer);
    clearTimeout(session.drainTimer);
    this.#requeueUndrained(session);
    const wasOpen = session.open;
    session.open = false;

    if (this.#state === "stopped") {
      this.#log.info("oz connection: closed", { code, reason: reason ? serverText(reason, 123) : undefined });
    } else if (!wasOpen) {
      this.#logDialFailure(session);
    } else {
      this.#log.warn("oz connection: connection lost", {
        reason: why,
        code,
        close_reason: reason ? serverText(reason, 123) : undefined,
        error: session.lastError?.message ? scrub(session.lastError.message) : undefined,
        queued: this.#outbox.length,
      });
    }
    if (wasOpen) this.#callConnectedChange(false);

    if (this.#state === "running" || (this.#state === "stopping" && this.#outbox.length > 0)) {
      this.#scheduleReconnect(why);
    }
  }

  #logDialFailure(session: Session): void {
    const err = session.lastError;
    const status = err?.status;
    if (status === 401 || status === 403) {
      if (!this.#authRejected) {
        this.#authRejected = true;
        this.#log.error(
          `oz connection: the API key was rejected (HTTP ${status}); check --api-key / WARP_API_KEY. Retrying with backoff.`,
          { url: redactUrl(this.#url), status },
        );
      } else {
        this.#log.debug("oz connection: the API key is still rejected", { status });
      }
      return;
    }
    this.#log.warn("oz connection: could not connect", {
      url: redactUrl(this.#url),
      error: err?.message ? scrub(err.message) : "connection closed during the handshake",
      code: err?.code,
      status,
      attempt: this.#attempt,
    });
  }

  #scheduleReconnect(why: ReconnectReason): void {
    this.#stats.reconnects++;
    this.#byReason[why]++;
    const cb = this.#opts.onReconnect;
    if (cb) this.#guarded(() => cb(why), "onReconnect handler failed");
    const delay = nextBackoff(this.#attempt, this.#backoff, this.#opts.random);
    this.#attempt++;
    this.#log.debug("oz connection: reconnecting", { reason: why, delay_ms: delay, attempt: this.#attempt });
    this.#clearReconnectTimer();
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#guarded(() => {
        if (this.#state === "running" || this.#state === "stopping") this.#dial();
      });
    }, delay);
  }

  #clearReconnectTimer(): void {
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
  }

  // ---------------------------------------------------------------- keepalive

  #onActivity(session: Session): void {
    if (this.#session !== session) return;
    session.lastActivity = Date.now();
  }

  #ping(session: Session): void {
    if (this.#session !== session || !session.open || !session.socket) return;
    let pinged: boolean;
    try {
      pinged = session.socket.ping();
    } catch (err) {
      // The socket is going away; its close event follows.
      this.#log.debug("oz connection: ping failed", { error: scrubbedErrorText(err) });
      return;
    }
    if (pinged) {
      // Pings share the byte stream that bufferedAmount measures on some runtimes.
      session.inflight.countBytes(session.socket.pingCost);
      return;
    }
    if (session.canPing) {
      session.canPing = false;
      clearTimeout(session.deadTimer);
      this.#log.warn(
        "oz connection: this runtime cannot send WebSocket pings; liveness relies on the server's messages and TCP errors",
      );
    }
  }

  #armDeadTimer(session: Session): void {
    if (!session.canPing) return;
    const wait = Math.max(1, session.lastActivity + this.#deadAfterMs - Date.now());
    session.deadTimer = setTimeout(
      () =>
        this.#guarded(() => {
          if (this.#session !== session || !session.open || !session.canPing) return;
          const silent = Date.now() - session.lastActivity;
          if (silent >= this.#deadAfterMs) {
            session.lastError = { message: `nothing received for ${silent} ms` };
            this.#kill(session, "keepalive_timeout");
          } else {
            this.#armDeadTimer(session);
          }
        }),
      wait,
    );
  }

  // ---------------------------------------------------------------- reading

  #onText(session: Session, text: string): void {
    if (this.#session !== session) return;
    session.lastActivity = Date.now();
    this.#stats.received++;
    const env = parseEnvelope(text);
    if (!env.ok) {
      this.#stats.malformed++;
      this.#log.warn("oz connection: ignoring a malformed frame", {
        error: env.error,
        type: env.type === undefined ? undefined : serverText(env.type, 64),
        bytes: utf8Length(text),
      });
      return;
    }
    if (this.#known && !this.#known.has(env.type)) {
      this.#stats.unknown++;
      this.#log.warn("oz connection: ignoring a message of unknown type", {
        type: serverText(env.type, 64),
        bytes: utf8Length(text),
      });
      return;
    }
    const type = env.type;
    try {
      const r = this.#opts.onMessage(type, env.data);
      if (r && typeof (r as Promise<void>).then === "function") {
        (r as Promise<void>).then(undefined, (err: unknown) =>
          this.#log.error("oz connection: message handler failed", { type, error: scrubbedErrorText(err) }),
        );
      }
    } catch (err) {
      this.#log.error("oz connection: message handler failed", { type, error: scrubbedErrorText(err) });
    }
  }

  #onBinary(session: Session, byteLength: number): void {
    if (this.#session !== session) return;
    session.lastActivity = Date.now();
    this.#stats.received++;
    this.#stats.malformed++;
    this.#log.warn("oz connection: ignoring a binary frame", { bytes: byteLength });
  }

  // ---------------------------------------------------------------- writing

  /** Log and count the messages the outbox bound dropped. */
  #logEvicted(evicted: readonly OutboxEntry[]): void {
    for (const victim of evicted) {
      this.#stats.dropped++;
      this.#log.error("oz connection: outbox full, dropped a queued message", {
        type: victim.type,
        task_id: victim.taskId,
        limit: this.#outbox.limit,
        dropped_total: this.#stats.dropped,
      });
    }
  }

  #flush(session: Session): void {
    const sock = session.socket;
    if (!sock) return;
    while (session.open && this.#session === session && this.#outbox.length > 0) {
      if (sock.bufferedAmount >= this.#maxBufferedBytes) break;
      const entry = this.#outbox.peek()!;
      let ok: boolean;
      try {
        ok = sock.send(entry.text);
      } catch (err) {
        session.lastError = { message: `send failed: ${scrubbedErrorText(err)}` };
        ok = false;
      }
      if (!ok) break; // the socket is closing; its close event reconnects, the entry stays queued
      this.#outbox.shift();
      this.#stats.sent++;
      session.inflight.add(entry, sock.sendCost(entry.text), Date.now() + this.#writeTimeoutMs);
    }
    this.#checkDrain(session);
  }

  /** Retire written messages that left the process; enforce the write deadline. */
  #checkDrain(session: Session): void {
    if (this.#session !== session || !session.open || !session.socket) return;
    const buffered = session.socket.bufferedAmount;
    session.inflight.settle(buffered);
    const deadline = session.inflight.oldestDeadline;
    if (deadline !== undefined && deadline <= Date.now()) {
      session.lastError = {
        message: `a write did not complete within ${this.#writeTimeoutMs} ms (${buffered} bytes unsent)`,
      };
      this.#kill(session, "write_timeout");
      return;
    }
    if (session.inflight.length > 0 || (this.#outbox.length > 0 && buffered >= this.#maxBufferedBytes)) {
      if (session.drainTimer === undefined) {
        const poll = Math.max(5, Math.min(100, Math.floor(this.#writeTimeoutMs / 20)));
        session.drainTimer = setTimeout(() => {
          session.drainTimer = undefined;
          this.#guarded(() => {
            this.#checkDrain(session);
            if (this.#session === session && session.open) this.#flush(session);
          });
        }, poll);
      }
    }
  }

  /** Put messages whose bytes are still in the socket's buffer back at the front of the outbox. */
  #requeueUndrained(session: Session): void {
    if (session.inflight.length === 0) return;
    const buffered = session.socket ? safeBuffered(session.socket) : 0;
    const back = session.inflight.takeUnsent(buffered);
    if (back.length === 0) return;
    const evicted = this.#outbox.requeue(back);
    this.#stats.requeued += back.length;
    this.#stats.sent -= back.length;
    this.#log.warn("oz connection: re-queued messages that had not left the process", {
      count: back.length,
      types: back.map((e) => e.type).slice(0, 10),
    });
    this.#logEvicted(evicted);
  }

  // ---------------------------------------------------------------- stopping

  async #doStop(timeoutMs: number): Promise<StopResult> {
    if (this.#state === "idle" || this.#state === "stopped") {
      this.#state = "stopped";
      return this.#finalStop();
    }
    this.#state = "stopping";
    const deadline = Date.now() + timeoutMs;
    const closeReserve = Math.min(1_000, Math.floor(timeoutMs / 4));

    if (!this.#session) {
      if (this.#outbox.length > 0) this.#dial(); // one immediate try instead of waiting out the backoff
      else this.#clearReconnectTimer();
    }
    await waitUntil(() => this.#flushedForStop(), deadline - closeReserve);

    this.#state = "stopped";
    this.#clearReconnectTimer();
    const s = this.#session;
    if (s?.open && s.socket) {
      const sock = s.socket;
      tryQuietly(() => sock.close(1000, "worker stopping"));
      await waitUntil(() => this.#session !== s, Math.max(deadline, Date.now() + 50));
      if (this.#session === s) {
        this.#log.warn("oz connection: the server did not finish the close handshake in time");
        tryQuietly(() => sock.terminate());
        this.#teardown(s, "server_closed");
      }
    } else if (s) {
      tryQuietly(() => s.socket?.terminate());
      this.#teardown(s, "dial_error");
    }
    return this.#finalStop();
  }

  #flushedForStop(): boolean {
    if (this.#outbox.length > 0) return false;
    const s = this.#session;
    if (!s?.open || !s.socket) return true;
    return s.inflight.length === 0 && safeBuffered(s.socket) === 0;
  }

  #finalStop(): StopResult {
    this.#state = "stopped";
    this.#clearReconnectTimer();
    const unsent = this.#outbox.length;
    if (unsent > 0) {
      const types: Record<string, number> = {};
      for (const e of this.#outbox.entries) types[e.type] = (types[e.type] ?? 0) + 1;
      this.#log.error("oz connection: stopped with messages that were never sent", {
        unsent,
        types,
        task_ids: this.#outbox.entries.flatMap((e) => (e.taskId ? [e.taskId] : [])).slice(0, 20),
      });
      this.#outbox.abandon();
    }
    return { unsent };
  }

  // ---------------------------------------------------------------- helpers

  #callConnectedChange(connected: boolean): void {
    const cb = this.#opts.onConnectedChange;
    if (cb) this.#guarded(() => cb(connected), "onConnectedChange handler failed");
  }

  #guarded(fn: () => void, what = "oz connection: internal error"): void {
    try {
      fn();
    } catch (err) {
      try {
        this.#log.error(what, { error: scrubbedErrorText(err) });
      } catch {
        // a throwing logger must not take the connection down either
      }
    }
  }
}

function positive(v: number | undefined, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : fallback;
}

function tryQuietly(fn: () => void): void {
  try {
    fn();
  } catch {
    // closing an already-closed socket, and the like
  }
}

function safeBuffered(sock: SocketLike): number {
  try {
    return sock.bufferedAmount;
  } catch {
    return 0;
  }
}

/** Resolve when cond() holds or at the deadline (polls; used only while stopping). */
function waitUntil(cond: () => boolean, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      let done = true;
      try {
        done = cond() || Date.now() >= deadline;
      } catch {
        done = true;
      }
      if (done) resolve();
      else setTimeout(check, Math.max(1, Math.min(10, deadline - Date.now())));
    };
    check();
  });
}
