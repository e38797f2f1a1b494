// Check 2: one SelfSubjectAccessReview per required permission, all at once; every missing
// one listed, with a Role that grants them.
import { kubeRequest } from "../../kube/raw.ts";
import { type CheckContext, requestSignal } from "../context.ts";
import {
  describePermission,
  renderRoleSnippet,
  type RequiredPermission,
  requiredPermissions,
  subjectFromUsername,
} from "../permissions.ts";
import type { CheckResult } from "../types.ts";

interface AccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

export type PermissionsResult = Omit<CheckResult, "name" | "durationMs">;

export async function checkPermissions(ctx: CheckContext): Promise<PermissionsResult> {
  const perms = requiredPermissions(ctx.config);
  const signal = requestSignal(ctx);
  const answers = await Promise.all(
    perms.map(async (p) => {
      const [resource, subresource] = p.resource.split("/");
      const res = await kubeRequest<AccessReview>(ctx.kube, {
        method: "POST",
        path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: {
            resourceAttributes: {
              namespace: ctx.namespace,
              verb: p.verb,
              group: p.apiGroup,
              resource,
              ...(subresource ? { subresource } : {}),
            },
          },
        },
        signal,
      });
      return { p, res };
    }),
  );

  const broken = answers.find((a) => !a.res.ok);
  if (broken) {
    return {
      status: "fail",
      summary: `cannot ask the API server about permissions (SelfSubjectAccessReview: HTTP ${broken.res.status})`,
      details: [broken.res.error?.message ?? `HTTP ${broken.res.status}`],
      fix: "Every authenticated user may create SelfSubjectAccessReviews by default (ClusterRole system:basic-user); check that it is still bound to system:authenticated.",
    };
  }
  const missing: RequiredPermission[] = answers.filter((a) => a.res.body?.status?.allowed !== true).map((a) => a.p);
  ctx.facts.missing = missing;
  if (missing.length === 0) {
    return {
      status: "pass",
      summary: `all ${perms.length} permissions granted in namespace "${ctx.namespace}" (${summarize(perms)})`,
    };
  }
  const errors = answers.map((a) => a.res.body?.status?.evaluationError).filter((e): e is string => !!e);
  return {
    status: "fail",
    summary: `missing ${missing.length} of ${perms.length} permissions in namespace "${ctx.namespace}": ${missing.map(describePermission).join(", ")}`,
    details: [
      ...missing.map((p) => `missing: ${describePermission(p)}: needed to ${p.reason}`),
      ...(missing.length === perms.length
        ? [`none is granted: check that namespace "${ctx.namespace}" exists and that a RoleBinding in it binds the worker's Role to ${ctx.facts.username ?? "the worker's identity"}`]
        : []),
      ...[...new Set(errors)].map((e) => `authorizer: ${e}`),
    ],
    fix: roleFix(ctx.namespace, missing, ctx.facts.username),
  };
}

/** The fix for missing permissions: a Role and RoleBinding ready for `kubectl apply -f -`. */
export function roleFix(namespace: string, missing: readonly RequiredPermission[], username?: string): string {
  return [
    `Grant them with this Role and RoleBinding (save it and run kubectl apply -f FILE; or upgrade the Helm chart, whose Role has them all):`,
    renderRoleSnippet(namespace, missing, subjectFromUsername(username)),
  ].join("\n");
}

/** `jobs: create,get,...; pods: get,list,watch; ...`. */
function summarize(perms: readonly RequiredPermission[]): string {
  const by = new Map<string, string[]>();
  for (const p of perms) by.set(p.resource, [...(by.get(p.resource) ?? []), p.verb]);
  return [...by].map(([r, verbs]) => `${r} ${verbs.join(",")}`).join("; ");
}
