#!/usr/bin/env bun
// oz-worker's entry point, the same file for every runtime: `bun src/cli/main.ts`,
// `deno run -A src/cli/main.ts`, `node src/cli/main.ts` (Node ≥ 22.18) and the compiled
// binary. It checks the runtime's version before anything else loads (undici 8, for one,
// fails to load on Node 20), which is why the CLI itself (cli.ts) is imported dynamically;
// then it exits as soon as the command is done and its output written.
import { exitWhenFlushed, runtimeRefusal } from "../runtime.ts";

const refusal = runtimeRefusal();
if (refusal) {
  process.stderr.write(`${refusal}\n`);
  process.exit(2);
}
const { main } = await import("./cli.ts");
await exitWhenFlushed(await main(process.argv.slice(2)));
