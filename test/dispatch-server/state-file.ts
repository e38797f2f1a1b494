// Persistence of task records for `--state FILE`.
//
// Writes are synchronous (temp file + rename, so a reader or a crash never sees
// a half-written file) and debounced: a burst of messages costs one write. The
// delay also grows with the time the last write took, so a large state file
// cannot keep the event loop busy serialising.

import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as v from "valibot";
import { describeIssues } from "./validation.ts";
import { TASK_STATES, type TaskRecord } from "./types.ts";

const STATE_VERSION = 1;

const TaskRecordSchema = v.object({
  task_id: v.pipe(v.string(), v.nonEmpty()),
  execution_id: v.string(),
  state: v.picklist(TASK_STATES),
  worker_id: v.nullable(v.string()),
  message: v.nullable(v.string()),
  failure_reason: v.nullable(v.string()),
  exit_code: v.nullable(v.number()),
  created_at: v.string(),
  updated_at: v.string(),
  events: v.array(
    v.object({
      at: v.string(),
      direction: v.picklist(["to_worker", "from_worker"]),
      type: v.string(),
      data: v.looseObject({}),
    }),
  ),
  assignment: v.looseObject({ task_id: v.string(), execution_id: v.string(), task: v.looseObject({}) }),
  target_worker_id: v.nullable(v.string()),
  cancel_requested_at: v.nullable(v.string()),
});

const StateSchema = v.object({
  version: v.literal(STATE_VERSION),
  tasks: v.array(TaskRecordSchema),
});

/**
 * Reads the records saved by a previous run, oldest first. A missing file is
 * an empty state; an unreadable one is an error, because starting empty would
 * overwrite the records the user asked to keep.
 */
export function loadState(path: string): TaskRecord[] {
  if (!existsSync(path)) return [];
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`state file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = v.safeParse(StateSchema, json);
  if (!parsed.success) {
    throw new Error(`state file ${path} has an unexpected shape: ${describeIssues(parsed.issues)}`);
  }
  return parsed.output.tasks;
}

export class StateWriter {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastWriteMs = 0;
  private readonly tempPath: string;

  private readonly path: string;
  private readonly snapshot: () => readonly TaskRecord[];
  private readonly onError: (error: Error) => void;
  private readonly debounceMs: number;
  constructor(
    path: string,
    snapshot: () => readonly TaskRecord[],
    onError: (error: Error) => void,
    debounceMs = 100,
  ) {
    this.path = path;
    this.snapshot = snapshot;
    this.onError = onError;
    this.debounceMs = debounceMs;
    // Same directory as the target, so the rename stays on one filesystem.
    this.tempPath = `${path}.${process.pid}.tmp`;
  }

  /** Notes that records changed; they are written once the burst settles. */
  markDirty(): void {
    if (this.timer !== undefined) return;
    const delay = Math.max(this.debounceMs, this.lastWriteMs * 4);
    this.timer = setTimeout(() => this.flush(), delay);
  }

  /** Writes now if anything is pending (used at shutdown). */
  flush(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const started = performance.now();
    try {
      writeFileSync(this.tempPath, JSON.stringify({ version: STATE_VERSION, tasks: this.snapshot() }));
      renameSync(this.tempPath, this.path);
    } catch (error) {
      this.onError(error as Error);
    }
    this.lastWriteMs = performance.now() - started;
  }
}
