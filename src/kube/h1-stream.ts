// Watches under Bun: one HTTP/1.1 connection each, through Bun's own fetch pinned to HTTP/1.1
// (`protocol: "http1.1"`, which overrides --experimental-http2-fetch for this request). Over
// Bun's HTTP/2 fetch a watch gets only the stream's small flow-control window as buffer: while
// the event loop is busy (a burst) the API server blocks on it, its watch cache closes the slow
// watcher, and results reach the worker late (measured: pod terminal → result reported p99
// 2.6 s, against 0.15 s with the watch on its own TCP connection, whose kernel buffers absorb
// bursts). Bun's fetch rather than node:https: its HTTP parsing and body stream are native,
// where node:https under Bun runs the HTTP client, a Readable and a web stream around it in
// JavaScript for every chunk (measured at N=500 C=200 S=5: ~6 % of the worker's CPU).
import type { KubeResponse } from "./client.ts";
import type { H2Tls } from "./h2.ts";

/** One streaming GET (a watch) on an HTTP/1.1 connection of its own; the body is a web stream. */
export async function h1Stream(url: string, headers: Record<string, string>, tls: H2Tls, signal: AbortSignal | undefined): Promise<KubeResponse> {
  signal?.throwIfAborted();
  const { servername, ...rest } = tls;
  const init = {
    method: "GET",
    headers,
    signal,
    protocol: "http1.1",
    // Not Bun's 300 s idle timeout: the watch has its own (watch-stream.ts inactivityMs), past the server's timeoutSeconds.
    timeout: false,
    tls: { ...rest, ...(servername ? { serverName: servername } : {}) },
  };
  return (await globalThis.fetch(url, init as RequestInit)) as unknown as KubeResponse;
}
