// Restart recovery: what a new worker does with the Jobs a previous worker with its ID left
// behind (re-adopt the unreported ones, finish the cleanup of reported ones, resume the ones
// held suspended for their Secret).
import type { V1Job } from "@kubernetes/client-node";
import { EXECUTION_ID_ANNOTATION, REPORTED_OUTCOME_ANNOTATION, TASK_ID_ANNOTATION } from "../core/naming.ts";
import type { FailedOutcome } from "../core/outcome.ts";
import type { Logger } from "../telemetry/log.ts";
import type { SecretRegistry } from "../telemetry/secrets.ts";
import { errorText } from "../util/errors.ts";
import { sleep } from "../util/timers.ts";
import { MARK_ATTEMPTS, retryPause } from "./reporting.ts";

export type LeftJob =
  /** Not a task Job of this worker, or already being deleted. */
  | { kind: "skip" }
  /** Its outcome was reported before the restart: only its cleanup may be left. */
  | { kind: "reported"; name: string }
  /** Unfinished or unreported: watched again and its outcome reported once. */
  | { kind: "adopt"; name: string; taskId: string; executionId: string; createdAt?: number; held: boolean };

/** What to do with a Job found in the (synced) watch cache after a restart. */
export function classifyLeftJob(job: V1Job): LeftJob {
  const ann = job.metadata?.annotations ?? {};
  const taskId = ann[TASK_ID_ANNOTATION];
  const name = job.metadata?.name;
  if (!taskId || !name || job.metadata?.deletionTimestamp) return { kind: "skip" };
  if (ann[REPORTED_OUTCOME_ANNOTATION]) return { kind: "reported", name };
  const created = Date.parse(job.metadata?.creationTimestamp as unknown as string);
  return {
    kind: "adopt",
    name,
    taskId,
    executionId: ann[EXECUTION_ID_ANNOTATION] || taskId,
    ...(Number.isFinite(created) ? { createdAt: created } : {}),
    held: job.spec?.suspend === true,
  };
}

/** Whether a Job reported before a restart is still to be deleted: a succeeded one, or (suspended) one that never ran, which no TTL removes. */
export function reportedJobToDelete(job: V1Job, cleanup: boolean): boolean {
  if (!cleanup) return false;
  const succeeded = (job.status?.conditions ?? []).some((c) => c.type === "Complete" && c.status === "True");
  return succeeded || job.spec?.suspend === true;
}

/**
 * Registers a re-adopted task's secret values for redaction (the assignment is gone). Returns
 * their release, `undefined` when the cluster cannot read them, or "withhold" when reading
 * failed: then the task's container logs are not written.
 */
export async function registerAdoptedSecrets(
  read: ((job: V1Job) => Promise<string[]>) | undefined,
  job: V1Job,
  secrets: Pick<SecretRegistry, "registerAll">,
  log: Logger,
): Promise<(() => void) | "withhold" | undefined> {
  if (!read) return undefined;
  try {
    return secrets.registerAll(await read(job));
  } catch (err) {
    log.warn("reading the re-adopted task's Secret for log redaction failed; its failed-container logs are not written", {
      job: job.metadata?.name,
      error: errorText(err),
    });
    return "withhold";
  }
}

export interface ResumeOptions {
  log: Logger;
  /** First pause before a retry (doubles, no jitter). */
  retryDelayMs: number;
  /** False once the task ended some other way: stop trying. */
  stillRunning: () => boolean;
  accepting: () => boolean;
}

/**
 * Resumes a re-adopted suspended Job (its worker stopped between creating it held and creating
 * its Secret or resuming it), retried a while: left as it is, the Job would never run.
 * `undefined` when the task ended meanwhile.
 */
export async function resumeHeldJob(
  resume: (job: V1Job) => Promise<"resumed" | "secret_missing">,
  job: V1Job,
  opts: ResumeOptions,
): Promise<"resumed" | "secret_missing" | undefined> {
  for (let attempt = 1; ; attempt++) {
    if (!opts.stillRunning()) return undefined;
    try {
      return await resume(job);
    } catch (err) {
      // Left as it is, the Job would never run: retry a while (the API server restarting).
      if (attempt >= MARK_ATTEMPTS || !opts.accepting()) throw err;
      opts.log.warn("resuming the Job a stopped worker had left suspended failed; retrying", { job: job.metadata?.name, attempt, error: errorText(err) });
      await sleep(retryPause(attempt, opts.retryDelayMs));
    }
  }
}

/** The outcome of a held Job whose Secret never came: its env_vars came only with the assignment. */
export function neverRanOutcome(jobName: string | undefined, namespace: string): FailedOutcome {
  return {
    state: "failed",
    reason: "job_create",
    message:
      `Job ${jobName} (namespace ${namespace}) never ran: the worker stopped after creating it ` +
      "and before creating the Secret with the task's env_vars, which cannot be recovered",
  };
}
