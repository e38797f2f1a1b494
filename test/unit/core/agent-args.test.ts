import { describe, expect, test } from "bun:test";
import { buildAgentArgs, isBuiltInHarness } from "../../../src/core/agent-args.ts";
import type { AgentConfigSnapshot, TaskAssignment } from "../../../src/oz/protocol.ts";
import { makeAssignment, TASK_ID } from "./fixtures.ts";

const URL = "https://app.warp.dev";
const BASE = ["agent", "run", "--task-id", TASK_ID, "--sandboxed", "--server-root-url", URL];

function assignmentWith(
  snapshot: AgentConfigSnapshot | undefined,
  extra: Partial<TaskAssignment> = {},
  owner: "USER" | "TEAM" = "USER",
): TaskAssignment {
  const a = makeAssignment(extra);
  const task = { ...a.task, owner: { Type: owner, Id: 7 } };
  if (snapshot === undefined) delete (task as { agent_config_snapshot?: unknown }).agent_config_snapshot;
  else task.agent_config_snapshot = snapshot;
  return { ...a, task };
}

function args(
  snapshot: AgentConfigSnapshot | undefined,
  opts: { idle?: string; extra?: Partial<TaskAssignment>; owner?: "USER" | "TEAM" } = {},
): string[] {
  return buildAgentArgs(
    { serverRootUrl: URL, idleOnComplete: opts.idle },
    assignmentWith(snapshot, opts.extra ?? {}, opts.owner ?? "USER"),
  );
}

describe("base arguments", () => {
  test("USER-owned task: no team share", () => {
    expect(args({})).toEqual([...BASE, "--computer-use", "--idle-on-complete"]);
  });
  test("TEAM-owned task: --share team:edit right after `agent run`", () => {
    expect(args({}, { owner: "TEAM" })).toEqual([
      "agent", "run", "--share", "team:edit",
      "--task-id", TASK_ID, "--sandboxed", "--server-root-url", URL,
      "--computer-use", "--idle-on-complete",
    ]);
  });
  test("--task-id is task.id, not task_id", () => {
    const a = makeAssignment({ task_id: "run-id" });
    const out = buildAgentArgs({ serverRootUrl: URL }, { ...a, task: { ...a.task, id: "task-object-id" } });
    expect(out.slice(out.indexOf("--task-id"), out.indexOf("--task-id") + 2)).toEqual(["--task-id", "task-object-id"]);
  });
  test("no snapshot: built-in harness defaults", () => {
    expect(args(undefined)).toEqual([...BASE, "--computer-use", "--idle-on-complete"]);
  });
});

describe("snapshot rules (each row: snapshot → the args between the base and --idle-on-complete)", () => {
  const rows: Array<[string, AgentConfigSnapshot, string[]]> = [
    ["model for the built-in harness", { model_id: " gpt-5 " }, ["--model", "gpt-5", "--computer-use"]],
    ["model with harness 'oz'", { model_id: "m", harness: { type: "oz" } }, ["--model", "m", "--computer-use", "--harness", "oz"]],
    ["model with empty harness type", { model_id: "m", harness: { type: "" } }, ["--model", "m", "--computer-use"]],
    ["model with harness block without type", { model_id: "m", harness: {} }, ["--model", "m", "--computer-use"]],
    ["no model for a third-party harness", { model_id: "m", harness: { type: "claude" } }, ["--no-computer-use", "--harness", "claude"]],
    ["blank model omitted", { model_id: "   " }, ["--computer-use"]],
    ["profile", { profile_id: "prof-1" }, ["--profile", "prof-1", "--computer-use"]],
    ["skill", { skill_spec: "repo:skills/fix" }, ["--skill", "repo:skills/fix", "--computer-use"]],
    ["mcp as JSON with sorted top-level keys", { mcp_servers: { zeta: { url: "https://z" }, alpha: { command: "a", args: ["x"] } } },
      ["--mcp", '{"alpha":{"command":"a","args":["x"]},"zeta":{"url":"https://z"}}', "--computer-use"]],
    ["empty mcp omitted", { mcp_servers: {} }, ["--computer-use"]],
    ["computer use explicitly off", { computer_use_enabled: false }, ["--no-computer-use"]],
    ["computer use explicitly on for a third-party harness", { computer_use_enabled: true, harness: { type: "codex" } }, ["--computer-use", "--harness", "codex"]],
    ["computer use unset for a third-party harness is off", { harness: { type: "codex" } }, ["--no-computer-use", "--harness", "codex"]],
    ["bedrock role", { inference_providers: { aws: { role_arn: "arn:aws:iam::1:role/B" } } }, ["--computer-use", "--bedrock-inference-role", "arn:aws:iam::1:role/B"]],
    ["bedrock role + region (trimmed)", { inference_providers: { aws: { role_arn: "arn:r", region: "  us-east-1 " } } }, ["--computer-use", "--bedrock-inference-role", "arn:r", "--bedrock-role-region", "us-east-1"]],
    ["bedrock disabled", { inference_providers: { aws: { disabled: true, role_arn: "arn:r", region: "us-east-1" } } }, ["--computer-use"]],
    ["bedrock blank role", { inference_providers: { aws: { role_arn: "  ", region: "us-east-1" } } }, ["--computer-use"]],
    ["bedrock region without role", { inference_providers: { aws: { region: "us-east-1" } } }, ["--computer-use"]],
    ["harness trimmed", { harness: { type: " gemini " } }, ["--no-computer-use", "--harness", "gemini"]],
    ["public VIEWER share", { session_sharing: { public_access: "VIEWER" } }, ["--computer-use", "--share", "public:view"]],
    ["public EDITOR share", { session_sharing: { public_access: "EDITOR" } }, ["--computer-use", "--share", "public:edit"]],
    ["unsupported public access omitted", { session_sharing: { public_access: "FULL" } }, ["--computer-use"]],
    ["snapshot disabled", { snapshot_disabled: true }, ["--computer-use", "--no-snapshot"]],
    ["snapshot not disabled", { snapshot_disabled: false }, ["--computer-use"]],
    ["snapshot timeouts in seconds", { snapshot_upload_timeout_secs: 90, snapshot_script_timeout_secs: 45 },
      ["--computer-use", "--snapshot-upload-timeout", "90s", "--snapshot-script-timeout", "45s"]],
    ["non-positive snapshot timeouts omitted", { snapshot_upload_timeout_secs: 0, snapshot_script_timeout_secs: -5 }, ["--computer-use"]],
    ["environment", { environment_id: " env_123 " }, ["--computer-use", "--environment", "env_123"]],
  ];
  for (const [name, snapshot, middle] of rows) {
    test(name, () => {
      expect(args(snapshot)).toEqual([...BASE, ...middle, "--idle-on-complete"]);
    });
  }

  test("all rules together come in the documented order", () => {
    const out = args(
      {
        environment_id: "env_1",
        model_id: "m1",
        profile_id: "p1",
        skill_spec: "s1",
        mcp_servers: { a: {} },
        computer_use_enabled: true,
        harness: { type: "oz" },
        inference_providers: { aws: { role_arn: "arn:r", region: "eu-west-1" } },
        session_sharing: { public_access: "EDITOR" },
        snapshot_disabled: true,
        snapshot_upload_timeout_secs: 10,
        snapshot_script_timeout_secs: 20,
        idle_timeout_minutes: 12,
      },
      { owner: "TEAM", extra: { additional_oz_args: ["--skip-initial-turn", "--x=1"] } },
    );
    expect(out).toEqual([
      "agent", "run", "--share", "team:edit", "--task-id", TASK_ID, "--sandboxed", "--server-root-url", URL,
      "--model", "m1", "--profile", "p1", "--skill", "s1", "--mcp", '{"a":{}}', "--computer-use",
      "--bedrock-inference-role", "arn:r", "--bedrock-role-region", "eu-west-1", "--harness", "oz",
      "--share", "public:edit", "--no-snapshot", "--snapshot-upload-timeout", "10s",
      "--snapshot-script-timeout", "20s", "--environment", "env_1",
      "--skip-initial-turn", "--x=1", "--idle-on-complete", "12m",
    ]);
  });
});

describe("additional_oz_args and --idle-on-complete", () => {
  test("additional args are appended verbatim, before the idle flag", () => {
    expect(args({}, { extra: { additional_oz_args: ["--flag", "value with spaces", ""] } })).toEqual([
      ...BASE, "--computer-use", "--flag", "value with spaces", "", "--idle-on-complete",
    ]);
  });
  test("idle_timeout_minutes wins over the worker setting", () => {
    expect(args({ idle_timeout_minutes: 15 }, { idle: "30m" }).slice(-2)).toEqual(["--idle-on-complete", "15m"]);
  });
  test("worker idle_on_complete when the task sets none", () => {
    expect(args({}, { idle: "30m" }).slice(-2)).toEqual(["--idle-on-complete", "30m"]);
  });
  test("non-positive idle_timeout_minutes falls back to the worker value", () => {
    expect(args({ idle_timeout_minutes: 0 }, { idle: "20m" }).slice(-2)).toEqual(["--idle-on-complete", "20m"]);
  });
  test("the flag alone when neither is set", () => {
    const out = args({});
    expect(out.at(-1)).toBe("--idle-on-complete");
    expect(out.filter((a) => a === "--idle-on-complete")).toHaveLength(1);
  });
  test("--conversation is never forwarded", () => {
    const a = assignmentWith({});
    const out = buildAgentArgs({ serverRootUrl: URL }, { ...a, task: { ...a.task, agent_conversation_id: "c-1" } });
    expect(out.join(" ")).not.toContain("c-1");
  });
});

test("isBuiltInHarness", () => {
  expect(isBuiltInHarness(undefined)).toBe(true);
  expect(isBuiltInHarness({ harness: { type: "oz" } })).toBe(true);
  expect(isBuiltInHarness({ harness: { type: " " } })).toBe(true);
  expect(isBuiltInHarness({ harness: { type: "claude" } })).toBe(false);
});

describe("--session-sharing-server-url", () => {
  test("the worker's session sharing server URL comes last, after --idle-on-complete (as the Go worker appends it)", () => {
    const config = { serverRootUrl: URL, idleOnComplete: "10m", sessionSharingServerUrl: "ws://127.0.0.1:8081" };
    expect(buildAgentArgs(config, assignmentWith(undefined))).toEqual([
      ...BASE, "--computer-use", "--idle-on-complete", "10m", "--session-sharing-server-url", "ws://127.0.0.1:8081",
    ]);
    expect(buildAgentArgs({ serverRootUrl: URL }, assignmentWith(undefined))).not.toContain("--session-sharing-server-url");
  });
});
