// What the checks share while one preflight runs.
import type { WorkerConfig } from "../core/types.ts";
import { deadlineSignal, type KubeClient } from "../kube/client.ts";
import type { RequiredPermission } from "./permissions.ts";

/** The part of the kube client the checks use. */
export type PreflightKube = Pick<KubeClient, "fetch" | "checkReachable" | "source" | "server" | "context">;

export interface CheckContext {
  config: WorkerConfig;
  kube: PreflightKube;
  namespace: string;
  /** Deadline of the preflight Job's verdict, and of each single API request. */
  timeoutMs: number;
  /** The caller's signal (Ctrl-C); never aborts the preflight Job's deletion. */
  signal: AbortSignal;
  /** Facts earlier checks learned, for later ones. */
  facts: {
    /** The authenticated user, from a SelfSubjectReview. */
    username?: string;
    /** The namespace's labels, when it could be read. */
    namespaceLabels?: Record<string, string>;
    /** The namespace is known not to exist. */
    namespaceMissing?: boolean;
    /** Permissions the SelfSubjectAccessReviews denied. */
    missing?: RequiredPermission[];
  };
}

/** A request signal: the caller's, bounded by the per-request timeout. */
export function requestSignal(ctx: Pick<CheckContext, "signal" | "timeoutMs">): AbortSignal {
  return AbortSignal.any([ctx.signal, deadlineSignal(ctx.timeoutMs)]);
}

/** Whether a thrown value is the caller's abort (not a timeout). */
export function isAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted && (err === signal.reason || (err instanceof Error && err.name === "AbortError"));
}
