// `oz-worker validate-config`: check the config (file, flags, environment) the
// way `run` would read it, and show the effective result or every problem.
import { stringify } from "yaml";
import { ConfigError, type ConfigIssue, loadConfig } from "../config/load.ts";
import type { WorkerConfig } from "../core/types.ts";
import { REDACTED } from "../telemetry/secrets.ts";
import { CONFIG_FLAGS, configFlagsFrom } from "./args.ts";
import { type CommandSpec, EXIT, plural, printIssues } from "./command.ts";

/** The config with its secrets (API key, `-e` values) replaced by `<redacted>`. */
export function redactConfig(config: WorkerConfig): WorkerConfig {
  return {
    ...config,
    ...(config.apiKey !== undefined && { apiKey: REDACTED }),
    env: config.env.map(({ name }) => ({ name, value: REDACTED })),
  };
}

export interface ValidateReport {
  valid: boolean;
  errors: { file: string | null; line: number | null; column: number | null; path: string; message: string }[];
  config: WorkerConfig | null;
}

function report(config: WorkerConfig | undefined, issues: readonly ConfigIssue[]): ValidateReport {
  return {
    valid: config !== undefined,
    errors: issues.map((i) => ({ file: i.file ?? null, line: i.line ?? null, column: i.column ?? null, path: i.path, message: i.message })),
    config: config ? redactConfig(config) : null,
  };
}

export const validateConfigCommand: CommandSpec = {
  name: "validate-config",
  summary: "Check the config file and flags; print the effective config or every error",
  flags: [
    ...CONFIG_FLAGS,
    { name: "output", kind: "string", placeholder: "FORMAT", description: "Result format", choices: ["text", "json"], default: "text" },
  ],
  examples: ["oz-worker validate-config --config-file config.yaml", "oz-worker validate-config --config-file - --output json < config.yaml"],
  async run(values, io) {
    const json = values.output === "json";
    let config: WorkerConfig | undefined;
    let issues: ConfigIssue[] = [];
    try {
      config = await loadConfig({ flags: configFlagsFrom(values), env: io.env, readFile: io.readFile, readStdin: io.readStdin });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues = err.issues;
    }
    if (json) {
      io.stdout(`${JSON.stringify(report(config, issues), null, 2)}\n`);
    } else if (config) {
      const source = (values["config-file"] as string | undefined) ?? "no config file";
      io.stdout(`# ${source === "-" ? "<stdin>" : source}: valid. Effective configuration (flags > file > defaults):\n`);
      io.stdout(stringify(redactConfig(config)));
    } else {
      printIssues(io, issues);
      io.stderr(`invalid configuration: ${plural(issues.length, "error")}\n`);
    }
    return config ? EXIT.OK : EXIT.USAGE;
  },
};
