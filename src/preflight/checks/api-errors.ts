// Explaining a refused create (dry run or real) by cause: missing namespace, policy webhook,
// RBAC, invalid object; anything else quoted.
import type { RawResult } from "../../kube/raw.ts";
import type { CheckContext } from "../context.ts";
import { REQUIRED_PERMISSIONS } from "../permissions.ts";
import type { CheckResult } from "../types.ts";
import { roleFix } from "./permissions.ts";

export type Explained = Omit<CheckResult, "name" | "durationMs">;

export function isAlreadyExists(res: RawResult): boolean {
  // The name is taken by a real object; everything before storage (validation, admission) passed.
  return res.status === 409 && res.error?.reason === "AlreadyExists";
}

/** `HTTP 403 Forbidden: <the API server's message>`. */
export function quoteStatus(res: RawResult): string {
  const err = res.error;
  return `HTTP ${res.status}${err?.reason ? ` ${err.reason}` : ""}: ${err?.message ?? ""}`.trim();
}

/**
 * Why the API server refused to create `what` (e.g. "task Job", "preflight Job") of `resource`
 * ("jobs", "secrets") named `name`, and what to change.
 */
export function explainCreateError(ctx: CheckContext, what: string, resource: string, name: string, res: RawResult): Explained {
  const ns = ctx.namespace;
  const msg = res.error?.message ?? "";
  const q = `create ${what} ${name}: ${quoteStatus(res)}`;
  if (res.status === 404 && (res.error?.details?.kind === "namespaces" || /namespaces? "[^"]*" not found/.test(msg))) {
    ctx.facts.namespaceMissing = true;
    return {
      status: "fail",
      summary: `namespace "${ns}" does not exist`,
      details: [q],
      fix: `Create it (kubectl create namespace ${ns}) or set backend.kubernetes.namespace to the namespace the worker may use.`,
    };
  }
  const webhook = /admission webhook "([^"]+)"/.exec(msg);
  if (webhook) {
    return {
      status: "fail",
      summary: `the admission webhook "${webhook[1]}" rejects the ${what} in namespace "${ns}"`,
      details: [q],
      fix: `A policy engine (Gatekeeper, Kyverno, ...) rejects the worker's ${what}: ask for an exception for oz-worker in namespace "${ns}", or adjust pod_template to satisfy the policy.`,
    };
  }
  if (res.status === 403) {
    const perm = REQUIRED_PERMISSIONS.filter((p) => p.resource === resource && p.verb === "create");
    const rbac = /is forbidden: User /.test(msg);
    return {
      status: "fail",
      summary: `forbidden to create the ${what} in namespace "${ns}"`,
      details: [q],
      fix: rbac ? roleFix(ns, perm, ctx.facts.username) : "An admission plugin forbids it; see the message above.",
    };
  }
  if (res.status === 422 && ctx.config.kubernetes.useImageVolumes && /volumes\[\d+\].*must specify a volume type/.test(msg)) {
    return {
      status: "fail",
      summary: `the API server does not accept image volumes (the ${what} ${name} lost its image volume source)`,
      details: [q],
      fix: "Image volumes need Kubernetes >= 1.33 with the ImageVolume feature enabled on the API server and the nodes; enable it, or set backend.kubernetes.use_image_volumes: false.",
    };
  }
  if (res.status === 422 || res.status === 400) {
    const causes = (res.error?.details?.causes ?? []).map((c) => `${c.field ? `${c.field}: ` : ""}${c.message ?? c.reason ?? ""}`);
    return {
      status: "fail",
      summary: `the API server rejects the ${what} ${name} as invalid`,
      details: [q, ...causes.map((c) => `invalid: ${c}`)],
      fix: "Fix the config values behind the fields named above (pod_template, resources, labels, images); oz-worker render-pod prints the task Job.",
    };
  }
  return {
    status: "fail",
    summary: `the API server refused the ${what} ${name} (HTTP ${res.status})`,
    details: [q],
    fix:
      res.status >= 500
        ? "An API server error, often a failing admission webhook; check the webhook's service and the API server's health."
        : "See the message above.",
  };
}
