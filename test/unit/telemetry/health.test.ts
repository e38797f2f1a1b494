import { afterEach, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  parseListenAddress,
  startHealthServer,
  type HealthServer,
  type ReadinessReport,
} from "../../../src/telemetry/health.ts";
import { waitFor } from "../../support/wait.ts";

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.();
});

async function start(opts: Partial<Parameters<typeof startHealthServer>[0]> = {}): Promise<HealthServer> {
  const server = await startHealthServer({
    addr: "127.0.0.1:0",
    readiness: () => ({ ready: true, checks: {} }),
    ...opts,
  });
  cleanup.push(() => server.close());
  return server;
}

async function get(server: HealthServer, path: string, init?: RequestInit) {
  const res = await fetch(`${server.url}${path}`, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

describe("health server", () => {
  test("port 0 returns the real port", async () => {
    const s = await start();
    expect(s.address.host).toBe("127.0.0.1");
    expect(s.address.port).toBeGreaterThan(0);
    expect(s.url).toBe(`http://127.0.0.1:${s.address.port}`);
  });

  test("/healthz answers ok with the measured lag", async () => {
    const s = await start();
    const r = await get(s, "/healthz");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("application/json");
    expect(r.body?.status).toBe("ok");
    expect(typeof r.body?.event_loop_lag_ms).toBe("number");
  });

  test("/healthz turns 503 while the event loop is stalled, then recovers", async () => {
    const s = await start({ maxEventLoopLagMs: 200, lagSampleIntervalMs: 50 });
    await Bun.sleep(120); // let the sampler tick
    const pending = fetch(`${s.url}/healthz`);
    const until = performance.now() + 700;
    while (performance.now() < until) {
      // block the loop
    }
    const stalled = await pending;
    const body = (await stalled.json()) as Record<string, unknown>;
    expect(stalled.status).toBe(503);
    expect(body.status).toBe("unhealthy");
    expect(Number(body.event_loop_lag_ms)).toBeGreaterThan(200);

    // Recovers once the sampler has seen the loop move again (bounded wait, not a fixed sleep).
    const recovered = await waitFor("/healthz to recover", async () => ((await get(s, "/healthz")).status === 200 ? true : undefined), {
      timeoutMs: 2_000,
    });
    expect(recovered).toBe(true);
  });

  test("/readyz flips between 503 and 200 and names the failing check", async () => {
    const state = { connected: false, caches: true, preflight: true };
    const s = await start({
      readiness: (): ReadinessReport => {
        const checks = {
          connected: state.connected ? { ok: true } : { ok: false, detail: "no WebSocket to Oz (reconnecting)" },
          caches_synced: { ok: state.caches },
          preflight: { ok: state.preflight },
        };
        return { ready: Object.values(checks).every((c) => c.ok), checks };
      },
    });

    let r = await get(s, "/readyz");
    expect(r.status).toBe(503);
    expect(r.body).toEqual({
      status: "not_ready",
      checks: {
        connected: { ok: false, detail: "no WebSocket to Oz (reconnecting)" },
        caches_synced: { ok: true },
        preflight: { ok: true },
      },
      failing: ["connected"],
    });

    state.connected = true;
    r = await get(s, "/readyz");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      status: "ready",
      checks: { connected: { ok: true }, caches_synced: { ok: true }, preflight: { ok: true } },
    });

    state.preflight = false;
    state.caches = false;
    r = await get(s, "/readyz");
    expect(r.status).toBe(503);
    expect(r.body?.failing).toEqual(["caches_synced", "preflight"]);
  });

  test("/readyz: ready=false without failing checks, async providers, and throwing providers are handled", async () => {
    let mode: "flag" | "async" | "throw" = "flag";
    const s = await start({
      readiness: () => {
        if (mode === "throw") throw new Error("boom");
        if (mode === "async") return Promise.resolve({ ready: true, checks: { connected: { ok: true } } });
        return { ready: false, checks: { connected: { ok: true } } };
      },
    });
    expect((await get(s, "/readyz")).status).toBe(503);
    mode = "async";
    expect((await get(s, "/readyz")).status).toBe(200);
    mode = "throw";
    const r = await get(s, "/readyz");
    expect(r.status).toBe(503);
    expect(r.body?.failing).toEqual(["readiness"]);
    expect(JSON.stringify(r.body)).toContain("boom");
  });

  test("anything else is 404; other methods 405; HEAD has no body; query strings are ignored", async () => {
    const s = await start();
    for (const path of ["/", "/metrics", "/healthz/extra", "/readyzz"]) {
      const r = await get(s, path);
      expect(r.status).toBe(404);
    }
    expect((await get(s, "/healthz", { method: "POST" })).status).toBe(405);
    const head = await get(s, "/readyz", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    expect((await get(s, "/healthz?verbose=1")).status).toBe(200);
  });

  test("a busy port rejects with a clear error", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => blocker.close(r)));
    const port = (blocker.address() as AddressInfo).port;
    await expect(startHealthServer({ addr: `127.0.0.1:${port}`, readiness: () => ({ ready: true, checks: {} }) })).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/,
    );
  });

  test("close() frees the port even with keep-alive clients", async () => {
    const s = await startHealthServer({ addr: "127.0.0.1:0", readiness: () => ({ ready: true, checks: {} }) });
    await get(s, "/healthz");
    await s.close();
    await s.close();
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });
});

describe("parseListenAddress", () => {
  test("forms", () => {
    expect(parseListenAddress("127.0.0.1:8081")).toEqual({ host: "127.0.0.1", port: 8081 });
    expect(parseListenAddress(":8081")).toEqual({ host: undefined, port: 8081 });
    expect(parseListenAddress("0.0.0.0:0")).toEqual({ host: "0.0.0.0", port: 0 });
    expect(parseListenAddress("[::1]:9000")).toEqual({ host: "::1", port: 9000 });
    expect(parseListenAddress("localhost:1")).toEqual({ host: "localhost", port: 1 });
  });
  test("rejects malformed addresses", () => {
    for (const bad of ["8081", "host:", "host:abc", "::1:80", "h:70000"]) {
      expect(() => parseListenAddress(bad)).toThrow();
    }
  });
});
