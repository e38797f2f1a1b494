// The arguments passed to /agent/entrypoint.sh inside the task container, following the
// protocol's rule list in order. Pure.
import type { AgentConfigSnapshot, TaskAssignment } from "../oz/protocol.ts";
import type { WorkerConfig } from "./types.ts";

export type AgentArgsConfig = Pick<WorkerConfig, "serverRootUrl" | "idleOnComplete" | "sessionSharingServerUrl">;

const trimmed = (s: string | undefined): string => (typeof s === "string" ? s.trim() : "");

/** The built-in (Oz) harness: no harness block, no type, an empty type, or "oz". */
export function isBuiltInHarness(snapshot: AgentConfigSnapshot | undefined): boolean {
  const type = snapshot?.harness?.type;
  return type === undefined || type.trim() === "" || type.trim() === "oz";
}

/** A positive whole number from a loosely typed snapshot number, else undefined. */
function positiveWhole(n: number | undefined): number | undefined {
  if (typeof n !== "number" || !Number.isFinite(n)) return undefined;
  const whole = Math.floor(n);
  return whole > 0 ? whole : undefined;
}

/** JSON of mcp_servers with top-level keys sorted (the Go worker marshals a map). */
function mcpJson(servers: Record<string, unknown>): string {
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(servers).sort()) sorted[key] = servers[key];
  return JSON.stringify(sorted);
}

/**
 * Build the agent arguments:
 *  1. `agent run`
 *  2. `--share team:edit` only for a TEAM-owned task
 *  3. `--task-id <task.id> --sandboxed --server-root-url <url>`
 *  4. from the snapshot, in this order: `--model` (built-in harness only), `--profile`,
 *     `--skill`, `--mcp <json>`, `--computer-use`/`--no-computer-use` (explicit value wins;
 *     unset: on for the built-in harness, off otherwise), `--bedrock-inference-role`
 *     (+ `--bedrock-role-region`) when AWS is set and not disabled, `--harness <type>`,
 *     `--share public:view|edit`, `--no-snapshot`, `--snapshot-upload-timeout <n>s`,
 *     `--snapshot-script-timeout <n>s`, `--environment <id>`
 *  5. additional_oz_args verbatim
 *  6. `--idle-on-complete` followed by a separate value argument: `<n>m` from
 *     idle_timeout_minutes (> 0), else the worker's idle_on_complete, else no value
 *  7. last, when the worker has one: `--session-sharing-server-url <url>` (as the Go worker)
 * String values are trimmed; blank values omit their flag.
 */
export function buildAgentArgs(config: AgentArgsConfig, assignment: TaskAssignment): string[] {
  const task = assignment.task;
  const snap = task.agent_config_snapshot;
  const builtIn = isBuiltInHarness(snap);
  const args: string[] = ["agent", "run"];

  if (task.owner?.Type === "TEAM") args.push("--share", "team:edit");
  args.push("--task-id", task.id, "--sandboxed", "--server-root-url", config.serverRootUrl);

  const model = trimmed(snap?.model_id);
  if (model !== "" && builtIn) args.push("--model", model);
  const profile = trimmed(snap?.profile_id);
  if (profile !== "") args.push("--profile", profile);
  const skill = trimmed(snap?.skill_spec);
  if (skill !== "") args.push("--skill", skill);
  if (snap?.mcp_servers !== undefined && Object.keys(snap.mcp_servers).length > 0) {
    args.push("--mcp", mcpJson(snap.mcp_servers));
  }

  const computerUse = snap?.computer_use_enabled ?? builtIn;
  args.push(computerUse ? "--computer-use" : "--no-computer-use");

  const aws = snap?.inference_providers?.aws;
  const roleArn = trimmed(aws?.role_arn);
  if (aws !== undefined && aws.disabled !== true && roleArn !== "") {
    args.push("--bedrock-inference-role", roleArn);
    const region = trimmed(aws.region);
    if (region !== "") args.push("--bedrock-role-region", region);
  }

  const harness = trimmed(snap?.harness?.type);
  if (harness !== "") args.push("--harness", harness);

  const publicAccess = snap?.session_sharing?.public_access;
  if (publicAccess === "VIEWER") args.push("--share", "public:view");
  else if (publicAccess === "EDITOR") args.push("--share", "public:edit");

  if (snap?.snapshot_disabled === true) args.push("--no-snapshot");
  const uploadTimeout = positiveWhole(snap?.snapshot_upload_timeout_secs);
  if (uploadTimeout !== undefined) args.push("--snapshot-upload-timeout", `${uploadTimeout}s`);
  const scriptTimeout = positiveWhole(snap?.snapshot_script_timeout_secs);
  if (scriptTimeout !== undefined) args.push("--snapshot-script-timeout", `${scriptTimeout}s`);

  const environment = trimmed(snap?.environment_id);
  if (environment !== "") args.push("--environment", environment);

  args.push(...assignment.additional_oz_args);

  const idleMinutes = positiveWhole(snap?.idle_timeout_minutes);
  const idle =
    idleMinutes !== undefined ? `${idleMinutes}m` : trimmed(config.idleOnComplete);
  if (idle !== "") args.push("--idle-on-complete", idle);
  else args.push("--idle-on-complete");

  if (config.sessionSharingServerUrl) args.push("--session-sharing-server-url", config.sessionSharingServerUrl);

  return args;
}
