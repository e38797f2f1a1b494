// `oz-worker run`: the long-running worker. The command's flags and config
// loading live here; the worker itself starts at the seam `startWorker` below.
import type { WorkerConfig } from "../core/types.ts";
import { DEFAULT_HEALTH_ADDR, parseListenAddress } from "../telemetry/health.ts";
import type { LogFormat } from "../telemetry/log.ts";
import { CONFIG_FLAGS, type FlagSpec } from "./args.ts";
import { type CliIO, type CommandSpec, EXIT, loadCommandConfig } from "./command.ts";
import { VERSION } from "./version.ts";

/** The flags `run` and `preflight` share beyond the config flags. */
export const LOG_FORMAT_FLAG: FlagSpec = {
  name: "log-format",
  kind: "string",
  placeholder: "FORMAT",
  description: "Log line format",
  // Without the flag the format follows stdout: pretty on a terminal, else json.
  choices: ["pretty", "json"],
  default: "json, or pretty when stdout is a terminal",
};

export interface RunOptions {
  config: WorkerConfig;
  logFormat: LogFormat;
  /** Listen address of the health endpoints, already checked. */
  health: { host: string | undefined; port: number };
  skipPreflight: boolean;
  io: CliIO;
}

/**
 * The worker (src/worker/worker.ts): preflight (unless skipped), the health endpoints, the
 * Oz connection and the task loop, until SIGTERM or SIGINT. Returns the exit code.
 */
export async function startWorker(options: RunOptions): Promise<number> {
  const stopSignal = new Promise<string>((resolve) => {
    const onSignal = (sig: string) => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve(sig);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  // Loaded here, not at the top: the other commands, --help and --version never initialise the worker.
  const [{ runWorker }, { preflightGate }] = await Promise.all([import("../worker/worker.ts"), import("../preflight/gate.ts")]);
  return runWorker({
    config: options.config,
    version: VERSION,
    logFormat: options.logFormat,
    health: options.health,
    skipPreflight: options.skipPreflight,
    preflight: (config, logger, signal, kube) => preflightGate(config, logger, signal, kube),
    stopSignal,
  });
}

export const runCommand: CommandSpec = {
  name: "run",
  summary: "Connect to Oz and run assigned tasks as Kubernetes Jobs",
  flags: [
    ...CONFIG_FLAGS,
    LOG_FORMAT_FLAG,
    { name: "health-addr", kind: "string", placeholder: "ADDR", description: "Listen address of /healthz and /readyz", default: DEFAULT_HEALTH_ADDR },
    { name: "skip-preflight", kind: "boolean", description: "Start without the preflight Job check" },
  ],
  examples: ["oz-worker run --config-file /etc/oz-worker/config.yaml", "WARP_API_KEY=... oz-worker run --worker-id my-worker -e GITHUB_TOKEN"],
  async run(values, io) {
    let health: RunOptions["health"] | undefined;
    try {
      health = parseListenAddress((values["health-addr"] as string | undefined) ?? DEFAULT_HEALTH_ADDR);
    } catch (err) {
      io.stderr(`--health-addr: ${(err as Error).message}\n`);
    }
    // Config problems are reported too, so one run lists everything to fix.
    const config = await loadCommandConfig(values, io, { requireApiKey: true });
    if (!config || !health) return EXIT.USAGE;
    return startWorker({
      config,
      logFormat: ((values["log-format"] as string | undefined) ?? "auto") as LogFormat,
      health,
      skipPreflight: values["skip-preflight"] === true,
      io,
    });
  },
};
