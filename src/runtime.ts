// The few places where Bun, Node and Deno differ, behind one small surface.
// Everything else in src/ uses web-standard or node: APIs directly.
//
// This module is the first one the entry point (src/cli/main.ts) loads, before the
// runtime's version is known to be good: it imports nothing that could fail to load on
// an old runtime.

/** The JavaScript runtime this process runs on. */
export interface RuntimeInfo {
  name: "bun" | "deno" | "node";
  version: string;
}

/**
 * The oldest version of each runtime oz-worker runs on. Node: 22.18 runs the .ts sources
 * without flags (type stripping on by default) and has what undici 8 needs (zstd,
 * markAsUncloneable). Deno 2 and Bun 1.2: the lines whose Node compatibility (node:
 * modules, npm packages from node_modules) the sources rely on.
 */
export const MIN_RUNTIME_VERSIONS: Readonly<Record<RuntimeInfo["name"], string>> = { node: "22.18.0", deno: "2.0.0", bun: "1.2.0" };

const RUNTIME_NAMES: Readonly<Record<RuntimeInfo["name"], string>> = { node: "Node.js", deno: "Deno", bun: "Bun" };

export function currentRuntime(): RuntimeInfo {
  const deno = (globalThis as { Deno?: { version?: { deno?: string } } }).Deno?.version?.deno;
  if (deno) return { name: "deno", version: deno };
  const versions = (globalThis as { process?: { versions?: Record<string, string | undefined> } }).process?.versions ?? {};
  if (versions.bun) return { name: "bun", version: versions.bun };
  return { name: "node", version: versions.node ?? "0" };
}

/** -1, 0 or 1 as `a` is older than, the same as or newer than `b` (dotted numeric versions; suffixes ignored). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => v.replace(/^v/, "").split(/[.+-]/).slice(0, 3).map((p) => Number.parseInt(p, 10) || 0);
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** One line refusing an unsupported runtime version, or undefined when `rt` is supported. */
export function runtimeRefusal(rt: RuntimeInfo = currentRuntime()): string | undefined {
  const min = MIN_RUNTIME_VERSIONS[rt.name];
  if (compareVersions(rt.version, min) >= 0) return undefined;
  return `oz-worker needs ${RUNTIME_NAMES[rt.name]} ${min} or newer; this is ${RUNTIME_NAMES[rt.name]} ${rt.version}`;
}

/**
 * Ends the process with `code` once stdout and stderr have taken everything written to
 * them (waiting at most 1 s for that). A finished command exits at once, whatever timer,
 * socket or child a library still holds (Deno, unlike Node, waits for pending AbortSignal
 * timeouts, for one); `run` has stopped within its shutdown budget, and the task Jobs stay
 * for the next worker.
 */
export async function exitWhenFlushed(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    (timer as { unref?: () => void }).unref?.();
    try {
      stream.write("", () => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      resolve();
    }
  });
}

/** All of standard input as UTF-8 text. */
export async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** A full garbage collection now, where the runtime offers one (Bun; Node and Deno only with --expose-gc). */
export function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(sync: boolean): void } }).Bun;
  if (bun) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}

/** Hands memory the heap no longer uses back to the system where the runtime can (Bun.shrink); elsewhere nothing. */
export function releaseFreeMemory(): void {
  (globalThis as { Bun?: { shrink?(): void } }).Bun?.shrink?.();
}

/** madvise(2) advice on Linux (asm-generic, all architectures): reclaim these pages now. */
const MADV_PAGEOUT = 21;

/**
 * Under Bun on Linux: asks the kernel to reclaim the executable's resident pages
 * (madvise MADV_PAGEOUT), so that the resident set holds only the code the worker goes on
 * running; a page it touches again comes back from the page cache on first use. Startup
 * (module loading, config, preflight) and a big first list run code never run again, and
 * those pages would otherwise stay counted in the RSS for the process's life: 43-46 MB of the
 * compiled worker's RSS were the executable's pages, of which a running worker touches 30
 * to 33 again at its peak (scripts/bench, N=500 C=200). The advice never discards data: a
 * page the process wrote (copy-on-write) needs swap to be reclaimed and stays. Kernels
 * before 5.4 refuse the advice (nothing happens). Returns the
 * bytes of file-backed RSS released, or undefined where there is nothing to do (Node, Deno,
 * not Linux, no bun:ffi).
 */
export async function releaseExecutablePages(): Promise<number | undefined> {
  if (!(globalThis as { Bun?: unknown }).Bun || process.platform !== "linux") return undefined;
  try {
    const { readFileSync, realpathSync } = await import("node:fs");
    const exe = realpathSync(process.execPath);
    const ranges = readFileSync("/proc/self/maps", "utf8")
      .split("\n")
      .filter((line) => line.endsWith(` ${exe}`))
      .map((line) => line.slice(0, line.indexOf(" ")).split("-").map((hex) => BigInt(`0x${hex}`)) as [bigint, bigint]);
    if (ranges.length === 0) return undefined;
    const before = fileBackedRss(readFileSync);
    const { dlopen, FFIType } = await import("bun:ffi");
    const libc = dlopen("libc.so.6", { madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 } });
    try {
      for (const [start, end] of ranges) libc.symbols.madvise(start, end - start, MADV_PAGEOUT);
    } finally {
      libc.close();
    }
    const after = fileBackedRss(readFileSync);
    return before !== undefined && after !== undefined ? Math.max(0, before - after) : undefined;
  } catch {
    // No bun:ffi (a build without it), no libc.so.6 (musl), no /proc: the pages stay, which is only memory.
    return undefined;
  }
}

/** RssFile of /proc/self/status in bytes. */
function fileBackedRss(read: (path: string, encoding: "utf8") => string): number | undefined {
  const kb = /^RssFile:\s+(\d+) kB/m.exec(read("/proc/self/status", "utf8"))?.[1];
  return kb === undefined ? undefined : Number(kb) * 1024;
}
