// The dispatch core: task records, the queue, connected workers and the state
// machine driven by worker messages. It knows nothing about HTTP; the server
// shell feeds it requests and socket events.
//
// Every operation is O(1) or proportional to what it touches (one task, one
// worker's tasks), never to the number of tasks, so a benchmark that pushes
// hundreds of tasks through does not slow the server down as it fills up.

import { randomUUID } from "node:crypto";
import { FAILURE_REASONS, parseWorkerFrame, type WorkerMessage } from "./protocol.ts";
import {
  isTerminal,
  timestamp,
  type AssignmentData,
  type CreateTaskBody,
  type EventDirection,
  type JsonObject,
  type TaskRecord,
  type TaskState,
  type WorkerInfo,
} from "./types.ts";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** The part of Bun's ServerWebSocket the dispatcher uses. */
export interface WorkerSocket {
  /** Returns 0 when the message was dropped (socket closed or hopelessly backed up). */
  send(text: string): number;
  close(code: number, reason: string): void;
  terminate(): void;
}

export interface Connection {
  readonly workerId: string;
  readonly connectedAt: string;
  readonly socket: WorkerSocket;
}

export interface DispatcherOptions {
  log: Logger;
  /** Called after any record changed, to persist the state. */
  onChange: () => void;
  /** How long a rejected task waits before it is offered again. */
  retryDelayMs: number;
}

export type CreateResult = { ok: true; record: TaskRecord } | { ok: false; error: string };

export type CancelResult =
  | { status: "accepted"; record: TaskRecord }
  | { status: "not_found" }
  | { status: "finished"; record: TaskRecord };

/** Close code sent to a connection superseded by a newer one with the same worker_id. */
const CLOSE_REPLACED = 4000;

export class Dispatcher {
  /** Every record by task_id, in creation order. */
  private readonly tasks = new Map<string, TaskRecord>();
  /** Queued tasks any worker may take, in queue order. */
  private readonly anyQueue = new Set<string>();
  /** Queued tasks reserved for one worker, by that worker's ID. */
  private readonly targetQueues = new Map<string, Set<string>>();
  /** Rejected tasks sitting out the retry delay before they rejoin a queue. */
  private readonly retryTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly connections = new Map<string, Connection>();
  /** Round-robin order of connected workers; `cursor` indexes the next one. */
  private readonly rotation: Connection[] = [];
  private cursor = 0;
  /** Live (assigned or claimed) task IDs by the worker holding them. */
  private readonly held = new Map<string, Set<string>>();
  /**
   * The connection each assigned-but-unclaimed task was sent on. When that
   * connection drops, those tasks go back to the queue. Tasks restored from a
   * state file have no entry: their worker may still report on them.
   */
  private readonly assignedVia = new Map<string, Connection>();
  private pumpScheduled = false;
  private stopped = false;

  private readonly options: DispatcherOptions;
  constructor(
    options: DispatcherOptions,
    saved: readonly TaskRecord[],
  ) {
    this.options = options;
    for (const record of saved) {
      this.tasks.set(record.task_id, record);
      if (record.state === "queued") this.enqueue(record);
      else if (isLive(record.state) && record.worker_id !== null) this.hold(record.worker_id, record.task_id);
    }
    this.schedulePump();
  }

  /** All records, oldest first (the persisted order). */
  records(): TaskRecord[] {
    return [...this.tasks.values()];
  }

  /** All records, newest first. */
  list(): TaskRecord[] {
    return this.records().reverse();
  }

  get(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  workers(): WorkerInfo[] {
    return [...this.connections.values()].map((connection) => ({
      worker_id: connection.workerId,
      connected_at: connection.connectedAt,
      tasks: [...(this.held.get(connection.workerId) ?? [])],
    }));
  }

  create(body: CreateTaskBody): CreateResult {
    const { worker_id: target, task_id, execution_id, task, ...rest } = body;
    const taskId = task_id ?? randomUUID();
    // A task_id is the key of the HTTP API, so a second task under the same ID
    // would make the first unreachable.
    if (this.tasks.has(taskId)) return { ok: false, error: `task ${taskId} already exists` };
    const now = timestamp();
    const given = task ?? {};
    // Only absent fields are filled: explicit values, even odd ones, pass
    // through so tests can show the worker exactly what they want.
    const assignment: AssignmentData = {
      task_id: taskId,
      execution_id: execution_id ?? randomUUID(),
      ...rest,
      task: {
        ...given,
        id: given.id === undefined ? taskId : given.id,
        title: given.title === undefined ? `dev task ${taskId.slice(0, 8)}` : given.title,
        created_at: given.created_at === undefined ? now : given.created_at,
        updated_at: given.updated_at === undefined ? now : given.updated_at,
      },
    };
    const record: TaskRecord = {
      task_id: taskId,
      execution_id: assignment.execution_id,
      state: "queued",
      worker_id: target ?? null,
      message: null,
      failure_reason: null,
      exit_code: null,
      created_at: now,
      updated_at: now,
      events: [],
      assignment,
      target_worker_id: target ?? null,
      cancel_requested_at: null,
    };
    this.tasks.set(taskId, record);
    this.enqueue(record);
    this.options.onChange();
    this.schedulePump();
    return { ok: true, record };
  }

  cancel(taskId: string): CancelResult {
    const record = this.tasks.get(taskId);
    if (record === undefined) return { status: "not_found" };
    if (isTerminal(record.state)) return { status: "finished", record };
    const now = timestamp();
    record.cancel_requested_at ??= now;
    if (record.state === "queued") {
      // No worker has it, so there is nobody to ask: it ends here.
      this.dequeue(record);
      this.finishCancelledInQueue(record);
    } else {
      const connection = record.worker_id === null ? undefined : this.connections.get(record.worker_id);
      if (connection === undefined) {
        this.options.log.info(`task ${taskId}: worker ${record.worker_id} is away; cancellation sent when it reconnects`);
      } else {
        this.send(connection, record, "task_cancellation", { task_id: taskId });
      }
    }
    this.touch(record, now);
    return { status: "accepted", record };
  }

  connect(workerId: string, socket: WorkerSocket): Connection {
    const previous = this.connections.get(workerId);
    if (previous !== undefined) {
      // A reconnecting worker can beat the server to noticing that its old
      // socket died; the newest connection is the one that is alive.
      this.options.log.warn(`worker ${workerId} connected again; closing its previous connection`);
      this.dropConnection(previous);
      previous.socket.close(CLOSE_REPLACED, "replaced by a newer connection with the same worker_id");
    }
    const connection: Connection = { workerId, connectedAt: timestamp(), socket };
    this.connections.set(workerId, connection);
    this.rotation.push(connection);
    this.options.log.info(`worker ${workerId} connected (${this.connections.size} connected)`);
    this.deliverPendingCancellations(connection);
    this.schedulePump();
    return connection;
  }

  /** Drops a worker's socket on request (fault tests). False if not connected. */
  disconnect(workerId: string): boolean {
    const connection = this.connections.get(workerId);
    if (connection === undefined) return false;
    this.options.log.info(`worker ${workerId} disconnected on request`);
    this.dropConnection(connection);
    connection.socket.terminate();
    return true;
  }

  connectionClosed(connection: Connection, code: number, reason: string): void {
    // At shutdown the sockets close after the state was saved; tasks they
    // hold must stay with their workers for the next run.
    if (this.stopped || this.connections.get(connection.workerId) !== connection) return;
    this.options.log.info(`worker ${connection.workerId} disconnected (code ${code}${reason ? `: ${reason}` : ""})`);
    this.dropConnection(connection);
  }

  handleFrame(connection: Connection, frame: string | Uint8Array): void {
    const { log } = this.options;
    const parsed = parseWorkerFrame(frame);
    if (parsed.kind === "malformed") {
      log.warn(`worker ${connection.workerId}: ignoring malformed frame: ${parsed.error}`);
      return;
    }
    if (parsed.kind === "unknown_type") {
      log.warn(`worker ${connection.workerId}: ignoring message of unknown type ${JSON.stringify(parsed.type)}`);
      return;
    }
    const { message } = parsed;
    const record = this.tasks.get(message.data.task_id);
    if (record === undefined) {
      log.warn(`worker ${connection.workerId}: ignoring ${message.type} for unknown task ${message.data.task_id}`);
      return;
    }
    const now = timestamp();
    this.addEvent(record, "from_worker", message.type, message.data, now);
    this.apply(record, connection, message);
    this.touch(record, now);
  }

  /** Stops reacting to sockets so that shutdown leaves the saved state as it was. */
  shutdown(): void {
    this.stopped = true;
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    this.retryTimers.clear();
  }

  private apply(record: TaskRecord, connection: Connection, message: WorkerMessage): void {
    const { log } = this.options;
    const workerId = connection.workerId;
    const ignore = (why: string) =>
      log.warn(`worker ${workerId}: ${message.type} for task ${record.task_id} ${why}; recorded, state unchanged`);
    switch (message.type) {
      case "task_claimed": {
        if (message.data.worker_id != null && message.data.worker_id !== workerId) {
          log.warn(`worker ${workerId}: task_claimed names worker_id ${message.data.worker_id}`);
        }
        // A claim from a worker that lost the task (it was re-queued and sent
        // elsewhere while that worker was away) must not take it back.
        const claimable =
          record.state === "queued" || (record.state === "assigned" && record.worker_id === workerId);
        if (!claimable) return ignore(`while ${describeHolder(record)}`);
        this.dequeue(record);
        this.place(record, "claimed", workerId);
        return;
      }
      case "task_rejected": {
        if (record.state !== "assigned" || record.worker_id !== workerId) {
          return ignore(`while ${describeHolder(record)}`);
        }
        this.requeue(record, this.options.retryDelayMs);
        return;
      }
      case "task_completed":
      case "task_failed": {
        if (isTerminal(record.state)) return ignore(`after it finished (${record.state})`);
        // A final report ends the task whoever sends it: refusing it would
        // leave the task live forever.
        if (record.worker_id !== null && record.worker_id !== workerId && record.state !== "queued") {
          log.warn(`worker ${workerId}: ${message.type} for task ${record.task_id} held by ${record.worker_id}`);
        }
        this.dequeue(record);
        if (message.type === "task_completed") {
          this.place(record, message.data.task_state === "CANCELLED" ? "cancelled" : "succeeded", workerId);
          record.message = message.data.message ?? null;
        } else {
          const reason = message.data.failure_reason ?? null;
          if (reason !== null && !FAILURE_REASONS.has(reason)) {
            log.warn(`worker ${workerId}: task_failed for task ${record.task_id} has unknown failure_reason ${reason}`);
          }
          this.place(record, "failed", workerId);
          record.message = message.data.message ?? null;
          record.failure_reason = reason;
          record.exit_code = message.data.exit_code ?? null;
        }
        return;
      }
    }
  }

  /** Moves a record to a state and keeps the per-worker indexes in step. */
  private place(record: TaskRecord, state: TaskState, workerId: string | null): void {
    if (record.worker_id !== null && isLive(record.state)) {
      const tasks = this.held.get(record.worker_id);
      tasks?.delete(record.task_id);
      if (tasks?.size === 0) this.held.delete(record.worker_id);
    }
    this.assignedVia.delete(record.task_id);
    record.state = state;
    record.worker_id = workerId;
    if (workerId !== null && isLive(state)) this.hold(workerId, record.task_id);
  }

  private hold(workerId: string, taskId: string): void {
    let tasks = this.held.get(workerId);
    if (tasks === undefined) this.held.set(workerId, (tasks = new Set()));
    tasks.add(taskId);
  }

  private enqueue(record: TaskRecord): void {
    const target = record.target_worker_id;
    if (target === null) {
      this.anyQueue.add(record.task_id);
      return;
    }
    let queue = this.targetQueues.get(target);
    if (queue === undefined) this.targetQueues.set(target, (queue = new Set()));
    queue.add(record.task_id);
  }

  private dequeue(record: TaskRecord): void {
    this.anyQueue.delete(record.task_id);
    const target = record.target_worker_id;
    if (target !== null) {
      const queue = this.targetQueues.get(target);
      queue?.delete(record.task_id);
      if (queue?.size === 0) this.targetQueues.delete(target);
    }
    const timer = this.retryTimers.get(record.task_id);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.retryTimers.delete(record.task_id);
    }
  }

  /** Puts a live task back in the queue, after `delayMs` if it was rejected. */
  private requeue(record: TaskRecord, delayMs: number): void {
    this.place(record, "queued", record.target_worker_id);
    if (record.cancel_requested_at !== null) {
      // Handing it out again would run a task somebody already cancelled.
      this.finishCancelledInQueue(record);
      return;
    }
    if (delayMs <= 0) {
      this.enqueue(record);
      this.schedulePump();
      return;
    }
    const timer = setTimeout(() => {
      this.retryTimers.delete(record.task_id);
      this.enqueue(record);
      this.pump();
    }, delayMs);
    this.retryTimers.set(record.task_id, timer);
  }

  private finishCancelledInQueue(record: TaskRecord): void {
    this.place(record, "cancelled", record.worker_id);
    record.message = "cancelled before a worker claimed it";
  }

  private dropConnection(connection: Connection): void {
    if (this.connections.get(connection.workerId) !== connection) return;
    this.connections.delete(connection.workerId);
    const index = this.rotation.indexOf(connection);
    if (index !== -1) this.rotation.splice(index, 1);
    // Keep the cursor on the worker that was next, so the rotation stays fair.
    if (index !== -1 && index < this.cursor) this.cursor -= 1;
    if (this.cursor >= this.rotation.length) this.cursor = 0;
    const now = timestamp();
    for (const taskId of [...(this.held.get(connection.workerId) ?? [])]) {
      if (this.assignedVia.get(taskId) !== connection) continue;
      const record = this.tasks.get(taskId);
      if (record === undefined) continue;
      this.requeue(record, 0);
      this.touch(record, now);
    }
  }

  private deliverPendingCancellations(connection: Connection): void {
    const now = timestamp();
    for (const taskId of this.held.get(connection.workerId) ?? []) {
      const record = this.tasks.get(taskId);
      if (record === undefined || record.cancel_requested_at === null) continue;
      if (this.send(connection, record, "task_cancellation", { task_id: taskId })) this.touch(record, now);
    }
  }

  /** Coalesces the dispatch work of one burst (a request, a frame) into one pass. */
  private schedulePump(): void {
    if (this.pumpScheduled || this.stopped) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Hands queued tasks to connected workers: reserved ones first, then round-robin. */
  private pump(): void {
    if (this.stopped) return;
    for (const [workerId, queue] of this.targetQueues) {
      const connection = this.connections.get(workerId);
      if (connection === undefined) continue;
      for (const taskId of [...queue]) {
        if (!this.assign(taskId, connection)) break;
      }
    }
    while (this.rotation.length > 0) {
      const taskId = this.anyQueue.values().next().value;
      if (taskId === undefined) break;
      const connection = this.rotation[this.cursor];
      if (connection === undefined) break;
      this.cursor = (this.cursor + 1) % this.rotation.length;
      this.assign(taskId, connection);
    }
  }

  /** Sends a queued task to a worker; false when the socket turned out to be dead. */
  private assign(taskId: string, connection: Connection): boolean {
    const record = this.tasks.get(taskId);
    if (record === undefined) return true;
    this.dequeue(record);
    if (!this.send(connection, record, "task_assignment", record.assignment)) {
      this.enqueue(record);
      return false;
    }
    this.place(record, "assigned", connection.workerId);
    this.assignedVia.set(taskId, connection);
    this.touch(record, timestamp());
    return true;
  }

  private send(connection: Connection, record: TaskRecord, type: string, data: JsonObject): boolean {
    if (connection.socket.send(JSON.stringify({ type, data })) === 0) {
      this.options.log.warn(`worker ${connection.workerId}: ${type} for task ${record.task_id} was dropped; closing the connection`);
      this.dropConnection(connection);
      connection.socket.terminate();
      return false;
    }
    this.addEvent(record, "to_worker", type, data, timestamp());
    return true;
  }

  private addEvent(record: TaskRecord, direction: EventDirection, type: string, data: JsonObject, at: string): void {
    record.events.push({ at, direction, type, data });
  }

  private touch(record: TaskRecord, now: string): void {
    record.updated_at = now;
    this.options.onChange();
  }
}

function isLive(state: TaskState): boolean {
  return state === "assigned" || state === "claimed";
}

function describeHolder(record: TaskRecord): string {
  return record.worker_id === null ? record.state : `${record.state} by ${record.worker_id}`;
}
