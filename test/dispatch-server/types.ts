// The data model of the dev dispatch server, shared with the test helper that
// drives it over HTTP (test/support/dispatch.ts).

export const TASK_STATES = ["queued", "assigned", "claimed", "succeeded", "failed", "cancelled"] as const;
export type TaskState = (typeof TASK_STATES)[number];

const TERMINAL_STATES: ReadonlySet<TaskState> = new Set<TaskState>(["succeeded", "failed", "cancelled"]);

export function isTerminal(state: TaskState): boolean {
  return TERMINAL_STATES.has(state);
}

export type JsonObject = { [key: string]: unknown };

export type EventDirection = "to_worker" | "from_worker";

/** One protocol message exchanged for a task, exactly as sent or received. */
export interface TaskEvent {
  at: string;
  direction: EventDirection;
  type: string;
  data: JsonObject;
}

/**
 * The `data` of the task_assignment frame the server sends. Only the fields the
 * server fills in are typed; everything else a caller supplied passes through
 * untouched, so tests can hand the worker any shape they want to exercise.
 */
export interface AssignmentData extends JsonObject {
  task_id: string;
  execution_id: string;
  task: JsonObject;
}

export interface TaskRecord {
  task_id: string;
  execution_id: string;
  state: TaskState;
  /**
   * The worker holding the task (assigned or claimed) or that finished it.
   * While queued: the worker the task is reserved for, else null.
   */
  worker_id: string | null;
  message: string | null;
  failure_reason: string | null;
  exit_code: number | null;
  created_at: string;
  updated_at: string;
  events: TaskEvent[];
  /** What task_assignment carries for this task. */
  assignment: AssignmentData;
  /** The `worker_id` given at creation: only that worker may receive the task. */
  target_worker_id: string | null;
  /** Set by the cancel endpoint; the task stays live until the worker reports. */
  cancel_requested_at: string | null;
}

export interface WorkerInfo {
  worker_id: string;
  connected_at: string;
  /** IDs of the tasks assigned to or claimed by this worker and not finished. */
  tasks: string[];
}

/** Body of `POST /v1/tasks`: a partial task_assignment `data` plus routing. */
export interface CreateTaskBody extends JsonObject {
  worker_id?: string;
  task_id?: string;
  execution_id?: string;
  task?: JsonObject;
}

/** The single timestamp format used in records, events and filled-in fields. */
export function timestamp(date: Date = new Date()): string {
  return date.toISOString();
}
