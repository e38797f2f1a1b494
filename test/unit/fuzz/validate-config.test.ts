// `oz-worker validate-config` fuzzed with random and mutated YAML (seeded; FUZZ_SEED=<seed>
// reproduces a run): every case ends with exit 0 (valid, the effective config printed) or 2
// (the problems printed), never 1 (an unexpected exception), never a stack trace, never a
// hang (a per-case deadline). The cases run in-process in one child process
// (validate-config-runner.ts), which the test stops if a case does not finish in time.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const RUNNER = join(import.meta.dir, "validate-config-runner.ts");
const CASES = 400;
const PER_CASE_MS = 10_000;
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;

interface Result {
  i: number;
  how: string;
  output: "text" | "json";
  code: number;
  ms: number;
  thrown?: string;
  json?: { parsed: boolean; valid?: unknown; errors?: number };
  stackTrace: boolean;
  effectiveConfig: boolean;
  errorSummary: boolean;
  stderrHead: string;
}

/** What is wrong with one case's result ([] when nothing). */
function problems(r: Result): string[] {
  const out: string[] = [];
  if (r.code !== 0 && r.code !== 2) out.push(`exit ${r.code}${r.thrown ? ` (threw: ${r.thrown})` : ""}`);
  if (r.stackTrace) out.push("a stack trace in the output");
  if (r.json) {
    if (!r.json.parsed) out.push("--output json printed no JSON");
    else if (r.code === 0 && r.json.valid !== true) out.push("exit 0 but valid is not true");
    else if (r.code === 2 && !(r.json.errors && r.json.errors > 0)) out.push("exit 2 without errors");
  } else if (r.code === 0 && !r.effectiveConfig) {
    out.push("exit 0 without the effective configuration");
  } else if (r.code === 2 && !r.errorSummary) {
    out.push("exit 2 without the error summary");
  }
  return out;
}

test(
  `validate-config on ${CASES} random and mutated YAML files: exit 0 or 2 with a message, no crash, no hang (seed ${SEED})`,
  async () => {
    console.log(`[fuzz] validate-config: seed ${SEED} (FUZZ_SEED=${SEED} reproduces this run)`);
    const dir = mkdtempSync(join(tmpdir(), "oz-validate-fuzz-"));
    const child = Bun.spawn([BUN, RUNNER, String(SEED), String(CASES), dir], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const stderr = new Response(child.stderr).text();
    const results: Result[] = [];
    try {
      const reader = child.stdout.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const deadline = new Promise<"hung">((r) => (timer = setTimeout(() => r("hung"), PER_CASE_MS)));
        const next = await Promise.race([reader.read(), deadline]);
        clearTimeout(timer);
        if (next === "hung") {
          child.kill("SIGKILL");
          const current = readFileSync(join(dir, "current.json"), "utf8");
          const yaml = readFileSync(join(dir, "current.yaml"), "utf8");
          throw new Error(`validate-config did not finish a case within ${PER_CASE_MS} ms (seed ${SEED}): ${current}\n${yaml.slice(0, 2000)}`);
        }
        if (next.done) break;
        buffered += decoder.decode(next.value, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          results.push(JSON.parse(buffered.slice(0, nl)) as Result);
          buffered = buffered.slice(nl + 1);
        }
      }
      const code = await child.exited;
      if (code !== 0 || results.length !== CASES) {
        const current = readFileSync(join(dir, "current.json"), "utf8");
        throw new Error(`the runner exited ${code} after ${results.length} of ${CASES} cases (seed ${SEED}); last case ${current}\n${await stderr}`);
      }
    } finally {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }

    const bad = results.flatMap((r) => problems(r).map((p) => `case ${r.i} (${r.how}, --output ${r.output}): ${p}\n  stderr: ${r.stderrHead}`));
    const byCode = new Map<number, number>();
    for (const r of results) byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
    const slowest = results.reduce((a, b) => (b.ms > a.ms ? b : a));
    console.log(
      `[fuzz] validate-config: ${results.length} cases; exit codes ${[...byCode].map(([c, n]) => `${c}×${n}`).join(", ")}; ` +
        `slowest ${slowest.ms.toFixed(0)} ms (case ${slowest.i}: ${slowest.how})`,
    );
    expect(bad).toEqual([]);
    // Both outcomes occur: the generator is not only producing garbage.
    expect(byCode.get(0) ?? 0).toBeGreaterThan(0);
    expect(byCode.get(2) ?? 0).toBeGreaterThan(0);
  },
  120_000,
);
