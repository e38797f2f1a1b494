// undici carries the Node and Deno requests that h2.ts does not (an http:// server, a proxy-url).
// Under Bun it is never used, and importing it costs about 6 MB RSS, so it loads on first use.
import type * as Undici from "undici";

let loading: Promise<typeof Undici> | undefined;

export function loadUndici(): Promise<typeof Undici> {
  return (loading ??= import("undici"));
}
