// `oz-worker preflight`: the startup check on its own. The command's flags and
// config loading live here; the check itself starts at the seam `runPreflight`.
import { parseGoDuration } from "../config/units.ts";
import type { KubeClient } from "../kube/client.ts";
import { CHECK_NAMES, type CheckResult, exitCodeFor, type PreflightReport } from "../preflight/types.ts";
import type { WorkerConfig } from "../core/types.ts";
import type { LogFormat } from "../telemetry/log.ts";
import { CONFIG_FLAGS } from "./args.ts";
import { type CliIO, type CommandSpec, EXIT, loadCommandConfig } from "./command.ts";
import { LOG_FORMAT_FLAG } from "./run.ts";

export const DEFAULT_PREFLIGHT_TIMEOUT = "15s";

export interface PreflightOptions {
  config: WorkerConfig;
  logFormat: LogFormat;
  timeoutMs: number;
  output: "text" | "json";
  io: CliIO;
}

/**
 * Runs the preflight checks (src/preflight) and reports them on stdout as each ends: text, or
 * one JSON object per check per line. Returns EXIT.OK when all passed, EXIT.FAILURE when a
 * check failed, EXIT.UNREACHABLE when the API server cannot be reached, EXIT.USAGE when no
 * kubeconfig can be loaded, 130 after Ctrl-C (once the preflight Job is deleted).
 */
export async function runPreflight(options: PreflightOptions): Promise<number> {
  const { config, io } = options;
  // Loaded here, not at the top: only this command runs the checks on their own.
  const [{ loadKubeClient }, { KubeconfigError }, { formatCheckJson, formatCheckText, formatSummaryText }, { runPreflight: runPreflightChecks }] = await Promise.all([
    import("../kube/client.ts"),
    import("../kube/kubeconfig.ts"),
    import("../preflight/format.ts"),
    import("../preflight/run.ts"),
  ]);
  const print = (r: CheckResult) =>
    io.stdout(`${options.output === "json" ? formatCheckJson(r) : formatCheckText(r, { color: useColor(io) })}\n`);

  let kube: KubeClient;
  try {
    kube = loadKubeClient({ ...(config.kubernetes.kubeconfig ? { kubeconfig: config.kubernetes.kubeconfig } : {}), env: io.env });
  } catch (err) {
    if (!(err instanceof KubeconfigError)) throw err;
    const results: CheckResult[] = [
      { name: "connection", status: "fail", durationMs: 0, summary: err.message, details: [`kubeconfig: ${err.source}`], fix: "Set backend.kubernetes.kubeconfig or KUBECONFIG to a working kubeconfig, or run inside the cluster." },
      ...CHECK_NAMES.slice(1).map((name): CheckResult => ({ name, status: "skip", durationMs: 0, summary: "skipped: no usable kubeconfig" })),
    ];
    for (const r of results) print(r);
    // As `run` does: a kubeconfig that cannot be found or loaded is a configuration problem.
    return EXIT.USAGE;
  }

  // Ctrl-C (and SIGTERM): stop waiting, delete the preflight Job, then exit 130.
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) return;
    io.stderr("interrupted: deleting the preflight Job before exiting\n");
    interrupt.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let report: PreflightReport;
  try {
    report = await runPreflightChecks({ config, kube, timeoutMs: options.timeoutMs, signal: interrupt.signal, onResult: print });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (options.output !== "json") io.stdout(`${formatSummaryText(report)}\n`);
  return exitCodeFor(report);
}

function useColor(io: CliIO): boolean {
  return process.stdout.isTTY === true && !io.env.NO_COLOR && io.env.TERM !== "dumb";
}

export const preflightCommand: CommandSpec = {
  name: "preflight",
  summary: "Check that this namespace can run task Jobs (RBAC, admission, image pull), then exit",
  flags: [
    ...CONFIG_FLAGS,
    LOG_FORMAT_FLAG,
    { name: "timeout", kind: "string", placeholder: "DURATION", description: "How long to wait for the verdict", default: DEFAULT_PREFLIGHT_TIMEOUT },
    { name: "output", kind: "string", placeholder: "FORMAT", description: "Report format", choices: ["text", "json"], default: "text" },
  ],
  examples: ["oz-worker preflight --config-file config.yaml --output json"],
  async run(values, io) {
    const timeoutText = (values.timeout as string | undefined) ?? DEFAULT_PREFLIGHT_TIMEOUT;
    const timeoutMs = parseGoDuration(timeoutText);
    const timeoutOk = timeoutMs !== undefined && timeoutMs > 0;
    if (!timeoutOk) io.stderr(`--timeout: expected a positive duration such as 15s or 1m; got ${JSON.stringify(timeoutText)}\n`);
    // Config problems are reported too, so one run lists everything to fix.
    const config = await loadCommandConfig(values, io);
    if (!config || !timeoutOk) return EXIT.USAGE;
    return runPreflight({
      config,
      logFormat: ((values["log-format"] as string | undefined) ?? "auto") as LogFormat,
      timeoutMs: timeoutMs as number,
      output: ((values.output as string | undefined) ?? "text") as "text" | "json",
      io,
    });
  },
};
