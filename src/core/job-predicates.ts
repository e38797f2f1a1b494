// Predicates on a task's Job read by more than one component (the watch cache, re-adoption).
import type { V1Job } from "@kubernetes/client-node";
import { REPORTED_OUTCOME_ANNOTATION } from "./naming.ts";

/** True when the Job records that its outcome was reported to Oz (the task loop's annotation). */
export function isReported(job: V1Job | undefined): boolean {
  return typeof job?.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION] === "string";
}
