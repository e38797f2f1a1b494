// src/ may use @kubernetes/client-node for types only: loading the package at runtime builds
// its whole generated model and serializer graph (~20 MB RSS in the compiled binary, and start
// time). `import type` is erased; anything else (a value import, `import { type X }` which a
// compiler may keep as a bare import, a re-export, a dynamic import, require) loads it.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../../..");
const PACKAGE = /["']@kubernetes\/client-node(?:\/[^"']*)?["']/;

/** The statements of `source` that would load @kubernetes/client-node at runtime. */
function runtimeImports(source: string): string[] {
  const found: string[] = [];
  // Static imports and re-exports (possibly over several lines), and bare imports.
  const statements = /\b(?:import|export)(?=[\s{*])[^;'"`]*?(?:\bfrom\s*)?["'][^"']+["']/g;
  for (const m of source.matchAll(statements)) {
    const text = m[0];
    if (!PACKAGE.test(text)) continue;
    if (/^(?:import|export)\s+type\b/.test(text)) continue;
    found.push(text.replace(/\s+/g, " "));
  }
  // Dynamic imports and require.
  for (const m of source.matchAll(/\b(?:import|require)\s*\(\s*["']@kubernetes\/client-node[^"']*["']\s*\)/g)) found.push(m[0]);
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(ts|js|mjs|cjs)$/.test(e.name) ? [path] : [];
  });
}

describe("@kubernetes/client-node in src/", () => {
  test("the scan finds every form that loads the package, and passes type-only imports", () => {
    const bad = [
      'import { KubeConfig } from "@kubernetes/client-node";',
      'import {\n  type V1Job,\n  ApiException,\n} from "@kubernetes/client-node";',
      'import { type V1Job } from "@kubernetes/client-node";',
      'import * as k8s from "@kubernetes/client-node";',
      'import "@kubernetes/client-node";',
      'export { KubeConfig } from "@kubernetes/client-node";',
      'export * from "@kubernetes/client-node/dist/config.js";',
      'const k = await import("@kubernetes/client-node");',
      'const k = require("@kubernetes/client-node");',
    ];
    for (const line of bad) expect({ line, found: runtimeImports(line).length }).toEqual({ line, found: 1 });
    const fine = [
      'import type { V1Job } from "@kubernetes/client-node";',
      'import type {\n  V1Pod,\n  V1Job,\n} from "@kubernetes/client-node";',
      'export type { V1Job } from "@kubernetes/client-node";',
      'import { parse } from "yaml"; // not @kubernetes/client-node',
      "// Why not client-node's KubeConfig: it is big.",
    ];
    for (const line of fine) expect({ line, found: runtimeImports(line) }).toEqual({ line, found: [] });
  });

  test("no file in src/ loads it at runtime (import type only)", () => {
    const offenders = sourceFiles(join(ROOT, "src")).flatMap((file) => runtimeImports(readFileSync(file, "utf8")).map((s) => `${relative(ROOT, file)}: ${s}`));
    expect(offenders).toEqual([]);
  });
});
