// Predicates on a task's Job and its pods as the API server reports them, read by more than one
// component (the watch cache, the task loop, re-adoption): whether the outcome was reported, and
// whether the Job controller is already ending the pods or only the worker would stop them.
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { REPORTED_OUTCOME_ANNOTATION } from "./naming.ts";

/** True when the Job records that its outcome was reported to Oz (the task loop's annotation). */
export function isReported(job: V1Job | undefined): boolean {
  return typeof job?.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION] === "string";
}

/** Condition types after which the Job controller itself ends the Job's pods (Kubernetes sets
 * FailureTarget / SuccessCriteriaMet first and Failed / Complete once the pods are gone). */
const FINISHING_CONDITIONS = new Set(["Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"]);

/**
 * True when the Job is finished or already being finished by the Job controller: then the
 * worker must not patch an already-passed activeDeadlineSeconds to stop its pods (it would only
 * overwrite the configured deadline on a Job kept for inspection).
 */
export function isJobFinishing(job: V1Job | undefined): boolean {
  return (job?.status?.conditions ?? []).some((c) => FINISHING_CONDITIONS.has(c.type) && c.status === "True");
}

/**
 * Whether a failed task's Job may still run pods that only the worker would stop: not when the
 * Job controller is finishing it, nor when every pod already ended (backoffLimit 0: the Job
 * controller fails the Job by itself, with its real reason, e.g. BackoffLimitExceeded).
 */
export function podsStillRun(job: V1Job | undefined, pods: readonly V1Pod[]): boolean {
  if (isJobFinishing(job)) return false;
  const ended = (p: V1Pod) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed";
  return !(pods.length > 0 && pods.every(ended));
}
