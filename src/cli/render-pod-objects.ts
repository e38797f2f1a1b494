// What `oz-worker render-pod` prints: the task objects for an assignment, read from --task.
// render-pod.ts loads this module only when the command runs.
import type { V1Job, V1Pod, V1Secret } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";
import { describeFsError } from "../config/load.ts";
import { buildTaskObjects, redactTaskEnv, redactTaskSecret } from "../core/job-spec.ts";
import type { WorkerConfig } from "../core/types.ts";
import { parseTaskAssignment, type TaskAssignment } from "../oz/protocol.ts";
import { REDACTED } from "../telemetry/secrets.ts";
import type { CliIO } from "./command.ts";

export { JobSpecError } from "../core/job-spec.ts";
export { SAMPLE_ASSIGNMENT } from "../core/sample-assignment.ts";

/** A v1 Pod with the Job's pod template: what the Job controller would create, minus its bookkeeping. */
export function podFromJob(job: V1Job): V1Pod {
  const template = job.spec?.template;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      ...(job.metadata?.name !== undefined && { name: job.metadata.name }),
      ...(job.metadata?.namespace !== undefined && { namespace: job.metadata.namespace }),
      ...(template?.metadata?.labels && { labels: template.metadata.labels }),
      ...(template?.metadata?.annotations && { annotations: template.metadata.annotations }),
    },
    ...(template?.spec && { spec: template.spec }),
  };
}

/**
 * The objects to print, in apply order (the Secret first). Unless `showSecrets`,
 * the values of the assignment's env_vars and of the worker's `-e` overrides
 * are replaced by `<redacted>`.
 */
export function renderTaskObjects(
  config: WorkerConfig,
  assignment: TaskAssignment,
  options: { kind: "job" | "pod"; showSecrets: boolean },
): (V1Job | V1Pod | V1Secret)[] {
  let { job, secret } = buildTaskObjects(config, assignment);
  if (!options.showSecrets) {
    // -e values are as secret as env_vars (`-e GITHUB_TOKEN` passes a host secret through).
    const secretEnv = { ...assignment.env_vars, ...Object.fromEntries(config.env.map((e) => [e.name, e.value])) };
    job = redactTaskEnv(job, { ...assignment, env_vars: secretEnv }, REDACTED);
    if (secret) secret = redactTaskSecret(secret, REDACTED);
  }
  const main = options.kind === "pod" ? podFromJob(job) : { apiVersion: "batch/v1", kind: "Job", ...job };
  // Plain JSON data: no class instances, no undefined members.
  return JSON.parse(JSON.stringify(secret ? [secret, main] : [main]));
}

/** Reads `--task`: a task_assignment's data, or a whole `{type, data}` frame; JSON or YAML. */
export async function readAssignment(path: string, io: CliIO): Promise<{ ok: true; assignment: TaskAssignment } | { ok: false; message: string }> {
  let text: string;
  try {
    text = path === "-" ? await io.readStdin() : await io.readFile(path);
  } catch (err) {
    return { ok: false, message: `cannot read ${JSON.stringify(path)}: ${describeFsError(err)}` };
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    return { ok: false, message: `not JSON or YAML: ${(err as Error).message.split("\n")[0]}` };
  }
  const frame = data as { type?: unknown; data?: unknown } | null;
  if (frame && typeof frame === "object" && frame.type === "task_assignment" && "data" in frame) data = frame.data;
  const parsed = parseTaskAssignment(data);
  return parsed.ok ? { ok: true, assignment: parsed.message.data } : { ok: false, message: parsed.error };
}
