// Runs `oz-worker validate-config --config-file -` in-process (src/cli/cli.ts main()) on the
// generated cases and prints one JSON line per case. A separate process, so that the test can
// stop it when a case hangs: before each case its YAML is written to <dir>/current.yaml.
//   bun test/unit/fuzz/validate-config-runner.ts <seed> <count> <dir>
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { main } from "../../../src/cli/cli.ts";
import type { CliIO } from "../../../src/cli/command.ts";
import { CaseGenerator } from "./validate-config-cases.ts";

const [seedArg, countArg, dir] = process.argv.slice(2);
if (seedArg === undefined || countArg === undefined || dir === undefined) {
  console.error("usage: validate-config-runner.ts <seed> <count> <dir>");
  process.exit(2);
}
const fixtures = resolve(import.meta.dir, "../../fixtures/config");
const bases = readdirSync(fixtures)
  .filter((f) => f.endsWith(".yaml"))
  .sort()
  .map((f) => readFileSync(join(fixtures, f), "utf8"));
const gen = new CaseGenerator(Number(seedArg), bases);
const count = Number(countArg);

for (let i = 0; i < count; i++) {
  const c = gen.next();
  writeFileSync(join(dir, "current.yaml"), c.yaml);
  writeFileSync(join(dir, "current.json"), JSON.stringify({ i, how: c.how, output: c.output }));
  let stdout = "";
  let stderr = "";
  const io: CliIO = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    readStdin: async () => c.yaml,
    readFile: async (p) => {
      throw new Error(`unexpected read of ${p}`);
    },
    env: {},
  };
  const t0 = performance.now();
  let code: number;
  let thrown: string | undefined;
  try {
    code = await main(["validate-config", "--config-file", "-", "--output", c.output], io);
  } catch (err) {
    code = -1;
    thrown = err instanceof Error ? (err.stack ?? err.message) : String(err);
  }
  const ms = performance.now() - t0;
  // The facts the test checks, taken from the whole output (which can be megabytes).
  let json: { parsed: boolean; valid?: unknown; errors?: number } | undefined;
  if (c.output === "json") {
    try {
      const report = JSON.parse(stdout) as { valid?: unknown; errors?: unknown[] };
      json = { parsed: true, valid: report.valid, errors: Array.isArray(report.errors) ? report.errors.length : -1 };
    } catch {
      json = { parsed: false };
    }
  }
  const result = {
    i,
    how: c.how,
    output: c.output,
    code,
    ms,
    thrown,
    json,
    stackTrace: /^\s+at .+:\d+:\d+\)?$/m.test(`${stdout}\n${stderr}`),
    effectiveConfig: /valid\. Effective configuration/.test(stdout),
    errorSummary: /invalid configuration: \d+ errors?\n$/.test(stderr),
    stderrHead: stderr.slice(0, 400),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
