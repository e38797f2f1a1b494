// oz-worker's command line: the subcommands, `--help` and `--version`, and the
// exit codes (0 ok, 1 runtime failure or failed check, 2 bad config or usage,
// 3 cluster unreachable).
//
// cac holds the command and flag declarations and renders the help. Values
// are parsed by args.ts (see there for why), which also makes unknown flags
// and stray arguments usage errors: cac itself checks unknown options only
// when it dispatches an action, and coerces values.
import { cac, type CAC, type Command } from "cac";
import { flagDescription, flagUsage, parseArgs } from "./args.ts";
import { type CliIO, type CommandSpec, EXIT, processIO } from "./command.ts";
import { preflightCommand } from "./preflight.ts";
import { renderPodCommand } from "./render-pod.ts";
import { runCommand } from "./run.ts";
import { validateConfigCommand } from "./validate-config.ts";
import { VERSION, versionLine } from "./version.ts";
import { closest } from "../config/schema-kit.ts";

export const COMMANDS: readonly CommandSpec[] = [runCommand, preflightCommand, validateConfigCommand, renderPodCommand];

const EXIT_CODES_HELP = [
  "  0  success",
  "  1  runtime failure, or a check that failed",
  "  2  bad config or usage (unknown flag, bad value, invalid config file)",
  "  3  Kubernetes API server unreachable",
].join("\n");

function buildCli(): CAC {
  const cli = cac("oz-worker");
  cli.usage("<command> [options]");
  for (const spec of COMMANDS) {
    const command = cli.command(spec.name, spec.summary).usage(`${spec.name} [options]`);
    for (const flag of spec.flags) {
      command.option(flagUsage(flag), flagDescription(flag));
      // cac gives `--no-x` flags a default of true and would print it; defaults are in our descriptions.
      const option = command.options.at(-1);
      if (option) option.config.default = undefined;
    }
    for (const example of spec.examples ?? []) command.example(`  $ ${example}`);
  }
  cli.option("--version", "Print the version and git commit");
  cli.help((sections) => {
    // Sections: [name/version, Usage, ...]; a command's usage line names it.
    const usage = sections.find((s) => s.title === "Usage")?.body ?? "";
    const spec = COMMANDS.find((c) => usage.includes(`$ oz-worker ${c.name} `));
    const header = spec
      ? `oz-worker ${spec.name}: ${spec.summary}`
      : `oz-worker ${VERSION}: runs Oz cloud agent tasks as Kubernetes Jobs\n\n` +
        "Arguments that start with a flag run the worker, like the Go worker does:\n" +
        "`oz-worker --config-file F` is `oz-worker run --config-file F`.";
    return [{ body: header }, ...sections.slice(1), { title: "Exit codes", body: EXIT_CODES_HELP }];
  });
  return cli;
}

/** cac writes help with console.info; capture it so it goes through `io`. */
function helpText(cli: CAC, command?: Command): string {
  const lines: string[] = [];
  const info = console.info;
  console.info = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    (command ?? cli.globalCommand).outputHelp();
  } finally {
    console.info = info;
  }
  return `${lines.join("\n").replace(/[ \t]+$/gm, "")}\n`;
}

const GLOBAL_FLAGS = new Set(["--help", "-h", "--version"]);

/**
 * Runs the CLI with `argv` (the arguments after the program name); returns the exit code.
 *
 * `oz-worker <command> [options]`. Like the Go worker, which has no subcommands,
 * arguments that start with a flag run the worker: `oz-worker --worker-id w`
 * is `oz-worker run --worker-id w`.
 */
export async function main(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  const cli = buildCli();
  let first = 0;
  while (first < argv.length && GLOBAL_FLAGS.has(argv[first] as string)) first++;
  const globals = argv.slice(0, first);
  const next = argv[first];

  if (next === undefined) {
    if (globals.includes("--help") || globals.includes("-h")) {
      io.stdout(helpText(cli));
      return EXIT.OK;
    }
    if (globals.includes("--version")) {
      io.stdout(`${versionLine()}\n`);
      return EXIT.OK;
    }
    io.stderr(helpText(cli));
    return EXIT.USAGE;
  }

  const implicitRun = next.startsWith("-");
  const name = implicitRun ? runCommand.name : next;
  const spec = COMMANDS.find((c) => c.name === name);
  if (!spec) {
    const hint = closest(name, COMMANDS.map((c) => c.name));
    io.stderr(`oz-worker: unknown command ${JSON.stringify(name)}${hint ? ` (did you mean ${hint}?)` : ""}\nRun "oz-worker --help" for usage.\n`);
    return EXIT.USAGE;
  }
  const rest = [...globals, ...argv.slice(implicitRun ? first : first + 1)];
  const dashDash = rest.indexOf("--");
  const flags = dashDash < 0 ? rest : rest.slice(0, dashDash);
  if (flags.includes("--help") || flags.includes("-h")) {
    io.stdout(helpText(cli, cli.commands.find((c) => c.name === name)));
    return EXIT.OK;
  }
  if (flags.includes("--version")) {
    io.stdout(`${versionLine()}\n`);
    return EXIT.OK;
  }
  const parsed = parseArgs(spec.flags, rest);
  if (!parsed.ok) {
    const how = implicitRun ? " (arguments that start with a flag run the worker: oz-worker run ...)" : "";
    io.stderr(`oz-worker ${spec.name}: ${parsed.message}${how}\nRun "oz-worker ${spec.name} --help" for its flags.\n`);
    return EXIT.USAGE;
  }
  try {
    return await spec.run(parsed.values, io);
  } catch (err) {
    io.stderr(`oz-worker ${spec.name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.FAILURE;
  }
}
