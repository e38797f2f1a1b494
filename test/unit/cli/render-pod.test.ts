// render-pod end to end through the CLI's main(), with the real Job spec core.
import { describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1Job, V1Pod, V1Secret } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import type { CliIO } from "../../../src/cli/command.ts";
import { main } from "../../../src/cli/cli.ts";
import { SAMPLE_ASSIGNMENT } from "../../../src/core/sample-assignment.ts";

const FIXTURES = join(import.meta.dir, "../../fixtures/config");
const TASK = join(FIXTURES, "task-assignment.json");

async function cli(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) {
  let stdout = "";
  let stderr = "";
  const io: CliIO = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    readStdin: async () => options.stdin ?? "",
    readFile: (p) => readFile(p, "utf8"),
    env: options.env ?? {},
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

const decode = (b64: string) => Buffer.from(b64, "base64").toString("utf8");
const containerEnv = (job: V1Job | V1Pod) => {
  const spec = "template" in (job.spec ?? {}) ? (job as V1Job).spec?.template.spec : (job as V1Pod).spec;
  return spec?.containers.find((c) => c.name === "task")?.env ?? [];
};

describe("render-pod", () => {
  test("default: the Secret, then the Job, as YAML documents; secrets redacted", async () => {
    const r = await cli(["render-pod", "--worker-id", "render-worker"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    expect(docs.map((d) => `${d.apiVersion}/${d.kind}`)).toEqual(["v1/Secret", "batch/v1/Job"]);
    const [secret, job] = docs as [V1Secret, V1Job];

    const token = SAMPLE_ASSIGNMENT.env_vars.EXAMPLE_TOKEN as string;
    expect(r.stdout).not.toContain(token);
    expect(decode(secret.data?.EXAMPLE_TOKEN ?? "")).toBe("<redacted>");
    // The Job only references the Secret.
    expect(containerEnv(job).find((e) => e.name === "EXAMPLE_TOKEN")).toEqual({
      name: "EXAMPLE_TOKEN",
      valueFrom: { secretKeyRef: { name: secret.metadata?.name as string, key: "EXAMPLE_TOKEN" } },
    });
    expect(job.metadata?.labels?.["oz-worker-id"]).toBe("render-worker");
    expect(job.spec?.template.spec?.restartPolicy).toBe("Never");
  });

  test("--show-secrets shows the values", async () => {
    const r = await cli(["render-pod", "--worker-id", "w", "--show-secrets", "--output", "json"]);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout);
    expect(decode(list.items[0].data.EXAMPLE_TOKEN)).toBe(SAMPLE_ASSIGNMENT.env_vars.EXAMPLE_TOKEN as string);
  });

  test("YAML and JSON output describe the same objects", async () => {
    const yaml = await cli(["render-pod", "--worker-id", "w", "--config-file", join(FIXTURES, "full.yaml")]);
    const json = await cli(["render-pod", "--worker-id", "w", "--config-file", join(FIXTURES, "full.yaml"), "--output", "json"]);
    const fromYaml = parseAllDocuments(yaml.stdout).map((d) => d.toJS());
    const fromJson = JSON.parse(json.stdout);
    expect(fromYaml).toEqual(fromJson.kind === "List" ? fromJson.items : [fromJson]);
  });

  test("--kind pod --output json: a v1 List of the Secret and a v1 Pod from the Job's template", async () => {
    const job = JSON.parse((await cli(["render-pod", "--worker-id", "w", "--output", "json"])).stdout).items[1] as V1Job;
    const r = await cli(["render-pod", "--worker-id", "w", "--kind", "pod", "--output", "json"]);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout);
    expect([list.apiVersion, list.kind]).toEqual(["v1", "List"]);
    const pod = list.items[1] as V1Pod;
    expect([pod.apiVersion, pod.kind]).toEqual(["v1", "Pod"]);
    expect(pod.metadata).toEqual({
      name: job.metadata?.name as string,
      namespace: "default",
      labels: job.spec?.template.metadata?.labels as Record<string, string>,
      ...(job.spec?.template.metadata?.annotations && { annotations: job.spec.template.metadata.annotations }),
    });
    expect(pod.spec).toEqual(job.spec?.template.spec as never);
  });

  test("inline_task_env: no Secret; inline values redacted unless --show-secrets", async () => {
    const config = "worker_id: w\nbackend:\n  kubernetes:\n    inline_task_env: true\n";
    const r = await cli(["render-pod", "--config-file", "-", "--output", "json"], { stdin: config });
    expect(r.code).toBe(0);
    const job = JSON.parse(r.stdout) as V1Job;
    expect(job.kind).toBe("Job");
    expect(containerEnv(job).find((e) => e.name === "EXAMPLE_TOKEN")).toEqual({ name: "EXAMPLE_TOKEN", value: "<redacted>" });

    const shown = await cli(["render-pod", "--config-file", "-", "--output", "json", "--show-secrets"], { stdin: config });
    expect(containerEnv(JSON.parse(shown.stdout)).find((e) => e.name === "EXAMPLE_TOKEN")?.value).toBe(
      SAMPLE_ASSIGNMENT.env_vars.EXAMPLE_TOKEN as string,
    );
  });

  test("-e values are redacted too (they often pass host secrets through)", async () => {
    const r = await cli(["render-pod", "--worker-id", "w", "-e", "GH_TOKEN", "--output", "json"], { env: { GH_TOKEN: "ghp_host_secret" } });
    expect(r.stdout).not.toContain("ghp_host_secret");
    expect(containerEnv(JSON.parse(r.stdout).items[1]).find((e) => e.name === "GH_TOKEN")).toEqual({ name: "GH_TOKEN", value: "<redacted>" });
    const shown = await cli(["render-pod", "--worker-id", "w", "-e", "GH_TOKEN", "--output", "json", "--show-secrets"], { env: { GH_TOKEN: "ghp_host_secret" } });
    expect(containerEnv(JSON.parse(shown.stdout).items[1]).find((e) => e.name === "GH_TOKEN")?.value).toBe("ghp_host_secret");
  });

  test("--task takes a task_assignment frame (or its data)", async () => {
    const r = await cli(["render-pod", "--worker-id", "w", "--task", TASK, "--output", "json"]);
    expect(r.code).toBe(0);
    const [secret, job] = JSON.parse(r.stdout).items as [V1Secret, V1Job];
    expect(job.metadata?.name).toBe("oz-task-run-42-exec-abcdef12");
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(["OTHER", "SECRET_TOKEN"]);
    expect(r.stdout).not.toContain("s3cr3t-value");

    const frame = JSON.parse(await readFile(TASK, "utf8"));
    const fromData = await cli(["render-pod", "--worker-id", "w", "--task", "-", "--output", "json"], { stdin: JSON.stringify(frame.data) });
    expect(fromData.stdout).toBe(r.stdout);
  });

  test("a bad --task is a usage error, reported with the config's errors", async () => {
    const bad = await cli(["render-pod", "--task", "-", "--config-file", join(FIXTURES, "three-mistakes.yaml")], { stdin: '{"task": {}}' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toStartWith("--task: data.task_id");
    expect(bad.stderr).toContain("invalid configuration: 3 errors");

    const notJson = await cli(["render-pod", "--worker-id", "w", "--task", "-"], { stdin: "{ nope" });
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toStartWith("--task: not JSON or YAML");

    const both = await cli(["render-pod", "--config-file", "-", "--task", "-"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("--task: - and --config-file - cannot both read standard input");
  });

  test("an assignment the Job spec refuses exits 1 with the reason", async () => {
    const frame = JSON.parse(await readFile(TASK, "utf8"));
    frame.data.additional_sidecars = [{ image: "busybox", mount_path: "/workspace", read_write: false }];
    const r = await cli(["render-pod", "--worker-id", "w", "--task", "-"], { stdin: JSON.stringify(frame) });
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith("oz-worker render-pod: cannot build the task Job: ");
    expect(r.stdout).toBe("");
  });

  test("config errors exit 2", async () => {
    const r = await cli(["render-pod", "--config-file", join(FIXTURES, "three-mistakes.yaml")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("invalid configuration: 3 errors");
  });
});
