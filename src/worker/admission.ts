// Whether the task loop takes an assignment: a pure decision on what the loop already holds,
// so every case (a repeat, a follow-up run, capacity, shutdown) is testable without a loop.

/** Where a run of a task is in the loop (src/worker/task-loop.ts). */
export type TaskState = "starting" | "running" | "finishing" | "done";

export type Admission =
  /** A repeated assignment (the server re-sent it after a reconnect): claim again, create nothing. */
  | { kind: "claim_again" }
  /** A repeat of a run whose outcome is sent or on its way: a claim now would reopen a finished task. */
  | { kind: "ignore" }
  /** Rejected; `metricReason` labels the rejection metric, `reason` is sent to Oz. */
  | { kind: "reject"; metricReason: "shutting_down" | "at_capacity"; reason: string }
  /** A new run (a first assignment, or a follow-up run of the task under a new execution_id). */
  | { kind: "accept" };

export interface AdmissionInput {
  /** The state of the run with this execution_id the loop holds, if any. */
  existing: TaskState | undefined;
  accepting: boolean;
  /** Runs counted against the limit: those being created or running. */
  activeCount: number;
  /** max_concurrent_tasks; 0 = no limit. */
  maxConcurrentTasks: number;
}

/** Whether a run in this state holds a slot (a finishing run's pod has ended or is being stopped). */
export function isActive(state: TaskState): boolean {
  return state === "starting" || state === "running";
}

export function admit({ existing, accepting, activeCount, maxConcurrentTasks: limit }: AdmissionInput): Admission {
  if (existing !== undefined) return isActive(existing) ? { kind: "claim_again" } : { kind: "ignore" };
  if (!accepting) return { kind: "reject", metricReason: "shutting_down", reason: "the worker is shutting down" };
  if (limit > 0 && activeCount >= limit) {
    return { kind: "reject", metricReason: "at_capacity", reason: `the worker is at its max_concurrent_tasks limit (${limit})` };
  }
  return { kind: "accept" };
}
