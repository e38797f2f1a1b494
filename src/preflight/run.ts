// The preflight: four checks in order, each reported the moment it ends. Later checks are
// skipped when an earlier result makes them meaningless (no cluster, no namespace, a permission
// they need is missing, or the caller aborted).
import type { WorkerConfig } from "../core/types.ts";
import { checkConnection } from "./checks/connection.ts";
import { checkDryRun } from "./checks/dry-run.ts";
import { checkPermissions } from "./checks/permissions.ts";
import { checkPreflightJob } from "./checks/preflight-job.ts";
import type { CheckContext, PreflightKube } from "./context.ts";
import { describePermission, type RequiredPermission } from "./permissions.ts";
import { type CheckName, type CheckResult, CHECK_NAMES, type PreflightReport } from "./types.ts";

export const DEFAULT_PREFLIGHT_TIMEOUT_MS = 15_000;

export interface RunPreflightOptions {
  config: WorkerConfig;
  /** The kube client (src/kube/client.ts `loadKubeClient`). */
  kube: PreflightKube;
  /** Deadline of the preflight Job's verdict and of each API request; default 15 s. */
  timeoutMs?: number;
  /** Abort (Ctrl-C): the remaining checks are skipped, the preflight Job is deleted, then the report returns. */
  signal?: AbortSignal;
  /** Called as each check ends, in order (skipped ones included). */
  onResult?: (result: CheckResult) => void;
}

/** Permissions each later check cannot do without (a Job the worker cannot delete is never created). */
const NEEDS: Partial<Record<CheckName, (p: RequiredPermission, inline: boolean) => boolean>> = {
  "dry-run": (p, inline) => (p.resource === "jobs" && p.verb === "create") || (!inline && p.resource === "secrets" && p.verb === "create"),
  "preflight-job": (p) =>
    (p.resource === "jobs" && (p.verb === "create" || p.verb === "delete")) ||
    (p.resource === "pods" && p.verb === "watch") ||
    (p.resource === "events" && p.verb === "list"),
};

export async function runPreflight(opts: RunPreflightOptions): Promise<PreflightReport> {
  const started = performance.now();
  const signal = opts.signal ?? new AbortController().signal;
  const ctx: CheckContext = {
    config: opts.config,
    kube: opts.kube,
    namespace: opts.config.kubernetes.namespace,
    timeoutMs: opts.timeoutMs ?? DEFAULT_PREFLIGHT_TIMEOUT_MS,
    signal,
    facts: {},
  };
  const results: CheckResult[] = [];
  let unreachable = false;
  let interrupted = false;
  let stopReason: string | undefined;

  const emit = (r: CheckResult) => {
    results.push(r);
    opts.onResult?.(r);
  };
  const skip = (name: CheckName, summary: string) => emit({ name, status: "skip", durationMs: 0, summary });

  for (const name of CHECK_NAMES) {
    if (signal.aborted) {
      interrupted = true;
      stopReason ??= "interrupted";
    }
    if (stopReason) {
      skip(name, `skipped: ${stopReason}`);
      continue;
    }
    const missing = (ctx.facts.missing ?? []).filter((p) => NEEDS[name]?.(p, opts.config.kubernetes.inlineTaskEnv));
    if (missing.length > 0) {
      skip(name, `skipped: needs ${missing.map(describePermission).join(", ")} (see permissions)`);
      continue;
    }
    if (ctx.facts.namespaceMissing) {
      skip(name, `skipped: namespace "${ctx.namespace}" does not exist`);
      continue;
    }
    const t0 = performance.now();
    let body: Omit<CheckResult, "name" | "durationMs"> & { unreachable?: boolean; interrupted?: boolean };
    try {
      body = await runCheck(name, ctx);
    } catch (err) {
      if (signal.aborted) {
        interrupted = true;
        body = { status: "fail", summary: "interrupted" };
      } else {
        body = { status: "fail", summary: `${name} check failed: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
    const { unreachable: down, interrupted: cut, ...rest } = body;
    emit({ name, durationMs: Math.round(performance.now() - t0), ...rest });
    if (down) {
      unreachable = true;
      stopReason = "the API server is unreachable";
    }
    if (cut || signal.aborted) {
      interrupted = true;
      stopReason = "interrupted";
    }
    if (name === "connection" && rest.status === "fail") stopReason ??= "the connection check failed";
  }

  return {
    ok: !interrupted && results.every((r) => r.status !== "fail"),
    results,
    unreachable,
    interrupted,
    namespace: ctx.namespace,
    durationMs: Math.round(performance.now() - started),
  };
}

function runCheck(name: CheckName, ctx: CheckContext) {
  switch (name) {
    case "connection":
      return checkConnection(ctx);
    case "permissions":
      return checkPermissions(ctx);
    case "dry-run":
      return checkDryRun(ctx);
    case "preflight-job":
      return checkPreflightJob(ctx);
  }
}
