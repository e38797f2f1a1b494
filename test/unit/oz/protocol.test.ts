import { describe, expect, test } from "bun:test";
import {
  LIMITS,
  parseFrame,
  parseServerMessage,
  parseTaskAssignment,
  taskCancelled,
  taskClaimed,
  taskCompleted,
  taskFailed,
  taskRejected,
  type TaskAssignment,
} from "../../../src/oz/protocol.ts";
import { SAMPLE_ASSIGNMENT } from "../../../src/core/sample-assignment.ts";

const SECRET = "ghp_topSecretValue_123";

/** A frame as the Oz server sends it (snake_case, Go-style owner). */
function wireAssignment(): Record<string, unknown> {
  return {
    task_id: "run-1",
    execution_id: "exec-2",
    task: {
      id: "run-1",
      title: "Fix the build",
      task_definition: { prompt: "Fix it" },
      created_at: "2025-06-02T14:03:11.123456Z",
      updated_at: "2025-06-02T14:03:12Z",
      owner: { Type: "TEAM", Id: 12 },
      agent_config_snapshot: {
        environment_id: "env_1",
        model_id: "claude-sonnet-4",
        mcp_servers: { github: { command: "gh-mcp" } },
        computer_use_enabled: false,
        idle_timeout_minutes: 20,
        harness: { type: "claude" },
        harness_auth_secrets: { claude_auth_secret_name: "c" },
        inference_providers: { aws: { role_arn: "arn:r", region: "us-east-1" } },
        session_sharing: { public_access: "VIEWER" },
        snapshot_disabled: true,
        snapshot_upload_timeout_secs: 90,
        snapshot_script_timeout_secs: 30,
        some_future_field: { x: 1 },
      },
      agent_conversation_id: "conv-1",
      some_future_task_field: true,
    },
    docker_image: "ghcr.io/acme/dev:1",
    sidecar_image: "warp/agent:1",
    env_vars: { GITHUB_TOKEN: SECRET, _UNDERSCORE: "" },
    additional_sidecars: [{ image: "corp/tools:1", mount_path: "/opt/tools", read_write: true }],
    additional_oz_args: ["--skip-initial-turn"],
    instance_shape: { vcpus: 4, memory_gb: 16 },
    unknown_top_level: "ignored",
  };
}

function expectError(data: unknown, ...fragments: string[]): string {
  const r = parseServerMessage("task_assignment", data);
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error("unreachable");
  for (const f of fragments) expect(r.error).toContain(f);
  expect(r.error).not.toContain(SECRET);
  return r.error;
}

function ok(data: unknown): TaskAssignment {
  const r = parseServerMessage("task_assignment", data);
  if (!r.ok) throw new Error(r.error);
  if (r.message.type !== "task_assignment") throw new Error("wrong type");
  return r.message.data;
}

describe("task_assignment: valid frames", () => {
  test("a full frame is parsed and normalized; unknown fields ignored", () => {
    const a = ok(wireAssignment());
    expect(a.task_id).toBe("run-1");
    expect(a.execution_id).toBe("exec-2");
    expect(a.task.owner).toEqual({ Type: "TEAM", Id: 12 });
    expect(a.task.agent_config_snapshot?.harness).toEqual({ type: "claude" });
    expect(a.task.agent_config_snapshot?.inference_providers?.aws).toEqual({ role_arn: "arn:r", region: "us-east-1" });
    expect(a.task.agent_config_snapshot?.session_sharing).toEqual({ public_access: "VIEWER" });
    expect(a.task.agent_config_snapshot?.computer_use_enabled).toBe(false);
    expect(a.env_vars).toEqual({ GITHUB_TOKEN: SECRET, _UNDERSCORE: "" });
    expect(a.additional_sidecars).toEqual([{ image: "corp/tools:1", mount_path: "/opt/tools", read_write: true }]);
    expect(a.additional_oz_args).toEqual(["--skip-initial-turn"]);
    expect(a.instance_shape).toEqual({ vcpus: 4, memory_gb: 16 });
    expect(JSON.stringify(a)).not.toContain("some_future");
    expect(JSON.stringify(a)).not.toContain("unknown_top_level");
  });

  test("a minimal frame gets defaults; execution_id falls back to task_id", () => {
    const a = ok({ task_id: "run-1", task: { id: "run-1" } });
    expect(a).toEqual({
      task_id: "run-1",
      execution_id: "run-1",
      task: { id: "run-1" },
      env_vars: {},
      additional_sidecars: [],
      additional_oz_args: [],
    });
  });

  test("blank execution_id and nulls behave like absent fields (Go zero values)", () => {
    const a = ok({
      task_id: "run-1", execution_id: "  ", task: { id: "run-1", owner: null, agent_config_snapshot: null },
      docker_image: null, sidecar_image: "", env_vars: null, additional_sidecars: null, additional_oz_args: null, instance_shape: null,
    });
    expect(a.execution_id).toBe("run-1");
    expect(a.docker_image).toBeUndefined();
    expect(a.sidecar_image).toBeUndefined();
    expect(a.task.owner).toBeUndefined();
    expect(a.env_vars).toEqual({});
    const s = ok({ task_id: "r", task: { id: "r" }, additional_sidecars: [{ image: "a", mount_path: "/b", read_write: null }] });
    expect(s.additional_sidecars[0]?.read_write).toBe(false);
  });

  test("snapshot fields of the wrong type are dropped, not fatal", () => {
    const a = ok({
      task_id: "r", task: { id: "r", title: 42, agent_config_snapshot: {
        model_id: 5, computer_use_enabled: "yes", idle_timeout_minutes: "10", harness: "claude",
        mcp_servers: ["not", "an", "object"], profile_id: "p1",
      } },
    });
    expect(a.task.title).toBeUndefined();
    expect(a.task.agent_config_snapshot).toEqual({ profile_id: "p1" });
  });

  test("a non-object snapshot is ignored", () => {
    expect(ok({ task_id: "r", task: { id: "r", agent_config_snapshot: "x" } }).task.agent_config_snapshot).toBeUndefined();
  });

  test("parseTaskAssignment gives the same result (render-pod --task)", () => {
    const viaType: unknown = parseServerMessage("task_assignment", wireAssignment());
    expect(parseTaskAssignment(wireAssignment())).toEqual(viaType as ReturnType<typeof parseTaskAssignment>);
    expect(parseTaskAssignment({ task_id: "r" })).toEqual({ ok: false, error: "data.task: is required", task_id: "r", failure_reason: "job_create" });
  });

  test("the sample assignment round-trips through JSON", () => {
    expect(ok(JSON.parse(JSON.stringify(SAMPLE_ASSIGNMENT)))).toEqual(SAMPLE_ASSIGNMENT);
    expect(SAMPLE_ASSIGNMENT.task.owner?.Type).toBe("TEAM");
    expect(Object.keys(SAMPLE_ASSIGNMENT.env_vars)).toEqual(["EXAMPLE_TOKEN"]);
  });
});

describe("task_assignment: invalid and hostile frames", () => {
  test("not an object", () => {
    expectError("x", "data: expected object, got string");
    expectError(null, "data: expected object, got null");
    expectError([], "data: expected object, got array");
  });
  test("missing task_id", () => {
    const d = wireAssignment();
    delete d.task_id;
    expectError(d, "data.task_id: is required");
  });
  test("task_id of the wrong type, empty, blank, or huge", () => {
    expectError({ ...wireAssignment(), task_id: 12 }, "data.task_id: expected string, got number");
    expectError({ ...wireAssignment(), task_id: "" }, "data.task_id: must not be empty");
    expectError({ ...wireAssignment(), task_id: "   " }, "data.task_id: must not be blank");
    expectError({ ...wireAssignment(), task_id: "x".repeat(10_000) }, "data.task_id: must be at most 256 characters");
    expectError({ ...wireAssignment(), task_id: "a\nb" }, "data.task_id: must not contain control characters");
  });
  test("missing or malformed task", () => {
    const d = wireAssignment();
    delete d.task;
    expectError(d, "data.task: is required");
    expectError({ ...wireAssignment(), task: [] }, "data.task: expected object, got array");
    expectError({ ...wireAssignment(), task: { title: "no id" } }, "data.task.id: is required");
  });
  test("errors carry the task_id when it could be read", () => {
    const r = parseServerMessage("task_assignment", { ...wireAssignment(), env_vars: { A: 1 } });
    expect(r).toEqual({ ok: false, error: "data.env_vars.A: value must be a string, got number", task_id: "run-1", failure_reason: "job_create" });
    const r2 = parseServerMessage("task_assignment", { task_id: 5 });
    expect(r2.ok).toBe(false);
    expect("task_id" in r2).toBe(false);
  });
  test("env var names are passed on as they are: the API server judges them", () => {
    // Kubernetes 1.34 accepts every printable ASCII character but '=' (verified on the sandbox);
    // '=', control characters and "" are left for it to refuse (job_create with its message).
    const names = ["MY-TOKEN", "my.dotted", "1START", "with space", "A=B", "A\nB", "", "É", "constructor", "prototype"];
    const a = ok({ ...wireAssignment(), env_vars: Object.fromEntries(names.map((n) => [n, SECRET])) });
    expect(Object.keys(a.env_vars).sort()).toEqual([...names].sort());
    expect(Object.getPrototypeOf(a.env_vars)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(a.env_vars, "constructor")?.value).toBe(SECRET);
  });
  test("env var values must be strings (any string, NUL included), never echoed", () => {
    const err = expectError({ ...wireAssignment(), env_vars: { TOKEN: { nested: SECRET } } }, "data.env_vars.TOKEN: value must be a string, got object");
    expect(err).not.toContain("nested");
    expect(ok({ ...wireAssignment(), env_vars: { TOKEN: `${SECRET}\u0000` } }).env_vars.TOKEN).toBe(`${SECRET}\u0000`);
  });
  test("env_vars have no count or size bound of their own (the Secret's 1 MiB is the API server's)", () => {
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`V${i}`, "x"]));
    expect(Object.keys(ok({ ...wireAssignment(), env_vars: many }).env_vars)).toHaveLength(10_000);
    const big = "x".repeat(2 * 1024 * 1024);
    expect(ok({ ...wireAssignment(), env_vars: { BIG: big } }).env_vars.BIG).toBe(big);
  });
  test("__proto__ in env_vars is refused, not silently dropped", () => {
    const data = JSON.parse(`{"task_id":"r","task":{"id":"r"},"env_vars":{"__proto__":"${SECRET}","OK":"x"}}`);
    expectError(data, "data.env_vars.__proto__: is a reserved name");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  test("images must be strings without whitespace", () => {
    expectError({ ...wireAssignment(), docker_image: 7 }, "data.docker_image: expected string, got number");
    expectError({ ...wireAssignment(), docker_image: "ubuntu 22.04" }, "data.docker_image: must not contain whitespace");
    expectError({ ...wireAssignment(), sidecar_image: "x".repeat(5000) }, "data.sidecar_image: must be at most 1024 characters");
  });
  test("arrays are not objects", () => {
    expectError({ ...wireAssignment(), env_vars: [SECRET] }, "data.env_vars: expected object, got array");
    expectError({ ...wireAssignment(), additional_sidecars: [[]] }, "data.additional_sidecars[0]: expected object, got array");
    expectError({ ...wireAssignment(), instance_shape: [4, 16] }, "data.instance_shape: expected object, got array");
    expectError({ ...wireAssignment(), task: { id: "r", owner: ["TEAM"] } }, "data.task.owner: expected object, got array");
  });
  test("sidecars: wrong shapes and too many", () => {
    expectError({ ...wireAssignment(), additional_sidecars: {} }, "data.additional_sidecars: expected array, got object");
    expectError({ ...wireAssignment(), additional_sidecars: [{ image: 1, mount_path: "/x" }] }, "data.additional_sidecars[0].image: expected string, got number");
    expectError({ ...wireAssignment(), additional_sidecars: [{ image: "a", mount_path: "/x", read_write: "yes" }] }, "data.additional_sidecars[0].read_write: expected boolean, got string");
    const many = Array.from({ length: 100 }, (_, i) => ({ image: "a", mount_path: `/m${i}` }));
    expect(ok({ ...wireAssignment(), additional_sidecars: many }).additional_sidecars).toHaveLength(100);
  });
  test("sidecar images share the image bound", () => {
    expectError({ ...wireAssignment(), additional_sidecars: [{ image: "a".repeat(LIMITS.imageLength + 1), mount_path: "/x" }] }, "data.additional_sidecars[0].image: must be at most 1024 characters");
    expect(ok({ ...wireAssignment(), additional_sidecars: [{ image: "a".repeat(LIMITS.imageLength), mount_path: "/x" }] }).additional_sidecars).toHaveLength(1);
  });
  test("additional_oz_args: strings only, no count or length bound", () => {
    expectError({ ...wireAssignment(), additional_oz_args: ["--a", 3] }, "data.additional_oz_args[1]: expected string, got number");
    expectError({ ...wireAssignment(), additional_oz_args: "--a" }, "data.additional_oz_args: expected array, got string");
    expect(ok({ ...wireAssignment(), additional_oz_args: Array(1000).fill("--x".repeat(10_000)) }).additional_oz_args).toHaveLength(1000);
  });
  test("instance_shape: finite numbers, no upper bound (an impossible shape is the scheduler's to refuse)", () => {
    expectError({ ...wireAssignment(), instance_shape: { vcpus: "4" } }, "data.instance_shape.vcpus: expected number, got string");
    expect(ok({ ...wireAssignment(), instance_shape: { vcpus: 4096, memory_gb: 1e6 } }).instance_shape).toEqual({ vcpus: 4096, memory_gb: 1e6 });
    expect(ok({ ...wireAssignment(), instance_shape: { vcpus: -1 } }).instance_shape).toEqual({ vcpus: -1 });
  });
  test("mcp_servers: nested up to the Go decoder's 10,000 levels, any size", () => {
    const nest = (levels: number) => {
      let deep: unknown = 1;
      for (let i = 0; i < levels; i++) deep = { a: deep };
      return deep as Record<string, unknown>;
    };
    const withMcp = (mcp: Record<string, unknown>) => {
      const d = wireAssignment();
      (d.task as { agent_config_snapshot: Record<string, unknown> }).agent_config_snapshot.mcp_servers = mcp;
      return d;
    };
    expectError(withMcp(nest(LIMITS.jsonBlobDepth + 1)), `data.task.agent_config_snapshot.mcp_servers: must be nested at most ${LIMITS.jsonBlobDepth} levels deep`);
    expect(ok(withMcp(nest(LIMITS.jsonBlobDepth))).task.agent_config_snapshot?.mcp_servers).toBeDefined();
    expect(ok(withMcp({ s: "x".repeat(1024 * 1024) })).task.agent_config_snapshot?.mcp_servers).toBeDefined();
  });
  test("informational and argument strings have no length bound", () => {
    const d = wireAssignment();
    const long = "t".repeat(5 * 1024 * 1024);
    const task = d.task as Record<string, unknown>;
    task.title = long;
    task.task_definition = { prompt: long };
    task.owner = { Type: long, Id: long };
    (task.agent_config_snapshot as Record<string, unknown>).model_id = long;
    const a = ok(d);
    expect(a.task.title).toBe(long);
    expect(a.task.agent_config_snapshot?.model_id).toBe(long);
  });
  test("task_id and execution_id stay bounded (they are on every log line of the task)", () => {
    expect(ok({ ...wireAssignment(), task_id: "x".repeat(LIMITS.idLength) }).task_id).toHaveLength(LIMITS.idLength);
    expectError({ ...wireAssignment(), execution_id: "x".repeat(LIMITS.idLength + 1) }, "data.execution_id: must be at most 256 characters");
  });
  test("a readable task_id comes with the failure reason of the first invalid field", () => {
    const reason = (extra: Record<string, unknown>) => {
      const r = parseServerMessage("task_assignment", { ...wireAssignment(), ...extra });
      return r.ok ? "ok" : r.failure_reason;
    };
    expect(reason({ docker_image: "ubuntu 22.04" })).toBe("invalid_image");
    expect(reason({ sidecar_image: 7 })).toBe("invalid_image");
    expect(reason({ additional_sidecars: [{ image: "a", mount_path: "/x", read_write: "yes" }] })).toBe("sidecar_prep");
    expect(reason({ instance_shape: { vcpus: "two" } })).toBe("job_create");
    expect(reason({ env_vars: { A: 1 } })).toBe("job_create");
    expect(reason({ task: { id: "" } })).toBe("job_create");
    const unreadable = parseServerMessage("task_assignment", { ...wireAssignment(), task_id: 5, docker_image: 5 });
    expect(unreadable.ok || "failure_reason" in unreadable).toBe(false);
  });
  test("error lists are capped and keys in paths are clipped", () => {
    const err = expectError({ task_id: 1, execution_id: 2, task: 3, docker_image: 4, sidecar_image: 5, env_vars: 6, additional_oz_args: 7 });
    expect(err).toContain("(and 2 more)");
    const longKey = `X${"Y".repeat(500)}-`;
    const err2 = expectError({ ...wireAssignment(), env_vars: { [longKey]: 1 } });
    expect(err2.length).toBeLessThan(400);
  });
});

describe("other server messages", () => {
  test("task_cancellation", () => {
    expect(parseServerMessage("task_cancellation", { task_id: "run-1", extra: 1 })).toEqual({
      ok: true, message: { type: "task_cancellation", data: { task_id: "run-1" } },
    });
    const r = parseServerMessage("task_cancellation", {});
    expect(r).toEqual({ ok: false, error: "data.task_id: is required" });
  });
  test("unknown types are not errors", () => {
    expect(parseServerMessage("heartbeat", undefined)).toEqual({ ok: true, message: { type: "unknown", type_name: "heartbeat" } });
    const r = parseServerMessage("z".repeat(1000), {});
    expect(r.ok && r.message.type === "unknown" && r.message.type_name.length).toBeLessThanOrEqual(65);
  });
});

describe("parseFrame", () => {
  test("valid envelope", () => {
    const r = parseFrame(JSON.stringify({ type: "task_assignment", data: wireAssignment() }));
    expect(r.ok && r.message.type).toBe("task_assignment");
  });
  test("invalid JSON, wrong envelope, oversize", () => {
    expect(parseFrame("{not json")).toEqual({ ok: false, error: "frame: not valid JSON" });
    expect(parseFrame("[1,2]")).toEqual({ ok: false, error: "frame: expected object, got array" });
    expect(parseFrame('{"type":5}')).toEqual({ ok: false, error: "type: expected string, got number" });
    expect(parseFrame("x".repeat(100), 10).ok).toBe(false);
  });
  test("a burst of random hostile frames never throws", () => {
    let s = 1;
    const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pieces = ['{"type":"task_assignment","data":', "{", "}", "[", "]", '"task_id":', '"x"', "1", "null", ",", '"env_vars":', '{"A":', "true", '"task":'];
    for (let i = 0; i < 3000; i++) {
      let text = "";
      const n = Math.floor(next() * 20);
      for (let j = 0; j < n; j++) text += pieces[Math.floor(next() * pieces.length)];
      expect(() => parseFrame(text)).not.toThrow();
    }
  });
});

describe("worker → server builders", () => {
  test("task_claimed", () => {
    expect(taskClaimed("run-1", "w1")).toEqual({ type: "task_claimed", data: { task_id: "run-1", worker_id: "w1" } });
  });
  test("task_rejected", () => {
    expect(taskRejected("run-1", "worker at maximum concurrency")).toEqual({
      type: "task_rejected", data: { task_id: "run-1", reason: "worker at maximum concurrency" },
    });
  });
  test("task_completed and its CANCELLED form", () => {
    expect(taskCompleted("run-1", "done")).toEqual({ type: "task_completed", data: { task_id: "run-1", message: "done" } });
    expect(taskCancelled("run-1", "cancelled by user")).toEqual({
      type: "task_completed", data: { task_id: "run-1", message: "cancelled by user", task_state: "CANCELLED" },
    });
  });
  test("task_failed with and without exit code", () => {
    expect(taskFailed("run-1", "container task exited 137", "container_oom", 137)).toEqual({
      type: "task_failed", data: { task_id: "run-1", message: "container task exited 137", failure_reason: "container_oom", exit_code: 137 },
    });
    const noCode = taskFailed("run-1", "image pull failed", "image_pull");
    expect("exit_code" in noCode.data).toBe(false);
    expect("exit_code" in taskFailed("r", "m", "unknown", 1.5).data).toBe(false);
  });
  test("an out-of-catalog reason becomes unknown; long messages are clipped", () => {
    expect(taskFailed("r", "m", "made_up" as never).data.failure_reason).toBe("unknown");
    const long = taskFailed("r", "x".repeat(100_000), "job_failed").data.message;
    expect(long.length).toBe(LIMITS.messageLength);
    expect(long).toContain("[truncated");
  });
});
