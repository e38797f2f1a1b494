// The task loop on its own ports (test/unit/worker/loop-fixture.ts): the life of a task from
// assignment to report and cleanup, cancellation, the max_concurrent_tasks limit and follow-up
// runs (same task_id, new execution_id). test/e2e/task-loop.test.ts runs the same against the
// sandbox's API server.
import { describe, expect, test } from "bun:test";
import { taskJobName } from "../../../src/core/naming.ts";
import { SECRET_VALUE } from "../core/fixtures.ts";
import { loopFixture } from "./loop-fixture.ts";

describe("TaskLoop: the happy path", () => {
  test("an assignment is claimed, its Job created and watched; once it succeeds Oz is told, the outcome recorded, the Job deleted", async () => {
    const f = loopFixture();
    f.assign("t1", "e1");
    expect(f.messages()).toEqual(["task_claimed t1"]);
    expect(f.sent[0]?.data.worker_id).toBe(f.config.workerId);
    expect(f.registered.has(SECRET_VALUE)).toBe(true);
    const job = await f.running("e1");
    expect(job).toBe(taskJobName("t1", "e1"));
    expect(f.loop.activeCount).toBe(1);

    f.report("e1", "succeeded");
    await f.loop.drain();
    expect(f.messages()).toEqual(["task_claimed t1", "task_completed t1"]);
    expect(f.calls).toEqual([`create ${job}`, `mark ${job} succeeded`, `delete ${job}`]);
    expect(f.finished).toEqual([expect.objectContaining({ result: "succeeded" })]);
    expect(f.loop.activeCount).toBe(0);
    expect(f.registered.has(SECRET_VALUE)).toBe(false);
  });

  test("a container that exits 3: task_failed with its exit code, recorded on the Job (kept for inspection), pods not stopped by the worker", async () => {
    const f = loopFixture();
    f.assign("t1", "e1");
    const job = await f.running("e1");
    f.report("e1", "exit-3");
    await f.loop.drain();
    const failed = f.sent.find((m) => m.type === "task_failed");
    expect(failed?.data).toMatchObject({ task_id: "t1", failure_reason: "container_exit", exit_code: 3 });
    expect(f.calls).toEqual([`create ${job}`, `mark ${job} failed container_exit 3`]);
    expect(f.finished).toEqual([expect.objectContaining({ result: "failed", failure: expect.objectContaining({ reason: "container_exit" }) })]);
  });

  test("with cleanup off a succeeded Job is recorded and kept", async () => {
    const f = loopFixture({ top: { cleanup: false } });
    f.assign("t1", "e1");
    const job = await f.running("e1");
    f.report("e1", "succeeded");
    await f.loop.drain();
    expect(f.calls).toEqual([`create ${job}`, `mark ${job} succeeded`]);
  });
});

describe("TaskLoop: cancellation", () => {
  test("a running task's Job is deleted and Oz answered CANCELLED once", async () => {
    const f = loopFixture();
    f.assign("t1", "e1");
    const job = await f.running("e1");
    f.loop.handleCancellation("t1");
    await f.loop.drain();
    expect(f.messages()).toEqual(["task_claimed t1", "task_completed t1 CANCELLED"]);
    expect(f.sent[1]?.data.message).toBe(`task cancelled; Job ${job} stopped`);
    expect(f.calls).toEqual([`create ${job}`, `delete ${job}`]);
    expect(f.finished).toEqual([expect.objectContaining({ result: "cancelled" })]);
    // The watch's later report of the deleted Job does not report the task again.
    f.report("e1", "exit-3");
    await f.loop.drain();
    expect(f.sent).toHaveLength(2);
  });

  test("with cleanup off the Job is suspended (its pods end) and kept", async () => {
    const f = loopFixture({ top: { cleanup: false } });
    f.assign("t1", "e1");
    const job = await f.running("e1");
    f.loop.handleCancellation("t1");
    await f.loop.drain();
    expect(f.calls).toEqual([`create ${job}`, `suspend ${job} cancelled`]);
    expect(f.messages()).toEqual(["task_claimed t1", "task_completed t1 CANCELLED"]);
  });

  test("a Job the API server refuses to delete is retried, then its pods are stopped through its deadline", async () => {
    const forbidden = () => Object.assign(new Error("jobs is forbidden"), { status: 403 });
    const f = loopFixture({ failures: { deleteJob: [forbidden(), forbidden(), forbidden()] } });
    f.assign("t1", "e1");
    const job = await f.running("e1");
    f.loop.handleCancellation("t1");
    await f.loop.drain();
    expect(f.calls).toEqual([`create ${job}`, `delete ${job}`, `delete ${job}`, `delete ${job}`, `mark ${job} cancelled stopPods`]);
    expect(String(f.sent[1]?.data.message)).toBe(`task cancelled; the pods of Job ${job} stopped (the Job is kept: jobs is forbidden)`);
  });

  test("a cancellation while the Job is being created takes effect once it exists; one for an unknown task is ignored", async () => {
    let created!: () => void;
    const f = loopFixture({ holdCreate: () => new Promise<void>((r) => (created = r)) });
    f.assign("t1", "e1");
    await f.waitFor("the Job create to start", () => created);
    f.loop.handleCancellation("t1");
    f.loop.handleCancellation("no-such-task");
    expect(f.calls).toEqual([]);
    created();
    await f.loop.drain();
    const job = taskJobName("t1", "e1");
    expect(f.calls).toEqual([`create ${job}`, `delete ${job}`]);
    expect(f.messages()).toEqual(["task_claimed t1", "task_completed t1 CANCELLED"]);
  });
});

describe("TaskLoop: capacity", () => {
  test("at max_concurrent_tasks an assignment is rejected; a finished task frees its slot", async () => {
    const f = loopFixture({ top: { maxConcurrentTasks: 1 } });
    f.assign("t1", "e1");
    await f.running("e1");
    f.assign("t2", "e2");
    expect(f.messages()).toEqual(["task_claimed t1", "task_rejected t2"]);
    expect(f.sent[1]?.data.reason).toBe("the worker is at its max_concurrent_tasks limit (1)");
    expect(f.rejected).toEqual(["at_capacity"]);
    expect(f.started).toHaveLength(1);

    f.report("e1", "succeeded");
    await f.loop.drain();
    f.assign("t3", "e3");
    await f.running("e3");
    expect(f.messages()).toEqual(["task_claimed t1", "task_rejected t2", "task_completed t1", "task_claimed t3"]);
  });

  test("a task whose outcome is still being sent no longer holds a slot", async () => {
    let flush!: () => void;
    const f = loopFixture({ top: { maxConcurrentTasks: 1 }, hold: (m) => (m.type === "task_completed" ? new Promise<void>((r) => (flush = r)) : undefined) });
    f.assign("t1", "e1");
    await f.running("e1");
    f.report("e1", "succeeded");
    await f.waitFor("the outcome to be on its way", () => flush);
    expect(f.loop.activeCount).toBe(0);
    f.assign("t2", "e2");
    expect(f.messages()).toEqual(["task_claimed t1", "task_completed t1", "task_claimed t2"]);
    flush();
    await f.loop.drain();
  });

  test("after stopAccepting every new assignment is rejected as shutting down; running Jobs are left alone", async () => {
    const f = loopFixture();
    f.assign("t1", "e1");
    const job = await f.running("e1");
    f.loop.stopAccepting();
    f.assign("t2", "e2");
    await f.loop.drain();
    expect(f.messages()).toEqual(["task_claimed t1", "task_rejected t2"]);
    expect(f.sent[1]?.data.reason).toBe("the worker is shutting down");
    expect(f.rejected).toEqual(["shutting_down"]);
    expect(f.calls).toEqual([`create ${job}`]);
    expect(f.loop.activeCount).toBe(1);
  });
});

describe("TaskLoop: repeats and follow-up runs", () => {
  test("a repeated assignment of a running run is claimed again and creates nothing", async () => {
    const f = loopFixture();
    f.assign("t1", "e1");
    const job = await f.running("e1");
    f.assign("t1", "e1");
    await f.loop.drain();
    expect(f.messages()).toEqual(["task_claimed t1", "task_claimed t1"]);
    expect(f.calls).toEqual([`create ${job}`]);
    expect(f.started).toHaveLength(1);
  });

  test("a repeat while the run's outcome is being sent is not claimed again", async () => {
    let flush!: () => void;
    const f = loopFixture({ hold: (m) => (m.type === "task_completed" ? new Promise<void>((r) => (flush = r)) : undefined) });
    f.assign("t1", "e1");
    await f.running("e1");
    f.report("e1", "succeeded");
    await f.waitFor("the outcome to be on its way", () => flush);
    f.assign("t1", "e1");
    flush();
    await f.loop.drain();
    expect(f.messages()).toEqual(["task_claimed t1", "task_completed t1"]);
    expect(f.started).toHaveLength(1);
  });

  test("a follow-up run (new execution_id) while the previous run lives gets its own Job and counts against the limit", async () => {
    const f = loopFixture({ top: { maxConcurrentTasks: 2 } });
    f.assign("t1", "e1");
    const first = await f.running("e1");
    f.assign("t1", "e2");
    const second = await f.running("e2");
    expect(second).not.toBe(first);
    expect(f.loop.activeCount).toBe(2);
    f.assign("t1", "e3");
    expect(f.messages()).toEqual(["task_claimed t1", "task_claimed t1", "task_rejected t1"]);

    // Each run reports for itself.
    f.report("e1", "succeeded");
    await f.loop.drain();
    expect(f.loop.activeCount).toBe(1);
    expect(f.calls).toEqual([`create ${first}`, `create ${second}`, `mark ${first} succeeded`, `delete ${first}`]);
  });

  test("a cancellation stops every run of the task and answers Oz once", async () => {
    const f = loopFixture();
    f.assign("t1", "e1");
    const first = await f.running("e1");
    f.assign("t1", "e2");
    const second = await f.running("e2");
    f.loop.handleCancellation("t1");
    await f.loop.drain();
    expect(f.calls.filter((c) => c.startsWith("delete")).sort()).toEqual([`delete ${first}`, `delete ${second}`].sort());
    expect(f.messages()).toEqual(["task_claimed t1", "task_claimed t1", "task_completed t1 CANCELLED"]);
    expect(f.finished.map((x) => x.result)).toEqual(["cancelled", "cancelled"]);
    expect(f.loop.activeCount).toBe(0);
  });
});
