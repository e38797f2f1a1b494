// The Go worker's command line, unchanged: its flags for other backends are accepted with a
// one-line warning each, `--backend` takes kubernetes (or empty), and
// `--session-sharing-server-url` reaches the agent's arguments as the Go worker passes it.
import { describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1Job } from "@kubernetes/client-node";
import { CONFIG_FLAGS, configFlagsFrom, ignoredFlagWarnings, parseArgs } from "../../../src/cli/args.ts";
import type { CliIO } from "../../../src/cli/command.ts";
import { main } from "../../../src/cli/cli.ts";

const FIXTURES = join(import.meta.dir, "../../fixtures/config");

async function cli(args: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const io: CliIO = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    readStdin: async () => "",
    readFile: (p) => readFile(p, "utf8"),
    env,
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

const parsed = (argv: string[]) => {
  const r = parseArgs(CONFIG_FLAGS, argv);
  if (!r.ok) throw new Error(r.message);
  return r.values;
};

/** `render-pod --output json` with `args`: the task Job, and the task container's agent arguments. */
async function renderJob(args: string[]) {
  const r = await cli(["render-pod", "--worker-id", "go-flags", "--kind", "job", "--output", "json", ...args]);
  if (r.code !== 0) throw new Error(`render-pod exited ${r.code}: ${r.stderr}`);
  const job = (JSON.parse(r.stdout) as { items: V1Job[] }).items.find((o) => o.kind === "Job") as V1Job;
  const task = job.spec?.template.spec?.containers.find((c) => c.name === "task");
  return { ...r, job, agentArgs: task?.args ?? [] };
}

describe("the Go worker's other-backend flags", () => {
  test("-v/--volumes (repeatable) and --target-dir parse like the Go worker's", () => {
    expect(parsed(["-v", "/a:/b", "--volumes", "/c:/d:ro", "-v=/e:/f", "--target-dir", "/work"])).toEqual({
      volumes: ["/a:/b", "/c:/d:ro", "/e:/f"],
      "target-dir": "/work",
    });
  });

  test("one warning line per ignored flag given, none otherwise", () => {
    expect(ignoredFlagWarnings(parsed(["-v", "/a:/b", "-v", "/c:/d", "--target-dir", "/work"]))).toEqual([
      "warning: -v/--volumes does not apply to the Kubernetes backend; ignored",
      "warning: --target-dir does not apply to the Kubernetes backend; ignored",
    ]);
    expect(ignoredFlagWarnings(parsed(["--worker-id", "w", "--backend", "kubernetes"]))).toEqual([]);
  });

  test("they are ignored: the task Job is the same with and without them; the warnings go to stderr", async () => {
    const plain = await renderJob([]);
    const withGoFlags = await renderJob(["-v", "/var/run/docker.sock:/var/run/docker.sock", "--target-dir", "/srv/tasks"]);
    expect(plain.stderr).toBe("");
    expect(withGoFlags.stderr.trimEnd().split("\n")).toEqual([
      "warning: -v/--volumes does not apply to the Kubernetes backend; ignored",
      "warning: --target-dir does not apply to the Kubernetes backend; ignored",
    ]);
    expect(withGoFlags.job).toEqual(plain.job);
  });

  test("the Go chart's container arguments, with no subcommand, run the worker (here it stops at the missing API key)", async () => {
    const goArgs = [
      "--config-file", join(FIXTURES, "full.yaml"),
      "--backend", "kubernetes",
      "--log-level", "info",
      "--web-socket-url", "wss://oz.warp.dev/api/v1/selfhosted/worker/ws",
      "--server-root-url", "https://app.warp.dev",
      "-v", "/a:/b",
    ];
    const r = await cli(goArgs);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")).toEqual([
      "warning: -v/--volumes does not apply to the Kubernetes backend; ignored",
      "--api-key: required: pass --api-key or set the WARP_API_KEY environment variable",
      "invalid configuration: 1 error",
      "",
    ]);
  });
});

describe("--backend", () => {
  test.each(["kubernetes", ""])("%p is accepted", async (backend) => {
    const r = await cli(["validate-config", "--worker-id", "w", "--backend", backend]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  test.each(["docker", "direct", "command"])("%s is refused: oz-worker runs Kubernetes Jobs only", async (backend) => {
    const r = await cli(["validate-config", "--worker-id", "w", "--backend", backend]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--backend: expected kubernetes (oz-worker runs tasks only as Kubernetes Jobs); got "${backend}"`);
  });
});

describe("--session-sharing-server-url", () => {
  test("maps onto the config flags", () => {
    expect(configFlagsFrom(parsed(["--session-sharing-server-url", "ws://127.0.0.1:8081"]))).toEqual({
      sessionSharingServerUrl: "ws://127.0.0.1:8081",
    });
  });

  test("is passed to the agent last, after --idle-on-complete, as the Go worker does", async () => {
    const plain = await renderJob([]);
    const shared = await renderJob(["--session-sharing-server-url", "ws://127.0.0.1:8081"]);
    expect(plain.agentArgs).not.toContain("--session-sharing-server-url");
    expect(shared.stderr).toBe("");
    expect(shared.agentArgs).toEqual([...plain.agentArgs, "--session-sharing-server-url", "ws://127.0.0.1:8081"]);
  });

  test("empty means unset, like the Go worker", async () => {
    const plain = await renderJob([]);
    const empty = await renderJob(["--session-sharing-server-url", ""]);
    expect(empty.agentArgs).toEqual(plain.agentArgs);
  });

  test("a value that is not a URL is a usage error naming the flag", async () => {
    const r = await cli(["validate-config", "--worker-id", "w", "--session-sharing-server-url", "127.0.0.1:8081"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--session-sharing-server-url: expected a ws://, wss://, http:// or https:// URL; got "127.0.0.1:8081"');
  });
});
