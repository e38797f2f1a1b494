// Check 1: which kubeconfig, which server and version, who we are, and whether the namespace
// exists (a namespace-scoped Role may not read its Namespace: then the dry run finds out).
import { ClusterUnreachableError } from "../../kube/api-errors.ts";
import { kubeRequest } from "../../kube/raw.ts";
import { type CheckContext, requestSignal } from "../context.ts";
import type { CheckResult } from "../types.ts";

export type ConnectionResult = Omit<CheckResult, "name" | "durationMs"> & { unreachable?: boolean };

const PSA_ENFORCE = "pod-security.kubernetes.io/enforce";

/** `explicit file X, context Y` (the client names the context for the default rules only). */
export function describeSource(kube: Pick<CheckContext["kube"], "source" | "context">): string {
  return kube.source.includes("context") || !kube.context ? kube.source : `${kube.source}, context ${kube.context}`;
}

export async function checkConnection(ctx: CheckContext): Promise<ConnectionResult> {
  const { kube, namespace } = ctx;
  const where = describeSource(kube);
  let version: string;
  try {
    const v = await kube.checkReachable({ timeoutMs: ctx.timeoutMs });
    version = v.gitVersion;
  } catch (err) {
    if (err instanceof ClusterUnreachableError) {
      return {
        status: "fail",
        unreachable: true,
        summary: `cannot reach the API server at ${kube.server} (${err.kind})`,
        details: [err.message, `kubeconfig: ${where}`],
        fix: unreachableFix(err.kind),
      };
    }
    throw err;
  }

  const signal = requestSignal(ctx);
  const [ns, review] = await Promise.all([
    kubeRequest<{ metadata?: { labels?: Record<string, string> } }>(kube, { path: `/api/v1/namespaces/${encodeURIComponent(namespace)}`, signal }),
    kubeRequest<{ status?: { userInfo?: { username?: string } } }>(kube, {
      method: "POST",
      path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
      body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
      signal,
    }).catch(() => undefined),
  ]);
  const username = review?.ok ? review.body?.status?.userInfo?.username : undefined;
  if (username) ctx.facts.username = username;
  const head = `Kubernetes ${version} at ${kube.server} (${where})${username ? ` as ${username}` : ""}`;

  if (ns.ok) {
    const labels = ns.body?.metadata?.labels ?? {};
    ctx.facts.namespaceLabels = labels;
    const enforce = labels[PSA_ENFORCE];
    return {
      status: "pass",
      summary: `${head}; namespace "${namespace}" exists${enforce ? ` (Pod Security enforce=${enforce})` : ""}`,
    };
  }
  if (ns.status === 404) {
    ctx.facts.namespaceMissing = true;
    return {
      status: "fail",
      summary: `${head}; namespace "${namespace}" does not exist`,
      details: [`GET namespaces/${namespace}: ${ns.error?.message ?? "NotFound"}`],
      fix: `Create it (kubectl create namespace ${namespace}) or set backend.kubernetes.namespace to the namespace the worker may use.`,
    };
  }
  if (ns.status === 403) {
    return {
      status: "pass",
      summary: `${head}; namespace "${namespace}" not verified (reading Namespaces is forbidden, as for a namespace-scoped Role): the dry run detects a missing namespace`,
    };
  }
  return {
    status: "fail",
    summary: `${head}; cannot read namespace "${namespace}" (HTTP ${ns.status})`,
    details: [`GET namespaces/${namespace}: ${ns.error?.message ?? `HTTP ${ns.status}`}`],
    fix: "The API server answered with an unexpected error; check its health (kubectl get --raw /readyz?verbose).",
  };
}

function unreachableFix(kind: ClusterUnreachableError["kind"]): string {
  switch (kind) {
    case "auth":
      return "The API server rejected the credentials: refresh the kubeconfig's user (token, client certificate, exec plugin) or the ServiceAccount token.";
    case "tls":
      return "Check the kubeconfig's certificate-authority(-data) and client certificate, and that the server URL matches the server's certificate.";
    case "timeout":
      return "Check that the API server is up and that this machine can reach it (VPN, firewall, proxy), then retry; raise --timeout for a slow link.";
    case "http":
      return "The API server answered with an error; check its health (kubectl get --raw /readyz?verbose).";
    default:
      return "Check that the API server is up and reachable from here (server URL in the kubeconfig, VPN, firewall, proxy).";
  }
}
