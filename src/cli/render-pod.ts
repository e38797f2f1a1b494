// `oz-worker render-pod`: print the Kubernetes objects `run` would create for a
// task assignment — the Job (or a Pod built from its template) and, unless the
// config keeps env inline, the per-task Secret — ready for review or for
// `kubectl apply --dry-run=server -f -`. The objects are built in
// render-pod-objects.ts, loaded only when the command runs.
import type { V1Job, V1Pod, V1Secret } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { CONFIG_FLAGS } from "./args.ts";
import { type CommandSpec, EXIT, loadCommandConfig } from "./command.ts";

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
    const { JobSpecError, readAssignment, renderTaskObjects, SAMPLE_ASSIGNMENT } = await import("./render-pod-objects.ts");
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
