// Check 3: the exact task Job `run` would create for a sample assignment (and, with env in a
// Secret, that Secret), created with dryRun=All: validation, mutating and validating admission
// (policy webhooks on Jobs) answer at once, and the API server's Warning headers (Pod Security
// warn/audit, unknown fields) are reported.
import type { V1Job, V1Secret } from "@kubernetes/client-node";
import { buildTaskObjects, JobSpecError } from "../../core/job-spec.ts";
import { SAMPLE_ASSIGNMENT } from "../../core/sample-assignment.ts";
import { kubeRequest } from "../../kube/raw.ts";
import { type CheckContext, requestSignal } from "../context.ts";
import { parsePodSecurity } from "../pod-security.ts";
import type { CheckResult } from "../types.ts";
import { explainCreateError, isAlreadyExists } from "./api-errors.ts";

export type DryRunResult = Omit<CheckResult, "name" | "durationMs">;

/** A short description of the Job's shape: how sidecars arrive, setup, env, template. */
export function describeTaskShape(ctx: Pick<CheckContext, "config">, job: V1Job, secret: V1Secret | undefined): string {
  const k8s = ctx.config.kubernetes;
  const spec = job.spec?.template?.spec;
  const inits = spec?.initContainers?.length ?? 0;
  const parts = [
    k8s.useImageVolumes ? "sidecars as image volumes" : `${inits} init container${inits === 1 ? "" : "s"} (root sidecar copies${k8s.setupCommand ? ", setup" : ""})`,
    secret ? `env in Secret ${secret.metadata?.name}` : "env inline",
  ];
  if (k8s.useImageVolumes && k8s.setupCommand) parts.push("setup init container");
  if (k8s.podTemplate) parts.push("pod_template merged");
  return parts.join(", ");
}

export async function checkDryRun(ctx: CheckContext): Promise<DryRunResult> {
  const ns = ctx.namespace;
  let objects: { job: V1Job; secret?: V1Secret };
  try {
    objects = buildTaskObjects(ctx.config, SAMPLE_ASSIGNMENT);
  } catch (err) {
    if (err instanceof JobSpecError) {
      return {
        status: "fail",
        summary: `the config cannot produce a task Job: ${err.message}`,
        fix: "Fix the sidecar or pod_template settings named above (oz-worker render-pod shows the Job).",
      };
    }
    throw err;
  }
  const { job, secret } = objects;
  const jobName = job.metadata?.name ?? "?";
  const signal = requestSignal(ctx);
  const create = <T>(path: string, body: unknown) =>
    kubeRequest<T>(ctx.kube, { method: "POST", path, query: { dryRun: "All" }, body, signal });
  const [jobRes, secretRes] = await Promise.all([
    create<V1Job>(`/apis/batch/v1/namespaces/${encodeURIComponent(ns)}/jobs`, job),
    secret ? create<V1Secret>(`/api/v1/namespaces/${encodeURIComponent(ns)}/secrets`, secret) : Promise.resolve(undefined),
  ]);

  const warnings = [...jobRes.warnings, ...(secretRes?.warnings ?? [])];
  const warningLines = warnings.map((w) => `warning: ${w}`);
  if (warnings.some((w) => parsePodSecurity(w))) {
    warningLines.push(
      "note: Pod Security enforce admits or rejects Pods, not Jobs; the preflight Job below shows whether pods of this shape are admitted",
    );
  }

  for (const [kind, res, name] of [
    ["Job", jobRes, jobName],
    ["Secret", secretRes, secret?.metadata?.name ?? "?"],
  ] as const) {
    if (!res || res.ok || isAlreadyExists(res)) continue;
    const f = explainCreateError(ctx, `task ${kind}`, kind === "Job" ? "jobs" : "secrets", name, res);
    return { ...f, ...withWarnings(warningLines, f.details) };
  }

  const shape = describeTaskShape(ctx, job, secret);
  return {
    status: "pass",
    summary: `task Job ${jobName} for a sample assignment passes validation and admission (dryRun=All; ${shape})${warnings.length ? `, with ${warnings.length} warning${warnings.length === 1 ? "" : "s"}` : ""}`,
    ...(warningLines.length ? { details: warningLines } : {}),
  };
}

function withWarnings(warnings: string[], details: string[] | undefined): { details?: string[] } {
  const all = [...(details ?? []), ...warnings];
  return all.length ? { details: all } : {};
}

