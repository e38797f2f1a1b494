import { expect, test } from "bun:test";
import { FAILURE_REASONS, isFailureReason } from "../../../src/oz/failure-reasons.ts";

test("the catalog is the protocol's list, in order, without duplicates", () => {
  expect([...FAILURE_REASONS]).toEqual([
    "unknown", "task_timeout", "task_cancelled", "graceful_shutdown", "image_pull", "sidecar_prep",
    "container_create", "container_start", "container_wait", "container_exit", "container_oom",
    "workspace_setup", "setup_command", "agent_invocation", "teardown_command", "job_create",
    "job_watch", "job_failed", "evicted", "pod_watch", "unschedulable", "volume_mount",
    "init_container", "invalid_image", "active_deadline", "cleanup",
  ]);
  expect(new Set(FAILURE_REASONS).size).toBe(FAILURE_REASONS.length);
});

test("isFailureReason", () => {
  expect(isFailureReason("container_oom")).toBe(true);
  expect(isFailureReason("oom")).toBe(false);
  expect(isFailureReason(3)).toBe(false);
});
