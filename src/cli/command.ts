// What every subcommand shares: its declaration, the I/O it writes through,
// the exit codes, and loading the config with errors reported uniformly.
import { readFile } from "node:fs/promises";
import { ConfigError, type ConfigIssue, formatConfigIssue, loadConfig } from "../config/load.ts";
import type { WorkerConfig } from "../core/types.ts";
import { readStdin } from "../runtime.ts";
import { configFlagsFrom, type FlagSpec, type FlagValues, ignoredFlagWarnings } from "./args.ts";

/** The process exit codes of every command. */
export const EXIT = {
  OK: 0,
  /** A runtime failure, or a check that failed. */
  FAILURE: 1,
  /** Bad config or usage: unknown flag, bad value, invalid config file. */
  USAGE: 2,
  /** The Kubernetes API server could not be reached. */
  UNREACHABLE: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Where a command reads and writes; tests pass their own. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  readStdin(): Promise<string>;
  readFile(path: string): Promise<string>;
  env: Record<string, string | undefined>;
}

export function processIO(): CliIO {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    readStdin,
    readFile: (path) => readFile(path, "utf8"),
    env: process.env,
  };
}

export interface CommandSpec {
  name: string;
  /** One line for the command list. */
  summary: string;
  flags: readonly FlagSpec[];
  examples?: readonly string[];
  run(values: FlagValues, io: CliIO): Promise<number>;
}

/** Writes config issues to stderr, one `file:line:col path: message` per line. */
export function printIssues(io: CliIO, issues: readonly ConfigIssue[]): void {
  for (const issue of issues) io.stderr(`${formatConfigIssue(issue)}\n`);
}

/**
 * Loads the config from the command's flags, the file they name and the
 * environment. On a config problem it prints every issue and returns undefined
 * (the command then exits with EXIT.USAGE).
 */
export async function loadCommandConfig(
  values: FlagValues,
  io: CliIO,
  options: { requireApiKey?: boolean } = {},
): Promise<WorkerConfig | undefined> {
  for (const warning of ignoredFlagWarnings(values)) io.stderr(`${warning}\n`);
  try {
    return await loadConfig({
      flags: configFlagsFrom(values),
      env: io.env,
      readFile: io.readFile,
      readStdin: io.readStdin,
      ...(options.requireApiKey !== undefined && { requireApiKey: options.requireApiKey }),
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printIssues(io, err.issues);
    io.stderr(`invalid configuration: ${plural(err.issues.length, "error")}\n`);
    return undefined;
  }
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
