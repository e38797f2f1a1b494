import { describe, expect, test } from "bun:test";
import type { TaskRecord } from "../../../test/dispatch-server/types.ts";
import { changeHeader, changeLine, DEFAULT_BATCH, demoTable, expectedOutcome, parseBatch, reasonOf, rowOf, rowSignature, summarizeDemo, summaryLine } from "../../../scripts/lib/demo-model.ts";
import { makeStyle } from "../../../scripts/lib/table.ts";

function rec(over: Partial<TaskRecord>): TaskRecord {
  return {
    task_id: "0123456789abcdef",
    execution_id: "e",
    state: "claimed",
    worker_id: "demo-worker",
    message: null,
    failure_reason: null,
    exit_code: null,
    created_at: "2026-01-01T00:00:00.000Z",
    updated_at: "2026-01-01T00:00:04.500Z",
    events: [],
    assignment: { task_id: "0123456789abcdef", execution_id: "e", task: {} },
    target_worker_id: null,
    cancel_requested_at: null,
    ...over,
  };
}

describe("parseBatch", () => {
  test("the default batch: successes, two failures, one cancellation", () => {
    const b = parseBatch(DEFAULT_BATCH);
    expect(b.map((t) => t.expect)).toEqual(["succeeded", "succeeded", "succeeded", "failed", "failed", "cancelled"]);
    expect(b[3]!.expectReason).toBe("container_exit");
    expect(b[4]!.expectReason).toBe("image_pull");
    expect(b[5]).toEqual({ image: "x:sleep-60", cancel: true, expect: "cancelled" });
  });

  test("errors", () => {
    expect(() => parseBatch(" , ")).toThrow(/empty/);
    expect(() => parseBatch("cancel:")).toThrow(/not an image/);
  });
});

test("expectedOutcome follows the sandbox's image tags", () => {
  expect(expectedOutcome("busybox:1.36")).toEqual({ expect: "succeeded" });
  expect(expectedOutcome("x:exit-0")).toEqual({ expect: "succeeded" });
  expect(expectedOutcome("x:exit-3")).toEqual({ expect: "failed", expectReason: "container_exit" });
  expect(expectedOutcome("x:oom").expectReason).toBe("container_oom");
  expect(expectedOutcome("reg.io:5000/x:invalid-image").expectReason).toBe("invalid_image");
  expect(expectedOutcome("reg.io:5000/img")).toEqual({ expect: "succeeded" });
});

describe("rows", () => {
  test("reason of a failure carries the exit code; live tasks count to now", () => {
    const task = parseBatch("x:exit-3")[0]!;
    const failed = rowOf(task, rec({ state: "failed", failure_reason: "container_exit", exit_code: 3 }), 0);
    expect(failed).toMatchObject({ state: "failed", reason: "container_exit (exit 3)", durationMs: 4500, terminal: true });
    expect(failed.note).toBeUndefined();
    const live = rowOf(task, rec({}), Date.parse("2026-01-01T00:00:01.000Z"));
    expect(live.durationMs).toBe(1000);
  });

  test("unexpected outcomes are marked", () => {
    const task = parseBatch("x:exit-3")[0]!;
    expect(rowOf(task, rec({ state: "succeeded" }), 0).note).toBe("expected failed");
    expect(rowOf(task, rec({ state: "failed", failure_reason: "unknown" }), 0).note).toBe("expected reason container_exit");
  });

  test("cancellation reasons", () => {
    expect(reasonOf(rec({ state: "claimed", cancel_requested_at: "x" }))).toBe("cancel requested");
    expect(reasonOf(rec({ state: "cancelled", cancel_requested_at: "x" }))).toBe("cancelled on request");
  });

  test("table and change lines have no control codes without colour", () => {
    const task = parseBatch("x:exit-3")[0]!;
    const row = rowOf(task, rec({ state: "failed", failure_reason: "container_exit", exit_code: 3 }), 0);
    const lines = demoTable([row], makeStyle(false));
    expect(lines[0]).toBe("task      image     state      reason                    duration");
    expect(lines[2]).toBe("01234567  x:exit-3  failed     container_exit (exit 3)       4.5s");
    expect(changeLine(1234, row)).toBe("  +1.2s  01234567  x:exit-3        failed     container_exit (exit 3)  after 4.5s");
    expect(lines.join("") + changeLine(0, row)).not.toContain("\x1b");
  });

  test("a signature changes with state or reason only", () => {
    const task = parseBatch("busybox:1.36")[0]!;
    expect(rowSignature(rowOf(task, rec({}), 1))).toBe(rowSignature(rowOf(task, rec({}), 2)));
    expect(rowSignature(rowOf(task, rec({}), 1))).not.toBe(rowSignature(rowOf(task, rec({ state: "succeeded" }), 1)));
  });
});

describe("summary", () => {
  const batch = parseBatch("busybox:1.36,x:exit-3,cancel:x:sleep-60");
  const rows = (states: TaskRecord["state"][]) => states.map((s, i) => rowOf(batch[i]!, rec({ state: s, failure_reason: s === "failed" ? "container_exit" : null }), 0));

  test("counts match", () => {
    const s = summarizeDemo(batch, rows(["succeeded", "failed", "cancelled"]));
    expect(s.ok).toBe(true);
    expect(summaryLine(s)).toBe("succeeded 1/1, failed 1/1, cancelled 1/1");
  });

  test("a swap of outcomes between tasks is not ok even when counts match", () => {
    const b = parseBatch("busybox:1.36,x:exit-3");
    const r = ["failed", "succeeded"].map((s, i) => rowOf(b[i]!, rec({ state: s as TaskRecord["state"] }), 0));
    expect(summarizeDemo(b, r).ok).toBe(false);
  });

  test("a task left running is a mismatch", () => {
    const s = summarizeDemo(batch, rows(["succeeded", "failed", "claimed"]));
    expect(s.ok).toBe(false);
    expect(summaryLine(s)).toBe("succeeded 1/1, failed 1/1, cancelled 0/1, claimed 1/0");
  });
});

test("the change-line header lines up with the change lines", () => {
  const task = parseBatch("x:exit-3")[0]!;
  const line = changeLine(1234, rowOf(task, rec({ state: "failed", failure_reason: "container_exit", exit_code: 3 }), 0));
  expect(line.indexOf("01234567")).toBe(changeHeader().indexOf("task"));
  expect(line.indexOf("failed")).toBe(changeHeader().indexOf("state"));
  expect(line.indexOf("container_exit")).toBe(changeHeader().indexOf("reason"));
});
