// What the demo submits, what it expects, and how it shows progress. Pure.
import type { TaskRecord, TaskState } from "../../test/dispatch-server/types.ts";
import { type Column, formatDuration, renderTable, type Style } from "./table.ts";

export interface DemoTask {
  image: string;
  /** Cancel it once its pod runs. */
  cancel: boolean;
  expect: TaskState;
  /** The failure_reason the worker should report, when the image's scripted behaviour pins it. */
  expectReason?: string;
}

/** The default batch: successes, an exit-code failure, an image pull failure, one cancelled while running. */
export const DEFAULT_BATCH = "busybox:1.36,ubuntu:22.04,x:sleep-3,x:exit-3,x:pull-error,cancel:x:sleep-60";

/**
 * Parses a comma-separated list of images; a `cancel:` prefix marks a task to
 * cancel once its pod runs. The expected outcome follows from the sandbox's
 * image-tag behaviour (docs/sandbox.md).
 */
export function parseBatch(spec: string): DemoTask[] {
  const items = spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new Error("the task list is empty");
  return items.map((item) => {
    const cancel = item.startsWith("cancel:");
    const image = cancel ? item.slice("cancel:".length) : item;
    if (!image || /\s/.test(image)) throw new Error(`not an image: "${item}"`);
    if (cancel) return { image, cancel, expect: "cancelled" as const };
    return { image, cancel, ...expectedOutcome(image) };
  });
}

/** The outcome of an image in the sandbox, by its tag. */
export function expectedOutcome(image: string): { expect: TaskState; expectReason?: string } {
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  const tag = colon > slash ? image.slice(colon + 1) : "latest";
  if (/^exit-0+$/.test(tag)) return { expect: "succeeded" };
  if (/^exit-\d+$/.test(tag)) return { expect: "failed", expectReason: "container_exit" };
  if (tag === "oom") return { expect: "failed", expectReason: "container_oom" };
  if (tag === "pull-error") return { expect: "failed", expectReason: "image_pull" };
  if (tag === "invalid-image") return { expect: "failed", expectReason: "invalid_image" };
  if (tag === "config-error") return { expect: "failed", expectReason: "container_create" };
  return { expect: "succeeded" };
}

export interface DemoRow {
  taskId: string;
  image: string;
  state: TaskState;
  reason: string;
  /** ms from creation to the terminal report (or to now while live). */
  durationMs: number;
  terminal: boolean;
  note?: string;
}

const TERMINAL = new Set<TaskState>(["succeeded", "failed", "cancelled"]);

export function isTerminalState(state: TaskState): boolean {
  return TERMINAL.has(state);
}

/** What the demo shows as a task's reason. */
export function reasonOf(record: TaskRecord): string {
  if (record.state === "failed") {
    const exit = record.exit_code === null || record.exit_code === undefined ? "" : ` (exit ${record.exit_code})`;
    return `${record.failure_reason ?? "unknown"}${exit}`;
  }
  if (record.state === "cancelled") return record.cancel_requested_at ? "cancelled on request" : "cancelled";
  if (record.state === "claimed" && record.cancel_requested_at) return "cancel requested";
  return "";
}

/** The time of the terminal report, else now. */
export function rowOf(task: DemoTask, record: TaskRecord, now: number): DemoRow {
  const created = Date.parse(record.created_at);
  const terminal = isTerminalState(record.state);
  const end = terminal ? Date.parse(record.updated_at) : now;
  const row: DemoRow = { taskId: record.task_id, image: task.image, state: record.state, reason: reasonOf(record), durationMs: Math.max(0, end - created), terminal };
  if (terminal && record.state !== task.expect) row.note = `expected ${task.expect}`;
  else if (terminal && task.expectReason && record.state === "failed" && record.failure_reason !== task.expectReason) row.note = `expected reason ${task.expectReason}`;
  return row;
}

export function stateStyle(state: TaskState, style: Style): (s: string) => string {
  switch (state) {
    case "succeeded":
      return style.green;
    case "failed":
      return style.red;
    case "cancelled":
      return style.yellow;
    default:
      return style.cyan;
  }
}

export function demoTable(rows: readonly DemoRow[], style: Style): string[] {
  const columns: Column[] = [
    { header: "task" },
    { header: "image" },
    { header: "state", minWidth: 9 },
    { header: "reason", maxWidth: 48, minWidth: 24 },
    { header: "duration", align: "right" },
  ];
  return renderTable(
    columns,
    rows.map((r) => [
      r.taskId.slice(0, 8),
      r.image,
      stateStyle(r.state, style)(r.state),
      r.note ? `${r.reason}${r.reason ? " " : ""}${style.red(`[${r.note}]`)}` : r.reason,
      formatDuration(r.durationMs),
    ]),
  );
}

/** One appended line for a changed task (non-terminal output). */
export function changeLine(elapsedMs: number, row: DemoRow): string {
  const parts = [`+${(elapsedMs / 1000).toFixed(1)}s`.padStart(7), row.taskId.slice(0, 8), row.image.padEnd(14), row.state.padEnd(9)];
  if (row.reason) parts.push(row.reason);
  if (row.terminal) parts.push(`after ${formatDuration(row.durationMs)}`);
  if (row.note) parts.push(`[${row.note}]`);
  return parts.join("  ").trimEnd();
}

/** The header above change lines, aligned with changeLine's columns. */
export function changeHeader(): string {
  return ["time".padStart(7), "task".padEnd(8), "image".padEnd(14), "state".padEnd(9), "reason"].join("  ");
}

/** The part of a row whose change is worth a line. */
export function rowSignature(row: DemoRow): string {
  return `${row.state}|${row.reason}|${row.note ?? ""}`;
}

export interface Summary {
  expected: Record<string, number>;
  actual: Record<string, number>;
  ok: boolean;
  /** Tasks whose failure reason differs from the one their image pins (reported, not fatal). */
  reasonMismatches: number;
}

export function summarizeDemo(tasks: readonly DemoTask[], rows: readonly DemoRow[]): Summary {
  const expected: Record<string, number> = {};
  const actual: Record<string, number> = {};
  for (const t of tasks) expected[t.expect] = (expected[t.expect] ?? 0) + 1;
  for (const r of rows) actual[r.state] = (actual[r.state] ?? 0) + 1;
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  const ok = rows.length === tasks.length && [...keys].every((k) => (expected[k] ?? 0) === (actual[k] ?? 0)) && rows.every((r, i) => r.state === tasks[i]?.expect);
  const reasonMismatches = rows.filter((r) => r.note?.startsWith("expected reason")).length;
  return { expected, actual, ok, reasonMismatches };
}

export function summaryLine(s: Summary): string {
  const order = ["succeeded", "failed", "cancelled", "claimed", "assigned", "queued"];
  const keys = [...new Set([...order, ...Object.keys(s.expected), ...Object.keys(s.actual)])].filter((k) => (s.expected[k] ?? 0) > 0 || (s.actual[k] ?? 0) > 0);
  return keys.map((k) => `${k} ${s.actual[k] ?? 0}/${s.expected[k] ?? 0}`).join(", ");
}
