// admit (src/worker/admission.ts): whether the task loop takes an assignment, from the state of
// the run with the same execution_id it holds, whether it accepts work, and its active count.
import { describe, expect, test } from "bun:test";
import { admit, isActive } from "../../../src/worker/admission.ts";

const open = { existing: undefined, accepting: true, activeCount: 0, maxConcurrentTasks: 0 };

describe("admit", () => {
  test("a new run is accepted; with no limit (0) however many run", () => {
    expect(admit(open)).toEqual({ kind: "accept" });
    expect(admit({ ...open, activeCount: 500 })).toEqual({ kind: "accept" });
  });

  test("a repeat of a run being created or running is claimed again; of one finishing, ignored", () => {
    expect(admit({ ...open, existing: "starting" })).toEqual({ kind: "claim_again" });
    expect(admit({ ...open, existing: "running" })).toEqual({ kind: "claim_again" });
    expect(admit({ ...open, existing: "finishing" })).toEqual({ kind: "ignore" });
    // A repeat is answered as such even when a new run would be rejected.
    expect(admit({ existing: "running", accepting: false, activeCount: 3, maxConcurrentTasks: 1 })).toEqual({ kind: "claim_again" });
  });

  test("at the limit a new run (a follow-up run of a task included: it has its own execution_id) is rejected at_capacity", () => {
    expect(admit({ ...open, activeCount: 1, maxConcurrentTasks: 2 })).toEqual({ kind: "accept" });
    expect(admit({ ...open, activeCount: 2, maxConcurrentTasks: 2 })).toEqual({
      kind: "reject",
      metricReason: "at_capacity",
      reason: "the worker is at its max_concurrent_tasks limit (2)",
    });
  });

  test("a stopping worker rejects new runs as shutting_down, before counting capacity", () => {
    expect(admit({ ...open, accepting: false, activeCount: 5, maxConcurrentTasks: 1 })).toEqual({
      kind: "reject",
      metricReason: "shutting_down",
      reason: "the worker is shutting down",
    });
  });

  test("only runs being created or running hold a slot", () => {
    expect(["starting", "running", "finishing", "done"].filter((s) => isActive(s as "starting"))).toEqual(["starting", "running"]);
  });
});
