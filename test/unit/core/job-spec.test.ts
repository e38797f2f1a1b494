import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Container, V1Job, V1PodSpec } from "@kubernetes/client-node";
import YAML from "yaml";
import { buildAgentArgs } from "../../../src/core/agent-args.ts";
import {
  buildTaskJob,
  buildTaskObjects,
  buildTaskSecret,
  JobSpecError,
  redactTaskEnv,
  SIDECAR_COPY_SCRIPT,
  TASK_WRAPPER_SCRIPT,
  withOwner,
} from "../../../src/core/job-spec.ts";
import { EXECUTION_ID_ANNOTATION, TASK_ID_ANNOTATION, shortHash, taskSecretKeyFor } from "../../../src/core/naming.ts";
import type { WorkerConfig } from "../../../src/core/types.ts";
import type { TaskAssignment } from "../../../src/oz/protocol.ts";
import { EXECUTION_ID, makeAssignment, makeConfig, SECRET_VALUE, TASK_ID } from "./fixtures.ts";

const JOB_NAME = `oz-task-${TASK_ID}-exec-5a4b3c21`;

function podSpec(job: V1Job): V1PodSpec {
  return job.spec!.template.spec!;
}
function container(job: V1Job, name: string): V1Container {
  const c = podSpec(job).containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}
function initContainer(job: V1Job, name: string): V1Container {
  const c = (podSpec(job).initContainers ?? []).find((x) => x.name === name);
  if (!c) throw new Error(`no init container ${name}`);
  return c;
}
const task = (job: V1Job) => container(job, "task");
const envOf = (c: V1Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
const envNames = (c: V1Container) => (c.env ?? []).map((e) => e.name);

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

function expectSpecError(fn: () => unknown, ...fragments: string[]): JobSpecError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(JobSpecError);
  const err = caught as JobSpecError;
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

describe("Job metadata", () => {
  test("name, namespace, kind", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment());
    expect(job.apiVersion).toBe("batch/v1");
    expect(job.kind).toBe("Job");
    expect(job.metadata?.name).toBe(JOB_NAME);
    expect(job.metadata?.namespace).toBe("warp-oz");
  });

  test("the six identity labels plus extra_labels, on the Job and the Pod", () => {
    const config = makeConfig({ extraLabels: { team: "payments", "oz-task-id": "spoofed" } });
    const job = buildTaskJob(config, makeAssignment());
    const expected = {
      team: "payments",
      "oz-task-id": TASK_ID,
      "oz-worker-id": "k8s-worker-prod",
      "oz-worker-hash": shortHash("k8s-worker-prod"),
      "oz-task-hash": shortHash(TASK_ID),
      "oz-execution-id": EXECUTION_ID,
      "oz-execution-hash": shortHash(EXECUTION_ID),
    };
    expect(job.metadata?.labels).toEqual(expected);
    expect(job.spec?.template.metadata?.labels).toEqual(expected);
  });

  test("execution labels fall back to the task id", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment({ execution_id: TASK_ID }));
    expect(job.metadata?.labels?.["oz-execution-hash"]).toBe(shortHash(TASK_ID));
    expect(job.metadata?.name).toBe(`oz-task-${TASK_ID}-exec-4f7b9c10`);
  });

  test("extra_annotations on the Job and the Pod; the Job also records the exact task and execution ids", () => {
    const assignment = makeAssignment();
    const withAnn = buildTaskJob(makeConfig({ extraAnnotations: { "cost-center": "42" } }), assignment);
    expect(withAnn.metadata?.annotations).toEqual({
      "cost-center": "42",
      [TASK_ID_ANNOTATION]: assignment.task_id,
      [EXECUTION_ID_ANNOTATION]: assignment.execution_id,
    });
    expect(withAnn.spec?.template.metadata?.annotations).toEqual({ "cost-center": "42" });
    const without = buildTaskJob(makeConfig(), assignment);
    expect(Object.keys(without.metadata?.annotations ?? {}).sort()).toEqual([EXECUTION_ID_ANNOTATION, TASK_ID_ANNOTATION]);
    expect(without.spec?.template.metadata?.annotations).toBeUndefined();
  });

  test("the id annotations keep ids that labels would sanitize", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment({ task_id: "Run_ABC/123", execution_id: "" }));
    expect(job.metadata?.annotations?.[TASK_ID_ANNOTATION]).toBe("Run_ABC/123");
    // An empty execution id falls back to the task id, as the protocol says.
    expect(job.metadata?.annotations?.[EXECUTION_ID_ANNOTATION]).toBe("Run_ABC/123");
  });
});

describe("Job spec", () => {
  test("backoffLimit 0 and restartPolicy Never, even over the template's", () => {
    const config = makeConfig({ podTemplate: { restartPolicy: "OnFailure", containers: [] } });
    const job = buildTaskJob(config, makeAssignment());
    expect(job.spec?.backoffLimit).toBe(0);
    expect(podSpec(job).restartPolicy).toBe("Never");
  });

  test("activeDeadlineSeconds and ttlSecondsAfterFinished as configured", () => {
    const job = buildTaskJob(makeConfig({ activeDeadlineSeconds: 28800, ttlSecondsAfterFinished: 600 }), makeAssignment());
    expect(job.spec?.activeDeadlineSeconds).toBe(28800);
    expect(job.spec?.ttlSecondsAfterFinished).toBe(600);
  });

  test("no deadline and no TTL when unset (cleanup off)", () => {
    const job = buildTaskJob(makeConfig({ ttlSecondsAfterFinished: undefined }), makeAssignment());
    expect(job.spec && "activeDeadlineSeconds" in job.spec).toBe(false);
    expect(job.spec && "ttlSecondsAfterFinished" in job.spec).toBe(false);
  });

  test("workspace emptyDir mounted at /workspace, the working directory", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment());
    expect(podSpec(job).volumes?.[0]).toEqual({ name: "workspace", emptyDir: {} });
    expect(task(job).volumeMounts?.[0]).toEqual({ name: "workspace", mountPath: "/workspace" });
    expect(task(job).workingDir).toBe("/workspace");
  });

  test("workspace sizeLimit", () => {
    const job = buildTaskJob(makeConfig({ workspaceSizeLimit: "20Gi" }), makeAssignment());
    expect(podSpec(job).volumes?.[0]).toEqual({ name: "workspace", emptyDir: { sizeLimit: "20Gi" } });
  });
});

describe("task container command", () => {
  test("/bin/sh -c wrapper with a $0 placeholder, agent args as $@", () => {
    const config = makeConfig();
    const assignment = makeAssignment();
    const c = task(buildTaskJob(config, assignment));
    expect(c.command).toEqual(["/bin/sh", "-c", TASK_WRAPPER_SCRIPT, "oz-task"]);
    expect(c.args).toEqual(buildAgentArgs(config, assignment));
    expect(c.args?.slice(0, 4)).toEqual(["agent", "run", "--share", "team:edit"]);
    expect(c.imagePullPolicy).toBe("IfNotPresent");
  });

  function runWrapper(withEnvFile: boolean): string {
    const dir = mkdtempSync(join(tmpdir(), "oz-wrapper-"));
    const entry = join(dir, "entrypoint.sh");
    writeFileSync(entry, '#!/bin/sh\nprintf "%s|" "$FROM_FILE" "$#" "$@"\n');
    chmodSync(entry, 0o755);
    const envFile = join(dir, ".oz-env");
    if (withEnvFile) writeFileSync(envFile, "FROM_FILE='loaded value'\n");
    const script = TASK_WRAPPER_SCRIPT.replace("/agent/entrypoint.sh", entry);
    const r = spawnSync("/bin/sh", ["-c", script, "oz-task", "agent", "run", "two words"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", OZ_ENVIRONMENT_FILE: envFile },
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    return r.stdout;
  }
  test("the wrapper exports the environment file's variables and passes args intact", () => {
    expect(runWrapper(true)).toBe("loaded value|3|agent|run|two words|");
  });
  test("the wrapper works without an environment file", () => {
    expect(runWrapper(false)).toBe("|3|agent|run|two words|");
  });
});

describe("env", () => {
  test("order: fixed vars, env_vars (sorted), -e overrides, OZ_* vars", () => {
    const config = makeConfig({}, { env: [{ name: "HTTP_PROXY", value: "http://proxy:3128" }] });
    const c = task(buildTaskJob(config, makeAssignment()));
    expect(c.env).toEqual([
      { name: "TASK_ID", value: TASK_ID },
      { name: "GIT_TERMINAL_PROMPT", value: "0" },
      { name: "GH_PROMPT_DISABLED", value: "1" },
      { name: "WARP_SERVER_ROOT_URL", value: "https://app.warp.dev" },
      { name: "GITHUB_TOKEN", value: SECRET_VALUE },
      { name: "WARP_API_KEY", value: "wk-another-secret-value" },
      { name: "HTTP_PROXY", value: "http://proxy:3128" },
      { name: "OZ_ENVIRONMENT_FILE", value: "/workspace/.oz-env" },
      { name: "OZ_WORKSPACE_ROOT", value: "/workspace" },
      { name: "OZ_WORKER_BACKEND", value: "kubernetes" },
      { name: "OZ_RUN_ID", value: TASK_ID },
    ]);
  });

  test("collisions: later wins, each name once, at its first position", () => {
    const config = makeConfig({}, { env: [{ name: "GITHUB_TOKEN", value: "from-worker" }] });
    const assignment = makeAssignment({ env_vars: { OZ_RUN_ID: "spoof", GITHUB_TOKEN: "from-server", GIT_TERMINAL_PROMPT: "1" } });
    const c = task(buildTaskJob(config, assignment));
    expect(envNames(c)).toEqual([
      "TASK_ID", "GIT_TERMINAL_PROMPT", "GH_PROMPT_DISABLED", "WARP_SERVER_ROOT_URL",
      "GITHUB_TOKEN", "OZ_RUN_ID", "OZ_ENVIRONMENT_FILE", "OZ_WORKSPACE_ROOT", "OZ_WORKER_BACKEND",
    ]);
    const env = envOf(c);
    expect(env.GITHUB_TOKEN).toBe("from-worker"); // -e beats env_vars
    expect(env.OZ_RUN_ID).toBe(TASK_ID); // worker vars cannot be overridden
    expect(env.GIT_TERMINAL_PROMPT).toBe("1"); // env_vars beat the fixed defaults
  });

  test("TASK_ID is task.id and OZ_RUN_ID is task_id", () => {
    const a = makeAssignment({ task_id: "run-1" });
    const c = task(buildTaskJob(makeConfig(), { ...a, task: { ...a.task, id: "task-obj-1" } }));
    expect(envOf(c).TASK_ID).toBe("task-obj-1");
    expect(envOf(c).OZ_RUN_ID).toBe("run-1");
  });

  test("no WARP_SERVER_ROOT_URL when the server root URL is empty", () => {
    const c = task(buildTaskJob(makeConfig({}, { serverRootUrl: "" }), makeAssignment()));
    expect(envNames(c)).not.toContain("WARP_SERVER_ROOT_URL");
  });
});

describe("image precedence", () => {
  test("the assignment's docker_image first", () => {
    const job = buildTaskJob(makeConfig({ defaultImage: "corp/base:1" }), makeAssignment());
    expect(task(job).image).toBe("ghcr.io/example/payments-dev:2025.06");
  });
  test("then the configured default_image", () => {
    const job = buildTaskJob(makeConfig({ defaultImage: "corp/base:1" }), makeAssignment({ docker_image: undefined }));
    expect(task(job).image).toBe("corp/base:1");
  });
  test("then ubuntu:22.04", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment({ docker_image: undefined }));
    expect(task(job).image).toBe("ubuntu:22.04");
  });
  test("pull policy from the config", () => {
    const job = buildTaskJob(makeConfig({ imagePullPolicy: "Always" }), makeAssignment());
    expect(task(job).imagePullPolicy).toBe("Always");
    expect(initContainer(job, "copy-sidecar-0").imagePullPolicy).toBe("Always");
  });
});

describe("sidecars, default mode (root copy init containers)", () => {
  const assignment = makeAssignment({
    additional_sidecars: [
      { image: "corp/tools:2", mount_path: "/opt/tools", read_write: false },
      { image: "corp/cache:1", mount_path: "/var/cache/agent", read_write: true },
    ],
  });
  const job = buildTaskJob(makeConfig(), assignment);

  test("/agent first, then additional sidecars, each an emptyDir + root copy init container", () => {
    const spec = podSpec(job);
    expect(spec.initContainers?.map((c) => c.name)).toEqual(["copy-sidecar-0", "copy-sidecar-1", "copy-sidecar-2"]);
    expect(spec.initContainers?.map((c) => c.image)).toEqual([
      "us-docker.pkg.dev/warp/agent-sidecar:stable", "corp/tools:2", "corp/cache:1",
    ]);
    expect(spec.volumes).toEqual([
      { name: "workspace", emptyDir: {} },
      { name: "sidecar-0-data", emptyDir: {} },
      { name: "sidecar-1-data", emptyDir: {} },
      { name: "sidecar-2-data", emptyDir: {} },
    ]);
  });

  test("copy container runs as root and tars the image into /target", () => {
    const c = initContainer(job, "copy-sidecar-1");
    expect(c.securityContext).toEqual({ runAsUser: 0, runAsGroup: 0 });
    expect(c.command).toEqual(["/bin/sh", "-c", SIDECAR_COPY_SCRIPT]);
    expect(c.volumeMounts).toEqual([{ name: "sidecar-1-data", mountPath: "/target" }]);
    for (const excluded of ["./target", "./proc", "./sys", "./dev", "./.dockerenv", "./var/run/secrets", "./run/secrets"]) {
      expect(SIDECAR_COPY_SCRIPT).toContain(`--exclude=${excluded} `);
    }
  });

  test("mounted into the task container read-only unless read_write", () => {
    expect(task(job).volumeMounts).toEqual([
      { name: "workspace", mountPath: "/workspace" },
      { name: "sidecar-0-data", mountPath: "/agent", readOnly: true },
      { name: "sidecar-1-data", mountPath: "/opt/tools", readOnly: true },
      { name: "sidecar-2-data", mountPath: "/var/cache/agent", readOnly: false },
    ]);
  });

  test("the configured sidecar_image overrides the assignment's", () => {
    const j = buildTaskJob(makeConfig({ sidecarImage: "mirror.corp/agent:pinned" }), makeAssignment());
    expect(initContainer(j, "copy-sidecar-0").image).toBe("mirror.corp/agent:pinned");
  });

  test("the configured sidecar_image is used when the assignment has none", () => {
    const j = buildTaskJob(makeConfig({ sidecarImage: "mirror.corp/agent:pinned" }), makeAssignment({ sidecar_image: undefined }));
    expect(task(j).volumeMounts?.[1]).toEqual({ name: "sidecar-0-data", mountPath: "/agent", readOnly: true });
  });

  test("no sidecar image at all: no copy containers", () => {
    const j = buildTaskJob(makeConfig(), makeAssignment({ sidecar_image: undefined }));
    expect(podSpec(j).initContainers).toBeUndefined();
    expect(podSpec(j).volumes).toEqual([{ name: "workspace", emptyDir: {} }]);
  });
});

describe("coding CLI sidecars", () => {
  const claude = (extra: Partial<TaskAssignment> = {}) => {
    const a = makeAssignment(extra);
    return { ...a, task: { ...a.task, agent_config_snapshot: { harness: { type: "claude" } } } };
  };
  const config = makeConfig({ codingCliSidecars: { claude: "corp/claude-cli:1.2", codex: "corp/codex:3" } });

  test("added at /mnt/<harness>-cli-sidecar for the snapshot's harness", () => {
    const job = buildTaskJob(config, claude());
    expect(initContainer(job, "copy-sidecar-1").image).toBe("corp/claude-cli:1.2");
    expect(task(job).volumeMounts?.at(-1)).toEqual({ name: "sidecar-1-data", mountPath: "/mnt/claude-cli-sidecar", readOnly: true });
  });

  test("replaces the image of a sidecar the server already mounts there", () => {
    const job = buildTaskJob(config, claude({
      additional_sidecars: [
        { image: "warp/claude-cli:server", mount_path: "/mnt/claude-cli-sidecar", read_write: false },
        { image: "corp/tools:2", mount_path: "/opt/tools", read_write: false },
      ],
    }));
    expect(podSpec(job).initContainers?.map((c) => c.image)).toEqual([
      "us-docker.pkg.dev/warp/agent-sidecar:stable", "corp/claude-cli:1.2", "corp/tools:2",
    ]);
  });

  test("nothing for a harness without a configured image, or without a harness", () => {
    const gemini = makeAssignment();
    const g = { ...gemini, task: { ...gemini.task, agent_config_snapshot: { harness: { type: "gemini" } } } };
    expect(podSpec(buildTaskJob(config, g)).initContainers).toHaveLength(1);
    expect(podSpec(buildTaskJob(config, makeAssignment())).initContainers).toHaveLength(1);
  });
});

describe("sidecars, image volume mode", () => {
  const config = makeConfig({ useImageVolumes: true, imagePullPolicy: "Always" });

  test("an image volume per sidecar, always read-only, no copy containers", () => {
    const job = buildTaskJob(config, makeAssignment({
      additional_sidecars: [{ image: "corp/tools:2", mount_path: "/opt/tools", read_write: false }],
    }));
    expect(podSpec(job).initContainers).toBeUndefined();
    expect(podSpec(job).volumes).toEqual([
      { name: "workspace", emptyDir: {} },
      { name: "sidecar-0-image", image: { reference: "us-docker.pkg.dev/warp/agent-sidecar:stable", pullPolicy: "Always" } },
      { name: "sidecar-1-image", image: { reference: "corp/tools:2", pullPolicy: "Always" } },
    ]);
    expect(task(job).volumeMounts).toEqual([
      { name: "workspace", mountPath: "/workspace" },
      { name: "sidecar-0-image", mountPath: "/agent", readOnly: true },
      { name: "sidecar-1-image", mountPath: "/opt/tools", readOnly: true },
    ]);
  });

  test("a read-write sidecar is an error naming it", () => {
    expectSpecError(
      () => buildTaskJob(config, makeAssignment({
        additional_sidecars: [{ image: "corp/cache:1", mount_path: "/cache", read_write: true }],
      })),
      "additional_sidecars[0]", "corp/cache:1", "read-only",
    );
  });
});

describe("sidecar validation", () => {
  const cases: Array<[string, { image: string; mount_path: string }, string[]]> = [
    ["empty image", { image: "", mount_path: "/x" }, ["additional_sidecars[0]", "image must not be empty"]],
    ["blank image", { image: "  ", mount_path: "/x" }, ["image must not be empty"]],
    ["empty mount path", { image: "corp/a:1", mount_path: "" }, ["corp/a:1", "mount path must not be empty"]],
    ["relative mount path", { image: "corp/a:1", mount_path: "opt/a" }, ["must be absolute"]],
    ["/workspace", { image: "corp/a:1", mount_path: "/workspace" }, ["corp/a:1", "reserved path /workspace"]],
    ["/workspace/ (trailing slash)", { image: "corp/a:1", mount_path: "/workspace/" }, ["reserved path /workspace"]],
    ["the root", { image: "corp/a:1", mount_path: "/" }, ["root directory"]],
    ["clash with /agent", { image: "corp/a:1", mount_path: "/agent" }, ["duplicate mount path /agent", "sidecar 0 (sidecar_image)"]],
  ];
  for (const [name, sidecar, fragments] of cases) {
    test(name, () => {
      expectSpecError(
        () => buildTaskJob(makeConfig(), makeAssignment({ additional_sidecars: [{ ...sidecar, read_write: false }] })),
        ...fragments,
      );
    });
  }
  test("duplicate mount paths among additional sidecars", () => {
    expectSpecError(
      () => buildTaskJob(makeConfig(), makeAssignment({
        additional_sidecars: [
          { image: "corp/a:1", mount_path: "/opt/x", read_write: false },
          { image: "corp/b:1", mount_path: "/opt/x/", read_write: false },
        ],
      })),
      "sidecar 2 (additional_sidecars[1]", "corp/b:1", "duplicate mount path /opt/x",
    );
  });
  // Issue 15 item 6: the reserved-path and duplicate checks compare POSIX-normalised paths.
  test("non-canonical mount paths are normalised as POSIX paths before the reserved and duplicate checks", () => {
    const reject = (mount_path: string, ...fragments: string[]) =>
      expectSpecError(
        () => buildTaskJob(makeConfig(), makeAssignment({ additional_sidecars: [{ image: "corp/a:1", mount_path, read_write: false }] })),
        ...fragments,
      );
    reject("/workspace/.", "reserved path /workspace");
    reject("//workspace", "reserved path /workspace");
    reject("/opt/../workspace", "reserved path /workspace");
    reject("/./", "root directory");
    // A server-sent sidecar must not shadow the admin's sidecar_image at /agent.
    const config = makeConfig({ sidecarImage: "admin/agent:1" });
    expectSpecError(
      () => buildTaskJob(config, makeAssignment({ additional_sidecars: [{ image: "evil/agent:1", mount_path: "/agent/.", read_write: false }] })),
      "duplicate mount path /agent",
      "sidecar_image (config)",
    );
    expectSpecError(
      () => buildTaskJob(makeConfig(), makeAssignment({
        additional_sidecars: [
          { image: "corp/a:1", mount_path: "/opt/x", read_write: false },
          { image: "corp/b:1", mount_path: "/opt//y/../x", read_write: false },
        ],
      })),
      "duplicate mount path /opt/x",
    );
    // An accepted path is mounted in its normal form.
    const job = buildTaskJob(makeConfig(), makeAssignment({ additional_sidecars: [{ image: "corp/a:1", mount_path: "/opt//tools/./", read_write: false }] }));
    expect((task(job).volumeMounts ?? []).map((m) => m.mountPath)).toContain("/opt/tools");
  });
  test("a task image with whitespace is rejected", () => {
    expectSpecError(() => buildTaskJob(makeConfig(), makeAssignment({ docker_image: "bad image" })), "task image");
  });
});

describe("setup and teardown", () => {
  const config = makeConfig({ setupCommand: "git config --global user.name oz", teardownCommand: "./report.sh" });
  const assignment = makeAssignment({ additional_sidecars: [{ image: "corp/tools:2", mount_path: "/opt/tools", read_write: false }] });
  const job = buildTaskJob(config, assignment);

  test("setup init container: task image, /bin/sh -c, /workspace, same env and mounts", () => {
    const setup = initContainer(job, "setup");
    expect(setup.image).toBe(task(job).image);
    expect(setup.imagePullPolicy).toBe("IfNotPresent");
    expect(setup.command).toEqual(["/bin/sh", "-c", "git config --global user.name oz"]);
    expect(setup.workingDir).toBe("/workspace");
    expect(setup.env).toEqual(task(job).env!);
    expect(setup.volumeMounts).toEqual(task(job).volumeMounts!);
  });
  test("setup runs after the sidecar copies", () => {
    expect(podSpec(job).initContainers?.map((c) => c.name)).toEqual(["copy-sidecar-0", "copy-sidecar-1", "setup"]);
  });
  test("teardown is a preStop exec hook on the task container", () => {
    expect(task(job).lifecycle).toEqual({ preStop: { exec: { command: ["/bin/sh", "-c", "./report.sh"] } } });
  });
  test("neither without commands", () => {
    const plain = buildTaskJob(makeConfig(), assignment);
    expect(podSpec(plain).initContainers?.map((c) => c.name)).toEqual(["copy-sidecar-0", "copy-sidecar-1"]);
    expect(task(plain).lifecycle).toBeUndefined();
  });
});

describe("instance shape", () => {
  test("cpu and memory requests AND limits", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment({ instance_shape: { vcpus: 4, memory_gb: 16 } }));
    expect(task(job).resources).toEqual({
      requests: { cpu: "4", memory: "16Gi" },
      limits: { cpu: "4", memory: "16Gi" },
    });
  });
  test("a non-positive axis is unset", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment({ instance_shape: { vcpus: 0, memory_gb: 8 } }));
    expect(task(job).resources).toEqual({ requests: { memory: "8Gi" }, limits: { memory: "8Gi" } });
  });
  test("no resources when every axis is non-positive or there is no shape", () => {
    expect(task(buildTaskJob(makeConfig(), makeAssignment({ instance_shape: { vcpus: -1, memory_gb: 0 } }))).resources).toBeUndefined();
    expect(task(buildTaskJob(makeConfig(), makeAssignment())).resources).toBeUndefined();
  });
  test("fractional values become milli-cpu and MiB", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment({ instance_shape: { vcpus: 0.5, memory_gb: 1.5 } }));
    expect(task(job).resources?.limits).toEqual({ cpu: "500m", memory: "1536Mi" });
  });
  test("huge whole numbers are written in digits, a quantity the API server parses (not 1e+21)", () => {
    const job = buildTaskJob(makeConfig(), makeAssignment({ instance_shape: { vcpus: 1e21, memory_gb: 1e21 } }));
    expect(task(job).resources?.limits).toEqual({ cpu: "1000000000000000000000", memory: "1000000000000000000000Gi" });
    for (const q of Object.values(task(job).resources!.limits!)) expect(q).toMatch(/^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/);
  });
  test("only the task container is sized", () => {
    const job = buildTaskJob(makeConfig({ setupCommand: "true" }), makeAssignment({ instance_shape: { vcpus: 2, memory_gb: 4 } }));
    expect(initContainer(job, "setup").resources).toBeUndefined();
  });
});

describe("pod_template merge", () => {
  const template: V1PodSpec = {
    serviceAccountName: "agent-task-sa",
    imagePullSecrets: [{ name: "my-registry-creds" }],
    tolerations: [{ key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule" }],
    initContainers: [
      { name: "proxy", image: "corp/proxy:1", restartPolicy: "Always" },
      { name: "warm-cache", image: "corp/warm:1" },
    ],
    containers: [
      { name: "log-shipper", image: "corp/shipper:1" },
      {
        name: "task",
        image: "ignored/image:1",
        imagePullPolicy: "Always",
        command: ["ignored"],
        args: ["ignored"],
        workingDir: "/ignored",
        securityContext: { allowPrivilegeEscalation: false },
        ports: [{ containerPort: 8080 }],
        lifecycle: { postStart: { exec: { command: ["/bin/true"] } } },
        resources: { requests: { cpu: "2", memory: "4Gi" }, limits: { memory: "8Gi", "ephemeral-storage": "10Gi" } },
        env: [
          { name: "GITHUB_TOKEN", valueFrom: { secretKeyRef: { name: "my-k8s-secret", key: "github-token" } } },
          { name: "TASK_ID", value: "template-value" },
          { name: "TEAM", value: "payments" },
        ],
        volumeMounts: [{ name: "ca-certs", mountPath: "/etc/ssl/corp", readOnly: true }],
      },
      { name: "metrics", image: "corp/metrics:1" },
    ],
    volumes: [{ name: "ca-certs", configMap: { name: "corp-ca" } }],
  };
  const config = makeConfig({ podTemplate: template, setupCommand: "make deps", teardownCommand: "./report.sh" });
  const assignment = makeAssignment({ env_vars: { WARP_API_KEY: "wk-1" }, instance_shape: { vcpus: 0, memory_gb: 16 } });
  const job = buildTaskJob(config, assignment);
  const c = task(job);

  test("template pod fields are kept", () => {
    const spec = podSpec(job);
    expect(spec.serviceAccountName).toBe("agent-task-sa");
    expect(spec.imagePullSecrets).toEqual([{ name: "my-registry-creds" }]);
    expect(spec.tolerations).toEqual(template.tolerations!);
  });
  test("other template containers stay, in place", () => {
    expect(podSpec(job).containers.map((x) => x.name)).toEqual(["log-shipper", "task", "metrics"]);
  });
  test("image, command, args and workdir are the worker's; template extras stay", () => {
    expect(c.image).toBe("ghcr.io/example/payments-dev:2025.06");
    expect(c.command).toEqual(["/bin/sh", "-c", TASK_WRAPPER_SCRIPT, "oz-task"]);
    expect(c.args).toEqual(buildAgentArgs(config, assignment));
    expect(c.workingDir).toBe("/workspace");
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false });
    expect(c.ports).toEqual([{ containerPort: 8080 }]);
  });
  test("pull policy only when the template leaves it unset", () => {
    expect(c.imagePullPolicy).toBe("Always");
    const noPolicy = buildTaskJob(
      makeConfig({ podTemplate: { containers: [{ name: "task" }] } }),
      makeAssignment(),
    );
    expect(task(noPolicy).imagePullPolicy).toBe("IfNotPresent");
  });
  test("mounts: the template's first, the worker's appended", () => {
    expect(c.volumeMounts).toEqual([
      { name: "ca-certs", mountPath: "/etc/ssl/corp", readOnly: true },
      { name: "workspace", mountPath: "/workspace" },
      { name: "sidecar-0-data", mountPath: "/agent", readOnly: true },
    ]);
  });
  test("env merged: worker values win by name, template-only entries kept", () => {
    const env = c.env ?? [];
    expect(env.slice(0, 3)).toEqual([
      { name: "GITHUB_TOKEN", valueFrom: { secretKeyRef: { name: "my-k8s-secret", key: "github-token" } } },
      { name: "TASK_ID", value: TASK_ID },
      { name: "TEAM", value: "payments" },
    ]);
    expect(env.filter((e) => e.name === "TASK_ID")).toHaveLength(1);
    expect(envOf(c).WARP_API_KEY).toBe("wk-1");
    expect(envOf(c).OZ_RUN_ID).toBe(TASK_ID);
  });
  test("resources merged per resource name, instance shape winning", () => {
    expect(c.resources).toEqual({
      requests: { cpu: "2", memory: "16Gi" },
      limits: { memory: "16Gi", "ephemeral-storage": "10Gi" },
    });
  });
  test("teardown sets preStop, keeping the template's postStart", () => {
    expect(c.lifecycle).toEqual({
      postStart: { exec: { command: ["/bin/true"] } },
      preStop: { exec: { command: ["/bin/sh", "-c", "./report.sh"] } },
    });
  });
  test("worker init containers come before the template's (native sidecar kept)", () => {
    const init = podSpec(job).initContainers ?? [];
    expect(init.map((x) => x.name)).toEqual(["copy-sidecar-0", "setup", "proxy", "warm-cache"]);
    expect(init[2]?.restartPolicy).toBe("Always");
  });
  test("template volumes first, the worker's appended", () => {
    expect(podSpec(job).volumes?.map((v) => v.name)).toEqual(["ca-certs", "workspace", "sidecar-0-data"]);
  });
  test("without a `task` container the worker appends its own", () => {
    const j = buildTaskJob(
      makeConfig({ podTemplate: { nodeSelector: { pool: "agents" }, containers: [{ name: "log-shipper", image: "corp/shipper:1" }] } }),
      makeAssignment(),
    );
    expect(podSpec(j).containers.map((x) => x.name)).toEqual(["log-shipper", "task"]);
    expect(podSpec(j).nodeSelector).toEqual({ pool: "agents" });
    expect(task(j).command?.[2]).toBe(TASK_WRAPPER_SCRIPT);
  });
  test("without teardown the template's lifecycle is left alone", () => {
    const j = buildTaskJob(makeConfig({ podTemplate: template }), makeAssignment());
    expect(task(j).lifecycle).toEqual({ postStart: { exec: { command: ["/bin/true"] } } });
  });
  test("without an instance shape the template's resources are left alone", () => {
    const j = buildTaskJob(makeConfig({ podTemplate: template }), makeAssignment());
    expect(task(j).resources).toEqual(template.containers[1]!.resources!);
  });

  test("name clashes with the worker's objects are errors", () => {
    expectSpecError(
      () => buildTaskJob(makeConfig({ podTemplate: { containers: [], volumes: [{ name: "workspace", emptyDir: {} }] } }), makeAssignment()),
      "pod_template", "volume name \"workspace\"",
    );
    expectSpecError(
      () => buildTaskJob(makeConfig({ setupCommand: "x", podTemplate: { containers: [], initContainers: [{ name: "setup" }] } }), makeAssignment()),
      "container name \"setup\"",
    );
    expectSpecError(
      () => buildTaskJob(makeConfig({ podTemplate: { containers: [{ name: "task", volumeMounts: [{ name: "x", mountPath: "/agent/" }] }], volumes: [{ name: "x", emptyDir: {} }] } }), makeAssignment()),
      "mounts /agent twice",
    );
  });
});

describe("purity and determinism", () => {
  const template: V1PodSpec = {
    containers: [{ name: "task", env: [{ name: "A", value: "1" }], resources: { limits: { memory: "1Gi" } } }],
    initContainers: [{ name: "warm", image: "corp/warm:1" }],
    volumes: [{ name: "extra", emptyDir: {} }],
  };
  test("inputs are never mutated (deep-frozen inputs do not throw)", () => {
    const config = deepFreeze(makeConfig({ podTemplate: template, setupCommand: "s", teardownCommand: "t", extraLabels: { a: "b" } }, { env: [{ name: "A", value: "2" }] }));
    const assignment = deepFreeze(makeAssignment({ instance_shape: { vcpus: 2, memory_gb: 4 } }));
    const before = JSON.stringify({ config, assignment });
    const job = buildTaskJob(config, assignment);
    buildTaskObjects({ ...config, kubernetes: { ...config.kubernetes, inlineTaskEnv: false } }, assignment);
    expect(JSON.stringify({ config, assignment })).toBe(before);
    // the output is not aliased to the template
    task(job).env!.push({ name: "B", value: "x" });
    expect(template.containers[0]!.env).toHaveLength(1);
  });
  test("equal inputs give equal output, as a plain tree (no YAML anchors)", () => {
    const config = makeConfig({ podTemplate: template, setupCommand: "s", extraAnnotations: { x: "y" } });
    const a = buildTaskJob(config, makeAssignment({ instance_shape: { vcpus: 2, memory_gb: 4 } }));
    const b = buildTaskJob(config, makeAssignment({ instance_shape: { vcpus: 2, memory_gb: 4 } }));
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    const yaml = YAML.stringify(a);
    expect(yaml).not.toMatch(/[&*]a\d/);
  });
  test("env_vars order on the wire does not change the Job", () => {
    const a = buildTaskJob(makeConfig(), makeAssignment({ env_vars: { B: "2", A: "1" } }));
    const b = buildTaskJob(makeConfig(), makeAssignment({ env_vars: { A: "1", B: "2" } }));
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});

describe("task Secret (env_vars out of the Job)", () => {
  const secretConfig = (k8s: Parameters<typeof makeConfig>[0] = {}, top: Parameters<typeof makeConfig>[1] = {}): WorkerConfig =>
    makeConfig({ inlineTaskEnv: false, ...k8s }, top);

  test("env_vars become secretKeyRefs in the same positions as inline", () => {
    const config = secretConfig({ setupCommand: "make deps" }, { env: [{ name: "HTTP_PROXY", value: "http://p" }] });
    const { job, secret } = buildTaskObjects(config, makeAssignment());
    const inline = buildTaskJob(makeConfig({ setupCommand: "make deps" }, { env: [{ name: "HTTP_PROXY", value: "http://p" }] }), makeAssignment());
    expect(envNames(task(job))).toEqual(envNames(task(inline)));
    const secretName = `${JOB_NAME}-env`;
    expect(secret?.metadata?.name).toBe(secretName);
    expect(task(job).env?.find((e) => e.name === "GITHUB_TOKEN")).toEqual({
      name: "GITHUB_TOKEN",
      valueFrom: { secretKeyRef: { name: secretName, key: "GITHUB_TOKEN" } },
    });
    expect(initContainer(job, "setup").env).toEqual(task(job).env!);
  });

  test("env names Secret keys cannot hold: the exact name in the env, a safe unique key in the Secret", () => {
    const env_vars = { "MY-TOKEN": "t-value", "my.dotted": "d-value", "1START": "s-value", "with space": "w-value" };
    const { job, secret } = buildTaskObjects(secretConfig(), makeAssignment({ env_vars }));
    const data = secret!.data!;
    for (const [name, value] of Object.entries(env_vars)) {
      const ref = task(job).env?.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
      expect(ref?.name).toBe(secret!.metadata!.name!);
      expect(ref?.key).toBe(taskSecretKeyFor(name));
      expect(ref?.key).toMatch(/^[-._a-zA-Z0-9]+$/);
      expect(Buffer.from(data[ref!.key]!, "base64").toString("utf8")).toBe(value);
    }
    expect(Object.keys(data).sort()).toEqual(["1START", "MY-TOKEN", "my.2edotted", "with.20space"]);
  });

  test("no env_var value appears anywhere in the Job", () => {
    const { job } = buildTaskObjects(secretConfig({ setupCommand: "x" }), makeAssignment());
    const json = JSON.stringify(job);
    expect(json).not.toContain(SECRET_VALUE);
    expect(json).not.toContain("wk-another-secret-value");
    // and the inline Job does contain it (the test can fail)
    expect(JSON.stringify(buildTaskJob(makeConfig(), makeAssignment()))).toContain(SECRET_VALUE);
  });

  test("the Secret: labels of the Job, Opaque, immutable, base64 data of every env_var", () => {
    const { job, secret } = buildTaskObjects(secretConfig(), makeAssignment());
    expect(secret).toBeDefined();
    expect(secret!.metadata?.namespace).toBe("warp-oz");
    expect(secret!.metadata?.labels).toEqual(job.metadata!.labels!);
    expect(secret!.type).toBe("Opaque");
    expect(secret!.immutable).toBe(true);
    const decoded = Object.fromEntries(
      Object.entries(secret!.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
    );
    expect(decoded).toEqual({ GITHUB_TOKEN: SECRET_VALUE, WARP_API_KEY: "wk-another-secret-value" });
  });

  test("UTF-8 and multi-line values survive base64", () => {
    const pem = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n";
    const { secret } = buildTaskObjects(secretConfig(), makeAssignment({ env_vars: { KEY: pem, NAME: "Zoë" } }));
    expect(Buffer.from(secret!.data!.KEY!, "base64").toString("utf8")).toBe(pem);
    expect(Buffer.from(secret!.data!.NAME!, "base64").toString("utf8")).toBe("Zoë");
  });

  test("a -e override of an env_var name stays a plain value (the worker wins)", () => {
    const { job } = buildTaskObjects(secretConfig({}, { env: [{ name: "GITHUB_TOKEN", value: "operator" }] }), makeAssignment());
    expect(task(job).env?.find((e) => e.name === "GITHUB_TOKEN")).toEqual({ name: "GITHUB_TOKEN", value: "operator" });
  });

  test("no Secret with inline env or without env_vars", () => {
    const inlineJob = buildTaskJob(makeConfig(), makeAssignment(), { taskSecretName: "ignored" });
    expect(envOf(task(inlineJob)).GITHUB_TOKEN).toBe(SECRET_VALUE);
    expect(buildTaskSecret(makeConfig(), makeAssignment(), inlineJob)).toBeUndefined();
    const empty = makeAssignment({ env_vars: {} });
    const objs = buildTaskObjects(secretConfig(), empty);
    expect(objs.secret).toBeUndefined();
    expect(JSON.stringify(objs.job)).not.toContain("secretKeyRef");
  });

  test("withOwner adds the Job owner reference without mutating", () => {
    const { secret } = buildTaskObjects(secretConfig(), makeAssignment());
    const owned = withOwner(secret!, { name: JOB_NAME, uid: "8f2d6c1e-0000-4000-8000-000000000001" });
    expect(owned.metadata?.ownerReferences).toEqual([
      { apiVersion: "batch/v1", kind: "Job", name: JOB_NAME, uid: "8f2d6c1e-0000-4000-8000-000000000001" },
    ]);
    expect(owned.metadata?.name).toBe(secret!.metadata!.name!);
    expect(secret!.metadata?.ownerReferences).toBeUndefined();
  });
});

test("redactTaskEnv hides env_var values but not operator overrides", () => {
  const config = makeConfig({ setupCommand: "x" }, { env: [{ name: "WARP_API_KEY", value: "operator-key" }] });
  const job = buildTaskJob(config, makeAssignment());
  const redacted = redactTaskEnv(job, makeAssignment());
  const json = JSON.stringify(redacted);
  expect(json).not.toContain(SECRET_VALUE);
  expect(envOf(task(redacted)).GITHUB_TOKEN).toBe("<redacted>");
  expect(envOf(task(redacted)).WARP_API_KEY).toBe("operator-key");
  expect(envOf(task(job)).GITHUB_TOKEN).toBe(SECRET_VALUE);
});
