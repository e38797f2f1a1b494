// The few places where Bun, Node and Deno differ, behind one small surface.
// Everything else in src/ uses web-standard or node: APIs directly.
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * Whether the module with this `import.meta` is the program's entry point:
 * `import.meta.main` where the runtime has it (Bun, Deno, Node ≥ 24.2, and a
 * `bun build --compile` binary), else a comparison with process.argv[1].
 */
export function isMainModule(meta: ImportMeta): boolean {
  const main = (meta as ImportMeta & { main?: boolean }).main;
  if (typeof main === "boolean") return main;
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(meta.url));
  } catch {
    return false;
  }
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
