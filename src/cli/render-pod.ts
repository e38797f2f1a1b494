// `oz-worker render-pod`: print the Kubernetes objects `run` would create for a
// task assignment — the Job (or a Pod built from its template) and, unless the
// config keeps env inline, the per-task Secret — ready for review or for
// `kubectl apply --dry-run=server -f -`.
import type { V1Job, V1Pod, V1Secret } from "@kubernetes/client-node";
import { parse as parseYaml, stringify } from "yaml";
import { describeFsError } from "../config/load.ts";
import { buildTaskObjects, JobSpecError, redactTaskEnv, redactTaskSecret } from "../core/job-spec.ts";
import { SAMPLE_ASSIGNMENT } from "../core/sample-assignment.ts";
import type { WorkerConfig } from "../core/types.ts";
import { parseTaskAssignment, type TaskAssignment } from "../oz/protocol.ts";
import { REDACTED } from "../telemetry/secrets.ts";
import { CONFIG_FLAGS } from "./args.ts";
import { type CliIO, type CommandSpec, EXIT, loadCommandConfig } from "./command.ts";

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
async function readAssignment(path: string, io: CliIO): Promise<{ ok: true; assignment: TaskAssignment } | { ok: false; message: string }> {
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

export const renderPodCommand: CommandSpec = {
  name: "render-pod",
  summary: "Print the Job (or Pod) and Secret that run would create for a task assignment",
  flags: [
    ...CONFIG_FLAGS,
    { name: "task", kind: "string", placeholder: "FILE", description: "task_assignment data (JSON or YAML; - for stdin); a built-in sample when omitted" },
    { name: "kind", kind: "string", placeholder: "KIND", description: "job: the Job; pod: a v1 Pod from its template", choices: ["job", "pod"], default: "job" },
    { name: "output", kind: "string", placeholder: "FORMAT", description: "yaml documents, or json (a v1 List when there is a Secret)", choices: ["yaml", "json"], default: "yaml" },
    { name: "show-secrets", kind: "boolean", description: "Show env_vars and -e values instead of <redacted>" },
  ],
  examples: [
    "oz-worker render-pod --config-file config.yaml",
    "oz-worker render-pod --config-file config.yaml --task task.json --kind pod | kubectl apply --dry-run=server -f -",
  ],
  async run(values, io) {
    const taskPath = values.task as string | undefined;
    let taskError: string | undefined;
    if (taskPath === "-" && values["config-file"] === "-") taskError = "--task: - and --config-file - cannot both read standard input";
    // Config problems are reported together with a bad --task.
    const assignment = taskPath === undefined || taskError ? undefined : await readAssignment(taskPath, io);
    if (assignment && !assignment.ok) taskError = `--task: ${assignment.message}`;
    if (taskError) io.stderr(`${taskError}\n`);
    const config = await loadCommandConfig(values, io);
    if (!config || taskError) return EXIT.USAGE;

    let objects: (V1Job | V1Pod | V1Secret)[];
    try {
      objects = renderTaskObjects(config, assignment?.ok ? assignment.assignment : SAMPLE_ASSIGNMENT, {
        kind: values.kind === "pod" ? "pod" : "job",
        showSecrets: values["show-secrets"] === true,
      });
    } catch (err) {
      if (!(err instanceof JobSpecError)) throw err;
      io.stderr(`oz-worker render-pod: cannot build the task Job: ${err.message}\n`);
      return EXIT.FAILURE;
    }
    if (values.output === "json") {
      const out = objects.length === 1 ? objects[0] : { apiVersion: "v1", kind: "List", items: objects };
      io.stdout(`${JSON.stringify(out, null, 2)}\n`);
    } else {
      io.stdout(objects.map((o) => stringify(o)).join("---\n"));
    }
    return EXIT.OK;
  },
};
