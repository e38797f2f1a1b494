// The startup gate of `oz-worker run`: the same checks as `oz-worker preflight`, logged; the
// worker accepts no task unless it passes. `--skip-preflight` skips it with a warning.
import type { WorkerConfig } from "../core/types.ts";
import { type KubeClient, loadKubeClient } from "../kube/client.ts";
import type { Logger } from "../telemetry/log.ts";
import type { PreflightKube } from "./context.ts";
import { runPreflight } from "./run.ts";
import { type CheckResult, exitCodeFor, type PreflightReport } from "./types.ts";

export interface StartupPreflightOptions {
  config: WorkerConfig;
  kube: PreflightKube;
  log: Logger;
  /** `--skip-preflight`. */
  skip?: boolean;
  timeoutMs?: number;
  /** SIGINT/SIGTERM during startup: the preflight Job is deleted before this resolves. */
  signal?: AbortSignal;
}

export interface StartupPreflightResult {
  /** True when the worker may go on (passed, or skipped on request). */
  ok: boolean;
  skipped: boolean;
  /** The process exit code when not ok: 1 a check failed, 3 unreachable, 130 interrupted. */
  exitCode: number;
  report?: PreflightReport;
}

/** Logs one check result: info when it passed or was skipped, error with details and fix when it failed. */
export function logCheckResult(log: Logger, r: CheckResult): void {
  const fields = {
    check: r.name,
    status: r.status,
    duration_ms: r.durationMs,
    ...(r.details?.length ? { details: r.details } : {}),
    ...(r.fix && r.status === "fail" ? { fix: r.fix } : {}),
  };
  const msg = `preflight ${r.name}: ${r.summary}`;
  if (r.status === "fail") log.error(msg, fields);
  else log.info(msg, fields);
}

export async function startupPreflight(opts: StartupPreflightOptions): Promise<StartupPreflightResult> {
  const ns = opts.config.kubernetes.namespace;
  if (opts.skip) {
    opts.log.warn(
      "preflight skipped (--skip-preflight): RBAC, Pod Security, policy and image pull problems will only show when tasks fail",
      { namespace: ns },
    );
    return { ok: true, skipped: true, exitCode: 0 };
  }
  const report = await runPreflight({
    config: opts.config,
    kube: opts.kube,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    onResult: (r) => logCheckResult(opts.log, r),
  });
  const exitCode = exitCodeFor(report);
  if (report.ok) {
    opts.log.info("preflight passed", { namespace: ns, duration_ms: report.durationMs });
  } else if (report.interrupted) {
    opts.log.warn("preflight interrupted; the preflight Job was deleted", { namespace: ns });
  } else {
    const failed = report.results.filter((r) => r.status === "fail").map((r) => r.name);
    opts.log.error(`preflight failed (${failed.join(", ")}): the worker will not accept tasks until namespace "${ns}" can run them`, {
      namespace: ns,
      failed,
    });
  }
  return { ok: report.ok, skipped: false, exitCode, report };
}

/**
 * The `preflight` hook of `runWorker` (src/worker/worker.ts `WorkerOptions.preflight`):
 * resolves true when every check passed. The worker has already checked that the API
 * server is reachable and handles `--skip-preflight` itself. `kube` defaults to a client
 * loaded from the config the way the worker loads its own.
 */
export async function preflightGate(
  config: WorkerConfig,
  logger: Logger,
  signal: AbortSignal,
  kube?: KubeClient,
  timeoutMs?: number,
): Promise<boolean> {
  const client = kube ?? loadKubeClient(config.kubernetes.kubeconfig ? { kubeconfig: config.kubernetes.kubeconfig } : {});
  const result = await startupPreflight({
    config,
    kube: client,
    log: logger,
    signal,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
  return result.ok;
}
