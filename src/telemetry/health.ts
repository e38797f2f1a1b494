/**
 * Health endpoints for Kubernetes probes, on node:http.
 *
 *  - `GET /healthz` (liveness): 200 `{"status":"ok","event_loop_lag_ms":n}`
 *    while the process answers and its event loop is not stalled; 503
 *    `{"status":"unhealthy",...}` when the measured event-loop lag exceeds
 *    the limit (10 s by default). A loop that is blocked outright cannot
 *    answer at all, which the probe's timeout turns into a failure.
 *  - `GET /readyz` (readiness): 200 `{"status":"ready","checks":{...}}` or
 *    503 `{"status":"not_ready","checks":{...},"failing":["connected",...]}`.
 *    Ready means the provider says ready AND every check is ok.
 *  - Any other path: 404 `{"status":"not_found"}`; another method on a known
 *    path: 405. HEAD is answered like GET without a body.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "./log.ts";

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

export interface HealthServerOptions {
  /** `host:port`, `:port` (all interfaces) or `[v6]:port`; default "127.0.0.1:8081". Port 0 picks a free port. */
  addr?: string;
  /** Called on every /readyz request; may be async; a throw means not ready. */
  readiness: () => ReadinessReport | Promise<ReadinessReport>;
  /** /healthz turns 503 above this event-loop lag; default 10000 ms. */
  maxEventLoopLagMs?: number;
  /** How often the lag is sampled; default 500 ms. */
  lagSampleIntervalMs?: number;
  logger?: Pick<Logger, "debug" | "warn">;
}

export interface HealthServer {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: { host: string; port: number };
  /** `http://host:port` suitable for a client on this machine. */
  readonly url: string;
  close(): Promise<void>;
}

export const DEFAULT_HEALTH_ADDR = "127.0.0.1:8081";

/**
 * Parses a listen address. `":8081"` means all interfaces (host undefined).
 * Throws on a malformed address or a port outside 0..65535.
 */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } {
  const s = addr.trim();
  let host: string | undefined;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1];
    portText = v6[2] ?? "";
  } else {
    const i = s.lastIndexOf(":");
    if (i < 0) throw new Error(`invalid listen address "${addr}": expected host:port or :port`);
    host = s.slice(0, i) || undefined;
    portText = s.slice(i + 1);
    if (host?.includes(":")) throw new Error(`invalid listen address "${addr}": put IPv6 hosts in brackets, e.g. [::1]:8081`);
  }
  if (!/^\d+$/.test(portText)) throw new Error(`invalid listen address "${addr}": port must be a number`);
  const port = Number(portText);
  if (port > 65535) throw new Error(`invalid listen address "${addr}": port out of range`);
  return { host, port };
}

/**
 * Samples event-loop lag with a timer: each tick measures how late it fired.
 * `lagMs()` is the larger of the last sample and the time the current tick is
 * already overdue, so a stall is visible even before the late tick runs.
 */
export class EventLoopLagMonitor {
  #last = performance.now();
  #lastLag = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  private readonly intervalMs: number;
  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.#lastLag = Math.max(0, now - this.#last - this.intervalMs);
      this.#last = now;
    }, intervalMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  lagMs(): number {
    const overdue = performance.now() - this.#last - this.intervalMs;
    return Math.max(this.#lastLag, overdue, 0);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { host, port } = parseListenAddress(options.addr ?? DEFAULT_HEALTH_ADDR);
  const maxLag = options.maxEventLoopLagMs ?? 10_000;
  const monitor = new EventLoopLagMonitor(options.lagSampleIntervalMs ?? 500);
  const logger = options.logger;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    let pathname = "";
    try {
      pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    } catch {
      // 404 below
    }
    const head = req.method === "HEAD";
    if (pathname !== "/healthz" && pathname !== "/readyz") {
      send(res, 404, { status: "not_found" }, head);
      return;
    }
    if (req.method !== "GET" && !head) {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, { status: "method_not_allowed" }, false);
      return;
    }
    if (pathname === "/healthz") {
      const lag = Math.round(monitor.lagMs());
      if (lag > maxLag) {
        send(res, 503, { status: "unhealthy", event_loop_lag_ms: lag, detail: `event loop lag ${lag} ms exceeds ${maxLag} ms` }, head);
      } else {
        send(res, 200, { status: "ok", event_loop_lag_ms: lag }, head);
      }
      return;
    }
    evaluateReadiness(options.readiness).then(
      (body) => send(res, body.status === "ready" ? 200 : 503, body, head),
      () => send(res, 503, { status: "not_ready", checks: {}, failing: ["readiness"] }, head),
    );
  };

  const server: Server = createServer(handler);
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    monitor.stop();
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`health server: cannot listen on ${options.addr ?? DEFAULT_HEALTH_ADDR}${code ? ` (${code})` : ""}`, {
      cause: err,
    });
  }
  server.on("error", (err) => logger?.warn("health server error", { err }));

  const a = server.address() as AddressInfo;
  const address = { host: a.address, port: a.port };
  const urlHost = isUnspecified(a.address) ? "127.0.0.1" : a.family === "IPv6" || a.address.includes(":") ? `[${a.address}]` : a.address;
  let closing: Promise<void> | undefined;

  return {
    address,
    url: `http://${urlHost}:${a.port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        monitor.stop();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

function isUnspecified(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

interface ReadyBody {
  status: "ready" | "not_ready";
  checks: Record<string, ReadinessCheck>;
  failing?: string[];
}

async function evaluateReadiness(readiness: HealthServerOptions["readiness"]): Promise<ReadyBody> {
  let report: ReadinessReport;
  try {
    report = await readiness();
  } catch (err) {
    return {
      status: "not_ready",
      checks: { readiness: { ok: false, detail: `readiness check threw: ${err instanceof Error ? err.message : String(err)}` } },
      failing: ["readiness"],
    };
  }
  const checks: Record<string, ReadinessCheck> = {};
  const failing: string[] = [];
  for (const [name, c] of Object.entries(report?.checks ?? {})) {
    const ok = c?.ok === true;
    checks[name] = c?.detail === undefined ? { ok } : { ok, detail: String(c.detail) };
    if (!ok) failing.push(name);
  }
  const ready = report?.ready === true && failing.length === 0;
  return ready ? { status: "ready", checks } : { status: "not_ready", checks, failing };
}

function send(res: ServerResponse, status: number, body: unknown, head: boolean): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
  });
  res.end(head ? undefined : text);
}
