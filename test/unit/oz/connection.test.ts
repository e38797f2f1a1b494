import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import {
  type OzConnectionOptions,
  OzConnection,
  type ReconnectReason,
  validateWorkerId,
  withWorkerId,
} from "../../../src/oz/connection.ts";
import { OzMessageDropped } from "../../../src/oz/outbox.ts";
import { nextBackoff } from "../../../src/util/timers.ts";
import { type SocketImplementation, loadUndici, openSocket, utf8Length } from "../../../src/oz/websocket.ts";

// ---------------------------------------------------------------- pure functions

describe("nextBackoff", () => {
  const opts = { initialMs: 1000, maxMs: 60000, jitter: 0.2 };
  test("doubles from 1 s and caps at 60 s (no jitter drawn)", () => {
    const delays = Array.from({ length: 9 }, (_, i) => nextBackoff(i, opts, () => 0));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });
  test("jitter only shortens the delay, by at most the jitter fraction", () => {
    expect(nextBackoff(0, opts, () => 0.999999)).toBe(800);
    expect(nextBackoff(10, opts, () => 0.5)).toBe(54000);
    for (let i = 0; i < 200; i++) {
      const attempt = i % 12;
      const d = nextBackoff(attempt, opts);
      const base = Math.min(60000, 1000 * 2 ** attempt);
      expect(d).toBeGreaterThanOrEqual(base * 0.8);
      expect(d).toBeLessThanOrEqual(base);
    }
  });
  test("defaults to 20% jitter; zero jitter is exact", () => {
    expect(nextBackoff(1, { initialMs: 1000, maxMs: 60000 }, () => 0.5)).toBe(1800);
    expect(nextBackoff(1, { initialMs: 1000, maxMs: 60000, jitter: 0 }, () => 0.5)).toBe(2000);
  });
  test("survives silly inputs", () => {
    expect(nextBackoff(-3, opts, () => 0)).toBe(1000);
    expect(nextBackoff(Number.NaN, opts, () => 0)).toBe(1000);
    expect(nextBackoff(10_000, opts, () => 0)).toBe(60000);
    expect(nextBackoff(0, opts, () => Number.NaN)).toBe(1000);
    expect(nextBackoff(0, opts, () => 7)).toBe(800);
    expect(nextBackoff(0, { initialMs: 1000, maxMs: 60000, jitter: 5 }, () => 0.5)).toBe(500);
  });
});

describe("withWorkerId", () => {
  test("appends worker_id", () => {
    expect(withWorkerId("wss://oz.warp.dev/api/v1/selfhosted/worker/ws", "w-1")).toBe(
      "wss://oz.warp.dev/api/v1/selfhosted/worker/ws?worker_id=w-1",
    );
  });
  test("keeps the existing query byte for byte", () => {
    expect(withWorkerId("ws://h:8787/ws?a=1&b=x%20y&c", "w")).toBe("ws://h:8787/ws?a=1&b=x%20y&c&worker_id=w");
  });
  test("replaces an existing worker_id instead of duplicating it", () => {
    expect(withWorkerId("ws://h/ws?worker_id=old&a=1&worker%5Fid=older", "new")).toBe("ws://h/ws?a=1&worker_id=new");
  });
  test("encodes the ID and drops a fragment", () => {
    expect(withWorkerId("ws://h/ws#frag", "a b&c=d")).toBe("ws://h/ws?worker_id=a%20b%26c%3Dd");
  });
  test("throws on an invalid URL", () => {
    expect(() => withWorkerId("not a url", "w")).toThrow();
  });
});

describe("validateWorkerId", () => {
  test("refuses IDs beginning with warp and empty IDs", () => {
    expect(validateWorkerId("warp")).toContain("reserved");
    expect(validateWorkerId("warp-worker-1")).toContain("reserved");
    expect(validateWorkerId("")).toContain("empty");
    expect(validateWorkerId("  ")).toContain("empty");
    expect(validateWorkerId("my-warp-worker")).toBeUndefined();
    expect(validateWorkerId("gpu-pool-a")).toBeUndefined();
  });
  test("the constructor enforces it", () => {
    const base = { url: "ws://127.0.0.1:1/ws", apiKey: "k", logger: captureLogger().logger, onMessage() {} };
    expect(() => new OzConnection({ ...base, workerId: "warp-1" })).toThrow(/reserved/);
    expect(() => new OzConnection({ ...base, workerId: "w", url: "ftp://x/" })).toThrow(/ws:\/\//);
    expect(() => new OzConnection({ ...base, workerId: "w", apiKey: "" })).toThrow(/API key/);
  });
});

describe("utf8Length", () => {
  test("matches TextEncoder", () => {
    for (const s of ["", "abc", "é", "€", "😀", "a\u{10FFFF}b", "\ud800x", "x\udc00", "\ud800"]) {
      expect(utf8Length(s)).toBe(new TextEncoder().encode(s).length);
    }
  });
});

// ---------------------------------------------------------------- helpers

interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  msg: string;
  fields?: Record<string, unknown>;
}

function captureLogger(): { logger: OzConnectionOptions["logger"]; entries: LogEntry[]; text(): string } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry["level"]) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      entries.push(fields === undefined ? { level, msg } : { level, msg, fields });
    };
  return {
    logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") },
    entries,
    text: () => JSON.stringify(entries),
  };
}

/** Poll cond until it returns something truthy; fail with `what` after timeoutMs. */
async function waitFor<T>(cond: () => T | undefined | null | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Let time pass to show that something does NOT happen (never used to synchronise). */
function observeFor(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface ServerConn {
  ws: Bun.ServerWebSocket<{ conn: ServerConn }>;
  auth: string | null;
  url: URL;
  messages: string[];
  pings: number;
  closed?: { code: number; reason: string };
}

interface OzTestServer {
  port: number;
  url: string;
  conns: ServerConn[];
  /** Answer upgrades with this HTTP status instead of accepting them. */
  refuseWith: number | undefined;
  /** When set, upgrades without `Authorization: Bearer <key>` get 401. */
  apiKey: string | undefined;
  refusals: number;
  /** Every envelope received, in order, across connections. */
  received(): Array<{ type: string; data: Record<string, unknown> }>;
  stop(): void;
}

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch {
      // best effort
    }
  }
});

function startOzServer(): OzTestServer {
  const conns: ServerConn[] = [];
  const state: OzTestServer = {
    port: 0,
    url: "",
    conns,
    refuseWith: undefined,
    apiKey: undefined,
    refusals: 0,
    received: () =>
      conns.flatMap((c) => c.messages.map((m) => JSON.parse(m) as { type: string; data: Record<string, unknown> })),
    stop: () => server.stop(true),
  };
  const server = Bun.serve<{ conn: ServerConn }>({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req, srv) {
      const auth = req.headers.get("authorization");
      if (state.refuseWith !== undefined) {
        state.refusals++;
        return new Response("refused", { status: state.refuseWith });
      }
      if (state.apiKey !== undefined && auth !== `Bearer ${state.apiKey}`) {
        state.refusals++;
        return new Response("unauthorized", { status: 401 });
      }
      const conn = { auth, url: new URL(req.url), messages: [], pings: 0 } as unknown as ServerConn;
      if (srv.upgrade(req, { data: { conn } })) return undefined;
      return new Response("not a websocket request", { status: 400 });
    },
    websocket: {
      open(ws) {
        ws.data.conn.ws = ws;
        conns.push(ws.data.conn);
      },
      message(ws, m) {
        ws.data.conn.messages.push(typeof m === "string" ? m : "<binary>");
      },
      ping(ws) {
        ws.data.conn.pings++;
      },
      close(ws, code, reason) {
        ws.data.conn.closed = { code, reason };
      },
    },
  });
  state.port = server.port ?? 0;
  state.url = `ws://127.0.0.1:${state.port}/api/v1/selfhosted/worker/ws`;
  cleanups.push(() => server.stop(true));
  return state;
}

/**
 * A TCP proxy in front of the test server. A connection taken while
 * `stallNext > 0` forwards the upgrade and its 101 answer, then goes silent in
 * both directions and stops reading (the peer sees no pongs, and its writes
 * back up): a server that hung without closing the connection.
 */
async function startProxy(targetPort: number): Promise<{ url: string; stallNext: number; accepted: number }> {
  const sockets: net.Socket[] = [];
  const state = { url: "", stallNext: 0, accepted: 0 };
  const server = net.createServer((client) => {
    state.accepted++;
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.push(client, upstream);
    client.on("error", () => {});
    upstream.on("error", () => {});
    if (state.stallNext > 0) {
      state.stallNext--;
      let stalled = false;
      client.on("data", (d) => {
        if (!stalled) upstream.write(d);
      });
      upstream.once("data", (d) => {
        stalled = true;
        client.write(d);
        client.pause();
        upstream.pause();
      });
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  state.url = `ws://127.0.0.1:${port}/api/v1/selfhosted/worker/ws`;
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return state;
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Harness {
  conn: OzConnection;
  log: ReturnType<typeof captureLogger>;
  messages: Array<{ type: string; data: Record<string, unknown> }>;
  reconnects: ReconnectReason[];
  connectedChanges: boolean[];
}

// ---------------------------------------------------------------- behaviour, on both socket implementations

const implementations: SocketImplementation[] = ["bun", "undici"];

describe.each(implementations)("OzConnection over %s", (impl) => {
  beforeAll(async () => {
    await loadUndici();
  });

  function connect(opts: Partial<OzConnectionOptions> & { url: string }): Harness {
    const log = captureLogger();
    const h: Harness = {
      log,
      messages: [],
      reconnects: [],
      connectedChanges: [],
      conn: undefined as unknown as OzConnection,
    };
    h.conn = new OzConnection({
      apiKey: "test-key",
      workerId: "worker-1",
      logger: log.logger,
      onMessage: (type, data) => {
        h.messages.push({ type, data });
      },
      onConnectedChange: (c) => h.connectedChanges.push(c),
      onReconnect: (r) => h.reconnects.push(r),
      backoff: { initialMs: 20, maxMs: 200, jitter: 0 },
      pingIntervalMs: 50,
      deadAfterMs: 2000,
      writeTimeoutMs: 2000,
      dialTimeoutMs: 2000,
      openSocket: (url, o, handlers) => openSocket(url, { ...o, implementation: impl }, handlers),
      ...opts,
    });
    cleanups.push(() => h.conn.stop({ timeoutMs: 500 }).then(() => undefined));
    return h;
  }

  test("sends the Bearer key on the upgrade and worker_id in the query, keeping the URL's own query", async () => {
    const srv = startOzServer();
    const h = connect({ url: `${srv.url}?region=eu` });
    h.conn.start();
    const c = await waitFor(() => srv.conns[0], "the upgrade");
    expect(c.auth).toBe("Bearer test-key");
    expect(c.url.searchParams.get("worker_id")).toBe("worker-1");
    expect(c.url.searchParams.get("region")).toBe("eu");
    expect(c.url.pathname).toBe("/api/v1/selfhosted/worker/ws");
    await waitFor(() => h.conn.connected, "connected");
    expect(h.connectedChanges).toEqual([true]);
    expect(h.log.text()).not.toContain("test-key");
  });

  test("round trip: server messages reach onMessage, send() reaches the server as an envelope", async () => {
    const srv = startOzServer();
    const h = connect({ url: srv.url });
    h.conn.start();
    const c = await waitFor(() => srv.conns[0], "the upgrade");
    await waitFor(() => h.conn.connected, "connected");
    c.ws.send(JSON.stringify({ type: "task_assignment", data: { task_id: "t1", task: { id: "t1" } } }));
    await waitFor(() => h.messages.length === 1, "the assignment");
    expect(h.messages[0]).toEqual({ type: "task_assignment", data: { task_id: "t1", task: { id: "t1" } } });

    expect(h.conn.send("task_claimed", { task_id: "t1", worker_id: "worker-1" })).toBe(true);
    await waitFor(() => c.messages.length === 1, "the claim");
    expect(c.messages[0]).toBe('{"type":"task_claimed","data":{"task_id":"t1","worker_id":"worker-1"}}');
    expect(h.conn.stats.sent).toBe(1);
    expect(h.conn.stats.queued).toBe(0);
  });

  test("server closes: reconnects with backoff and sends what was queued meanwhile, in order, exactly once", async () => {
    const srv = startOzServer();
    const h = connect({ url: srv.url });
    h.conn.start();
    const first = await waitFor(() => srv.conns[0], "the first connection");
    await waitFor(() => h.conn.connected, "connected");
    h.conn.send("task_claimed", { task_id: "before" });
    await waitFor(() => first.messages.length === 1, "the first message");

    // Refuse new upgrades so that the client stays disconnected while we queue.
    srv.refuseWith = 503;
    first.ws.close(4000, "server restarting");
    await waitFor(() => !h.conn.connected, "the disconnect");
    expect(h.reconnects[0]).toBe("server_closed");
    const ids = Array.from({ length: 20 }, (_, i) => `t${i}`);
    for (const id of ids) h.conn.send(i(id) % 2 === 0 ? "task_completed" : "task_failed", { task_id: id });
    expect(h.conn.stats.queued).toBe(20);
    await waitFor(() => srv.refusals >= 2, "a couple of refused dials");
    expect(h.reconnects.slice(1).every((r) => r === "dial_error")).toBe(true);

    srv.refuseWith = undefined;
    const second = await waitFor(() => srv.conns[1], "the reconnect");
    await waitFor(() => second.messages.length === 20, "the queued messages");
    h.conn.send("task_claimed", { task_id: "sentinel" });
    await waitFor(() => second.messages.length === 21, "the sentinel");
    expect(second.messages.map((m) => (JSON.parse(m) as { data: { task_id: string } }).data.task_id)).toEqual([
      ...ids,
      "sentinel",
    ]);
    expect(srv.received().filter((m) => m.data.task_id === "before")).toHaveLength(1);
    expect(h.connectedChanges).toEqual([true, false, true]);
    expect(h.conn.stats.queued).toBe(0);
    expect(h.conn.stats.dropped).toBe(0);
    expect(srv.conns).toHaveLength(2);
  });

  test("backoff doubles across failed dials and resets after a successful one", async () => {
    const srv = startOzServer();
    srv.refuseWith = 503;
    const h = connect({ url: srv.url, backoff: { initialMs: 10, maxMs: 40, jitter: 0 } });
    h.conn.start();
    await waitFor(() => srv.refusals >= 5, "five refused dials");
    srv.refuseWith = undefined;
    const c = await waitFor(() => srv.conns[0], "the connection");
    await waitFor(() => h.conn.connected, "connected");
    c.ws.close(4001, "bye");
    await waitFor(() => srv.conns[1], "the reconnect");
    const delays = h.log.entries
      .filter((e) => e.msg === "oz connection: reconnecting")
      .map((e) => e.fields?.delay_ms as number);
    const afterConnect = h.log.entries
      .filter((e) => e.msg === "oz connection: reconnecting" || e.msg === "oz connection: connected")
      .findIndex((e) => e.msg === "oz connection: connected");
    expect(delays.slice(0, 5)).toEqual([10, 20, 40, 40, 40]);
    expect(delays[afterConnect]).toBe(10);
    // the warning for a refused upgrade names the status
    expect(h.log.entries.some((e) => e.level === "warn" && e.fields?.status === 503)).toBe(true);
  });

  test("a rejected API key is logged as such once per streak, and dialling goes on", async () => {
    const srv = startOzServer();
    srv.apiKey = "the-right-key";
    const h = connect({ url: srv.url, apiKey: "wrong-key" });
    h.conn.start();
    await waitFor(() => srv.refusals >= 4, "four refused dials");
    const rejected = h.log.entries.filter((e) => e.msg.includes("the API key was rejected"));
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.level).toBe("error");
    expect(rejected[0]?.msg).toContain("HTTP 401");
    expect(h.conn.connected).toBe(false);
    expect(h.log.text()).not.toContain("wrong-key");

    srv.apiKey = undefined; // the key is accepted again
    await waitFor(() => h.conn.connected, "connected");
    expect(h.log.entries.some((e) => e.msg.includes("accepted again"))).toBe(true);
  });

  test("a server that is not there: dial errors, reconnects counted", async () => {
    const port = await closedPort();
    const h = connect({ url: `ws://someone:pa55word@127.0.0.1:${port}/ws` });
    h.conn.start();
    await waitFor(() => h.conn.stats.reconnects >= 3, "three reconnects");
    expect(h.log.text()).not.toContain("pa55word");
    expect(new Set(h.reconnects)).toEqual(new Set(["dial_error"]));
    expect(h.conn.stats.reconnectsByReason.dial_error).toBe(h.conn.stats.reconnects);
    expect(h.log.entries.some((e) => e.level === "warn" && e.msg === "oz connection: could not connect")).toBe(true);
  });

  test("malformed frames and unknown types are logged without their content and ignored", async () => {
    const srv = startOzServer();
    let calls = 0;
    const h = connect({
      url: srv.url,
      onMessage: (type, data) => {
        calls++;
        if (calls === 1) throw new Error("handler bug");
        if (calls === 2) return Promise.reject(new Error("async handler bug"));
        h.messages.push({ type, data });
      },
    });
    h.conn.start();
    const c = await waitFor(() => srv.conns[0], "the connection");
    await waitFor(() => h.conn.connected, "connected");
    const secret = "sk-SECRET-42";
    const bad = [
      `not json ${secret}`,
      `{"type":"task_assignment","data":{"env_vars":{"KEY":"${secret}"}}`, // truncated
      "null",
      `["${secret}"]`,
      `{"data":{"x":"${secret}"}}`,
      `{"type":7,"data":{}}`,
      `{"type":"task_assignment","data":"${secret}"}`,
      `{"type":"task_assignment","data":["${secret}"]}`,
      `{"type":"task_assignment"}`,
    ];
    for (const f of bad) c.ws.send(f);
    c.ws.send(new Uint8Array([1, 2, 3]));
    c.ws.send(JSON.stringify({ type: "brand_new_type", data: { env_vars: { KEY: secret } } }));
    // the handler throws on the first good frame and rejects on the second; the third must still arrive
    for (const id of ["a", "b", "c"]) c.ws.send(JSON.stringify({ type: "task_cancellation", data: { task_id: id } }));
    await waitFor(() => h.messages.length === 1, "the valid frame after the bad ones");
    expect(h.messages[0]).toEqual({ type: "task_cancellation", data: { task_id: "c" } });
    await waitFor(
      () => h.log.entries.some((e) => e.fields?.error === "async handler bug"),
      "the rejected handler promise to be logged",
    );

    const st = h.conn.stats;
    expect(st.malformed).toBe(bad.length + 1);
    expect(st.unknown).toBe(1);
    expect(st.received).toBe(bad.length + 2 + 3);
    expect(h.log.text()).not.toContain(secret);
    const unknown = h.log.entries.find((e) => e.msg.includes("unknown type"));
    expect(unknown?.fields?.type).toBe("brand_new_type");
    expect(h.log.entries.some((e) => e.fields?.error === "handler bug")).toBe(true);
    // still the same, working connection
    expect(srv.conns).toHaveLength(1);
    expect(h.conn.connected).toBe(true);
    expect(h.reconnects).toEqual([]);
    h.conn.send("task_claimed", { task_id: "z" });
    await waitFor(() => c.messages.length === 1, "a message after the bad frames");
  });

  test("keepalive: pings keep a quiet but healthy connection alive", async () => {
    const srv = startOzServer();
    const h = connect({ url: srv.url, pingIntervalMs: 40, deadAfterMs: 200 });
    h.conn.start();
    const c = await waitFor(() => srv.conns[0], "the connection");
    await waitFor(() => c.pings >= 3, "three pings at the server");
    await observeFor(500); // more than twice deadAfterMs without a single message
    expect(h.reconnects).toEqual([]);
    expect(h.conn.connected).toBe(true);
    expect(srv.conns).toHaveLength(1);
  });

  test("keepalive: a server that goes silent is declared dead after deadAfterMs and replaced", async () => {
    const srv = startOzServer();
    const proxy = await startProxy(srv.port);
    proxy.stallNext = 1;
    const deadAfterMs = 300;
    const h = connect({ url: proxy.url, pingIntervalMs: 50, deadAfterMs });
    h.conn.start();
    await waitFor(() => h.conn.connected, "connected through the stalled proxy");
    const openedAt = Date.now();
    await waitFor(() => h.reconnects.length > 0, "the keepalive verdict");
    const took = Date.now() - openedAt;
    expect(h.reconnects[0]).toBe("keepalive_timeout");
    expect(took).toBeGreaterThanOrEqual(deadAfterMs - 20);
    expect(took).toBeLessThan(deadAfterMs + 400);
    // the next dial goes through the proxy normally
    await waitFor(() => h.conn.connected && srv.conns.length === 2, "the replacement connection");
    expect(proxy.accepted).toBe(2);
    expect(h.connectedChanges).toEqual([true, false, true]);
  });

  test("write deadline: writes that cannot drain time out; what never left the process is sent after the reconnect", async () => {
    const srv = startOzServer();
    const proxy = await startProxy(srv.port);
    proxy.stallNext = 1;
    const h = connect({ url: proxy.url, writeTimeoutMs: 300, deadAfterMs: 30_000, pingIntervalMs: 30_000 });
    h.conn.start();
    await waitFor(() => h.conn.connected, "connected through the stalled proxy");
    // 32 x 512 KiB: more than the loopback socket buffers can absorb
    const pad = "x".repeat(512 * 1024);
    const n = 32;
    const settled = Array.from({ length: n }, (_, i) =>
      h.conn.sendAndWait("task_completed", { task_id: `t${i}`, message: pad }),
    );
    await waitFor(() => h.reconnects.length > 0, "the write deadline", 10_000);
    expect(h.reconnects[0]).toBe("write_timeout");
    expect(h.conn.stats.requeued).toBeGreaterThan(0);

    // conns[0] is the stalled connection's far end
    const c = await waitFor(() => srv.conns[1], "the replacement connection", 10_000);
    const ids = () => c.messages.map((m) => (JSON.parse(m) as { data: { task_id: string } }).data.task_id);
    await waitFor(() => ids().includes(`t${n - 1}`), "the last message", 10_000);
    // What reached the stalled connection's kernel buffers is lost (no acks in
    // the protocol); everything else arrives once, in order: a suffix.
    const got = ids();
    const firstIndex = Number(got[0]?.slice(1));
    expect(got).toEqual(Array.from({ length: n - firstIndex }, (_, i) => `t${firstIndex + i}`));
    expect(h.conn.stats.queued).toBe(0);
    await Promise.all(settled); // every message left the process in the end
  }, 30_000);

  test("stop(): flushes the outbox, closes with 1000 and does not reconnect", async () => {
    const srv = startOzServer();
    const h = connect({ url: srv.url });
    h.conn.start();
    const c = await waitFor(() => srv.conns[0], "the connection");
    await waitFor(() => h.conn.connected, "connected");
    for (let i = 0; i < 50; i++) h.conn.send("task_completed", { task_id: `t${i}` });
    const result = await h.conn.stop({ timeoutMs: 2000 });
    expect(result).toEqual({ unsent: 0 });
    expect(h.conn.connected).toBe(false);
    await waitFor(() => c.closed, "the close at the server");
    expect(c.closed?.code).toBe(1000);
    expect(c.messages).toHaveLength(50);
    expect(h.connectedChanges).toEqual([true, false]);
    await observeFor(200); // 10x the initial backoff
    expect(srv.conns).toHaveLength(1);
    expect(h.reconnects).toEqual([]);
    // after stop, send() refuses loudly
    expect(h.conn.send("task_failed", { task_id: "late" })).toBe(false);
    expect(h.conn.stats.dropped).toBe(1);
    expect(h.log.entries.some((e) => e.level === "error" && e.fields?.task_id === "late")).toBe(true);
    // stop() again is harmless
    expect(await h.conn.stop()).toEqual({ unsent: 0 });
  });

  test("stop() while disconnected makes one more attempt to deliver the outbox", async () => {
    const srv = startOzServer();
    srv.refuseWith = 503;
    const h = connect({ url: srv.url, backoff: { initialMs: 10_000, maxMs: 10_000, jitter: 0 } });
    h.conn.start();
    await waitFor(() => srv.refusals === 1, "the first refused dial");
    h.conn.send("task_failed", { task_id: "t1", message: "boom", failure_reason: "container_exit", exit_code: 3 });
    srv.refuseWith = undefined;
    const result = await h.conn.stop({ timeoutMs: 3000 }); // the backoff alone would wait 10 s
    expect(result).toEqual({ unsent: 0 });
    expect(srv.received().map((m) => m.data.task_id)).toEqual(["t1"]);
    await waitFor(() => srv.conns[0]?.closed, "the close");
    expect(srv.conns[0]?.closed?.code).toBe(1000);
  });

  test("stop() with nowhere to deliver is bounded by its timeout and reports what was not sent", async () => {
    const port = await closedPort();
    const h = connect({ url: `ws://127.0.0.1:${port}/ws` });
    h.conn.start();
    h.conn.send("task_completed", { task_id: "t1" });
    h.conn.send("task_failed", { task_id: "t2" });
    const t0 = Date.now();
    const result = await h.conn.stop({ timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(result).toEqual({ unsent: 2 });
    const err = h.log.entries.find((e) => e.msg.includes("never sent"));
    expect(err?.level).toBe("error");
    expect(err?.fields?.task_ids).toEqual(["t1", "t2"]);
    const reconnectsAtStop = h.conn.stats.reconnects;
    await observeFor(150);
    expect(h.conn.stats.reconnects).toBe(reconnectsAtStop);
  });

  test("outbox bound: drops the oldest claim first, terminal outcomes last, and says so", async () => {
    const srv = startOzServer();
    const h = connect({ url: srv.url, outboxLimit: 3 });
    // not started: everything queues
    h.conn.send("task_claimed", { task_id: "c1" });
    h.conn.send("task_completed", { task_id: "d2" });
    h.conn.send("task_claimed", { task_id: "c3" });
    h.conn.send("task_failed", { task_id: "f4" }); // full: drops c1
    h.conn.send("task_completed", { task_id: "d5" }); // drops c3
    h.conn.send("task_rejected", { task_id: "r6" }); // drops r6 itself: the rest are terminal
    h.conn.send("task_failed", { task_id: "f7" }); // all terminal: drops the oldest, d2
    const drops = h.log.entries.filter((e) => e.msg.includes("outbox full"));
    expect(drops.map((e) => [e.level, e.fields?.type, e.fields?.task_id])).toEqual([
      ["error", "task_claimed", "c1"],
      ["error", "task_claimed", "c3"],
      ["error", "task_rejected", "r6"],
      ["error", "task_completed", "d2"],
    ]);
    expect(h.conn.stats.dropped).toBe(4);
    expect(h.conn.stats.queued).toBe(3);

    h.conn.start();
    const c = await waitFor(() => srv.conns[0], "the connection");
    await waitFor(() => c.messages.length === 3, "the outbox");
    expect(srv.received().map((m) => m.data.task_id)).toEqual(["f4", "d5", "f7"]);
  });

  test("sendAndWait() resolves once the message has left the process, across a reconnect", async () => {
    const srv = startOzServer();
    const h = connect({ url: srv.url });
    h.conn.start();
    const first = await waitFor(() => srv.conns[0], "the connection");
    await waitFor(() => h.conn.connected, "connected");
    await h.conn.sendAndWait("task_claimed", { task_id: "t1" });
    await waitFor(() => first.messages.length === 1, "t1 at the server");

    srv.refuseWith = 503;
    first.ws.close(4000, "restart");
    await waitFor(() => !h.conn.connected, "the disconnect");
    let done = false;
    const p = h.conn.sendAndWait("task_completed", { task_id: "t1", message: "ok" }).then(() => {
      done = true;
    });
    await waitFor(() => srv.refusals >= 2, "refused dials");
    expect(done).toBe(false); // still queued: nothing has left the process
    srv.refuseWith = undefined;
    await p;
    const second = await waitFor(() => srv.conns[1], "the reconnect");
    await waitFor(() => second.messages.length === 1, "t1's outcome at the server");
  });

  test("sendAndWait() rejects when its message is dropped or never sent", async () => {
    const port = await closedPort();
    const h = connect({ url: `ws://127.0.0.1:${port}/ws`, outboxLimit: 2 });
    h.conn.start();
    const claim = h.conn.sendAndWait("task_claimed", { task_id: "c1" });
    const outcomeA = h.conn.sendAndWait("task_completed", { task_id: "a" });
    const outcomeB = h.conn.sendAndWait("task_failed", { task_id: "b" }); // evicts the claim
    const err = await claim.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OzMessageDropped);
    expect((err as OzMessageDropped).reason).toBe("outbox_full");
    expect((err as OzMessageDropped).taskId).toBe("c1");

    await h.conn.stop({ timeoutMs: 200 });
    for (const p of [outcomeA, outcomeB]) {
      const e = await p.then(
        () => undefined,
        (x: unknown) => x,
      );
      expect((e as OzMessageDropped).reason).toBe("stopped");
    }
    const late = await h.conn.sendAndWait("task_failed", { task_id: "late" }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect((late as OzMessageDropped).reason).toBe("stopped");
  });

  test("unserialisable data is refused with an error, not thrown", () => {
    const h = connect({ url: "ws://127.0.0.1:1/ws" });
    const cyclic: Record<string, unknown> = { task_id: "t1" };
    cyclic.self = cyclic;
    expect(h.conn.send("task_failed", cyclic)).toBe(false);
    expect(h.conn.send("task_failed", { task_id: "t2", n: 10n })).toBe(false);
    expect(h.conn.stats.dropped).toBe(2);
    expect(h.log.entries.filter((e) => e.level === "error").map((e) => e.fields?.task_id)).toEqual(["t1", "t2"]);
  });
});

function i(id: string): number {
  return Number(id.slice(1));
}
