// The three runtimes oz-worker runs on from its sources, as the project installs them from
// npm: Bun (devDependency `bun`), Deno (devDependency `deno`) and Node 22 (optional
// dependency `node-linux-<arch>`). OZ_TEST_BUN, OZ_TEST_DENO and OZ_TEST_NODE point a run at
// other binaries (e.g. an older Node to check the minimum version).
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const MAIN = join(ROOT, "src/cli/main.ts");

export type RuntimeName = "bun" | "deno" | "node";

export interface Runtime {
  name: RuntimeName;
  /** The binary. */
  bin: string;
  /** What runs the CLI from its sources; append the CLI's arguments. */
  argv: string[];
}

const BIN = (name: RuntimeName) => join(ROOT, "node_modules/.bin", name);

function runtime(name: RuntimeName, override: string | undefined, pre: string[]): Runtime {
  const bin = override || BIN(name);
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: ${override ? `check OZ_TEST_${name.toUpperCase()}` : "install the dependencies with npm ci (scripts/test does it)"}`);
  }
  return { name, bin, argv: [bin, ...pre, MAIN] };
}

/** Bun, Deno and Node, in that order. */
export function runtimes(): Runtime[] {
  return [
    runtime("bun", process.env.OZ_TEST_BUN, []),
    runtime("deno", process.env.OZ_TEST_DENO, ["run", "-A"]),
    runtime("node", process.env.OZ_TEST_NODE, []),
  ];
}

/** The runtime's own version line (`bun --version` and so on). */
export async function runtimeVersion(rt: Runtime): Promise<string> {
  const proc = Bun.spawn([rt.bin, "--version"], { stdout: "pipe", stderr: "ignore" });
  const text = await new Response(proc.stdout).text();
  await proc.exited;
  return text.trim().split("\n")[0] ?? "";
}
