// The one place that knows which runtime we are on. Everything above this file
// (src/oz/connection.ts) sees a small SocketLike and plain callbacks.
//
// - Bun: the global WebSocket. It takes `{headers}` as its second argument,
//   has ping()/terminate() and emits "pong" events (checked against a
//   Bun.serve server). Compression is not offered, so that bufferedAmount
//   counts exactly the frames we wrote (see sendCost).
// - Elsewhere (Node, Deno): undici's WebSocket, which takes `{headers}` too.
//   undici has no ping method and no pong event on the socket; it exports
//   `ping(ws)` and publishes pongs on the diagnostics channel
//   "undici:websocket:pong", so keepalive works the same there. Each socket gets
//   its own undici Agent whose connector keeps the raw TCP socket, which is how
//   terminate() drops a dead connection without waiting for a close handshake.
//
// If a future adapter cannot ping, SocketLike.ping() returns false; the
// connection then drops the 60 s silence verdict (a quiet server is not a dead
// one without pings) and relies on TCP errors, close frames and the write
// deadline (see connection.ts).
import diagnostics from "node:diagnostics_channel";
import type * as Undici from "undici";

/** A failed dial or a broken connection, as far as the runtime tells us. */
export interface SocketError {
  /** Human-readable cause, never containing request headers. */
  message: string;
  /** HTTP status of a refused upgrade (401, 403, 503, ...) when the runtime reveals it. */
  status?: number;
  /** Errno-style code such as ECONNREFUSED when known. */
  code?: string;
}

export interface SocketHandlers {
  onOpen(): void;
  /** A text frame. */
  onMessage(text: string): void;
  /** A binary frame (the protocol has none; reported so it can be logged). */
  onBinary(byteLength: number): void;
  onPong(): void;
  /** Always the last event of a socket, whether or not it ever opened. */
  onClose(code: number, reason: string): void;
  /** Precedes onClose when the runtime reports a failure. */
  onError(error: SocketError): void;
}

export interface SocketLike {
  /** Queue a text frame; false (nothing sent) when the socket is not open. */
  send(text: string): boolean;
  /** Send a ping frame; false when this runtime cannot ping. */
  ping(): boolean;
  /** Start the closing handshake. */
  close(code: number, reason: string): void;
  /** Drop the connection at once (no handshake); onClose still follows. */
  terminate(): void;
  /** Bytes written with send() that have not reached the OS yet. */
  readonly bufferedAmount: number;
  /** How much one send(text) adds to the byte stream bufferedAmount is measured against. */
  sendCost(text: string): number;
  /** The same for one ping(). */
  readonly pingCost: number;
  readonly implementation: SocketImplementation;
}

export type SocketImplementation = "bun" | "undici";

export interface OpenSocketOptions {
  headers?: Record<string, string>;
  /** Defaults to "bun" under Bun, else "undici". */
  implementation?: SocketImplementation;
}

export type OpenSocket = (url: string, options: OpenSocketOptions, handlers: SocketHandlers) => SocketLike;

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

let undici: typeof Undici | undefined = isBun ? undefined : await import("undici");

/**
 * Load undici so that `implementation: "undici"` can be used under Bun (tests).
 * Under Bun the bare specifier "undici" is Bun's own partial shim, so the
 * package's file is imported instead.
 */
export async function loadUndici(): Promise<void> {
  undici ??= isBun ? ((await import("undici/index.js")) as typeof Undici) : await import("undici");
}

export function defaultImplementation(): SocketImplementation {
  return isBun ? "bun" : "undici";
}

export function openSocket(url: string, options: OpenSocketOptions, handlers: SocketHandlers): SocketLike {
  const impl = options.implementation ?? defaultImplementation();
  if (impl === "bun") {
    if (!isBun) throw new Error("the Bun WebSocket is only available under Bun");
    return openBunSocket(url, options.headers ?? {}, handlers);
  }
  if (!undici) throw new Error("undici is not loaded; call loadUndici() first");
  return openUndiciSocket(undici, url, options.headers ?? {}, handlers);
}

/** Every handler call goes through here: a throwing handler must not break the runtime's event loop. */
function guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch {
      // The connection's handlers never throw; this is a last line of defence.
    }
  };
}

/** UTF-8 byte length of a JS string (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Size of a masked client frame (RFC 6455 5.2) carrying `payload` bytes. */
function clientFrameSize(payload: number): number {
  const lengthBytes = payload < 126 ? 0 : payload < 65536 ? 2 : 8;
  return 2 + lengthBytes + 4 + payload;
}

// ---------------------------------------------------------------- Bun

interface BunWebSocket extends EventTarget {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  ping(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}
type BunWebSocketCtor = new (
  url: string,
  options: { headers: Record<string, string>; perMessageDeflate: boolean },
) => BunWebSocket;

function openBunSocket(url: string, headers: Record<string, string>, h: SocketHandlers): SocketLike {
  const Ctor = (globalThis as unknown as { WebSocket: BunWebSocketCtor }).WebSocket;
  const ws = new Ctor(url, { headers, perMessageDeflate: false });
  ws.addEventListener("open", guard(() => h.onOpen()));
  ws.addEventListener(
    "message",
    guard((ev: Event) => {
      const data = (ev as MessageEvent).data as unknown;
      if (typeof data === "string") h.onMessage(data);
      else h.onBinary(byteLengthOf(data));
    }),
  );
  ws.addEventListener("pong", guard(() => h.onPong()));
  ws.addEventListener(
    "error",
    guard((ev: Event) => {
      const e = ev as Event & { message?: unknown; error?: { code?: unknown; message?: unknown } };
      const message = typeof e.message === "string" && e.message ? e.message : String(e.error?.message ?? "WebSocket error");
      const err: SocketError = { message };
      // Bun reports a refused upgrade only in the text: "... failed: Expected 101 status code: 401".
      const m = /Expected 101 status code: (\d{3})/.exec(message);
      if (m?.[1]) err.status = Number(m[1]);
      if (typeof e.error?.code === "string") err.code = e.error.code;
      else {
        const c = /\b(E[A-Z]{3,})\b/.exec(message);
        if (c?.[1]) err.code = c[1];
      }
      h.onError(err);
    }),
  );
  ws.addEventListener(
    "close",
    guard((ev: Event) => {
      const c = ev as CloseEvent;
      h.onClose(c.code, c.reason);
    }),
  );
  return {
    implementation: "bun",
    send: (text) => {
      if (ws.readyState !== 1) return false;
      ws.send(text);
      return true;
    },
    ping: () => {
      ws.ping();
      return true;
    },
    close: (code, reason) => ws.close(code, reason),
    terminate: () => ws.terminate(),
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    // Bun counts whole frames (header + mask + payload) in bufferedAmount, pings included.
    sendCost: (text) => clientFrameSize(utf8Length(text)),
    pingCost: clientFrameSize(0),
  };
}

function byteLengthOf(data: unknown): number {
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

// ---------------------------------------------------------------- undici

type UndiciWebSocket = InstanceType<typeof Undici.WebSocket>;
interface PongListener {
  (ws: object): void;
}

let undiciChannelsReady = false;
const pongListeners = new WeakMap<object, () => void>();
/** Pending dials by "origin + path", so a refused upgrade's status can be found. */
const pendingDials = new Map<string, Set<(status: number) => void>>();

function setupUndiciChannels(): void {
  if (undiciChannelsReady) return;
  undiciChannelsReady = true;
  const onPong: PongListener = (ws) => pongListeners.get(ws)?.();
  diagnostics.subscribe("undici:websocket:pong", (msg) => {
    const ws = (msg as { websocket?: unknown }).websocket;
    if (typeof ws === "object" && ws !== null) onPong(ws);
  });
  diagnostics.subscribe("undici:request:headers", (msg) => {
    const m = msg as {
      request?: { origin?: unknown; path?: unknown; upgrade?: unknown };
      response?: { statusCode?: unknown };
    };
    if (m.request?.upgrade !== "websocket") return;
    const status = m.response?.statusCode;
    if (typeof status !== "number" || status === 101) return;
    const listeners = pendingDials.get(`${String(m.request.origin)}${String(m.request.path)}`);
    if (listeners) for (const l of listeners) l(status);
  });
}

interface RawSocket {
  destroy(): void;
}

function openUndiciSocket(u: typeof Undici, url: string, headers: Record<string, string>, h: SocketHandlers): SocketLike {
  setupUndiciChannels();
  const target = new URL(url);
  const httpOrigin = `${target.protocol === "wss:" ? "https:" : "http:"}//${target.host}`;
  const dialKey = `${httpOrigin}${target.pathname}${target.search}`;

  let raw: RawSocket | undefined;
  let connectError: Error | undefined;
  let upgradeStatus: number | undefined;
  const connector = u.buildConnector({});
  const agent = new u.Agent({
    connect: (opts, cb) =>
      connector(opts, (err, sock) => {
        if (sock) raw = sock;
        if (err) connectError = err;
        (cb as (e: Error | null, s: unknown) => void)(err, sock);
      }),
  });
  const onStatus = (status: number) => {
    upgradeStatus = status;
  };
  let listeners = pendingDials.get(dialKey);
  if (!listeners) pendingDials.set(dialKey, (listeners = new Set()));
  listeners.add(onStatus);
  const forgetDial = () => {
    const set = pendingDials.get(dialKey);
    set?.delete(onStatus);
    if (set?.size === 0) pendingDials.delete(dialKey);
  };

  const ws: UndiciWebSocket = new u.WebSocket(url, { headers, dispatcher: agent });
  pongListeners.set(ws, guard(() => h.onPong()));
  let errorReported = false;
  const reportError = (fallback: string) => {
    if (errorReported) return;
    errorReported = true;
    const err: SocketError = { message: connectError?.message || fallback };
    const code = (connectError as { code?: unknown } | undefined)?.code;
    if (typeof code === "string") err.code = code;
    if (upgradeStatus !== undefined) {
      err.status = upgradeStatus;
      if (!connectError) err.message = `unexpected HTTP status ${upgradeStatus} on the WebSocket upgrade`;
    }
    h.onError(err);
  };
  ws.addEventListener(
    "open",
    guard(() => {
      forgetDial();
      h.onOpen();
    }),
  );
  ws.addEventListener(
    "message",
    guard((ev: { data: unknown }) => {
      if (typeof ev.data === "string") h.onMessage(ev.data);
      else h.onBinary(byteLengthOf(ev.data));
    }),
  );
  ws.addEventListener(
    "error",
    guard((ev: { message?: string }) => reportError(ev.message || "WebSocket connection failed")),
  );
  ws.addEventListener(
    "close",
    guard((ev: { code: number; reason: string }) => {
      forgetDial();
      pongListeners.delete(ws);
      void agent.destroy().catch(() => {});
      h.onClose(ev.code, ev.reason);
    }),
  );
  return {
    implementation: "undici",
    send: (text) => {
      if (ws.readyState !== 1) return false;
      ws.send(text);
      return true;
    },
    ping: () => {
      u.ping(ws);
      return true;
    },
    close: (code, reason) => ws.close(code, reason),
    terminate: () => {
      // Destroying the TCP socket makes undici fire error + close (1006) at once.
      if (raw) raw.destroy();
      else ws.close();
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    // undici counts payload bytes only; its pings bypass bufferedAmount.
    sendCost: (text) => utf8Length(text),
    pingCost: 0,
  };
}
