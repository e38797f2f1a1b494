// The CLI as a process: help, version, exit codes, validate-config's output.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { COMMANDS } from "../../../src/cli/cli.ts";
import { VERSION } from "../../../src/cli/version.ts";
import { CLI, ROOT, runCli } from "./cli-process.ts";

const FIXTURES = join(ROOT, "test/fixtures/config");
const THREE_MISTAKES = join(FIXTURES, "three-mistakes.yaml");

describe(`oz-worker (${CLI.length === 1 ? "dist/oz-worker" : "bun src/cli/main.ts"})`, () => {
  test("--help lists every command and the exit codes", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    for (const name of ["run", "preflight", "validate-config", "render-pod"]) expect(r.stdout).toContain(`  ${name} `);
    expect(r.stdout).toContain("Exit codes:");
    expect(r.stdout).toContain("3  Kubernetes API server unreachable");
  });

  test.each(COMMANDS.map((c) => [c.name, c] as const))("%s --help lists each of its flags", async (name, spec) => {
    const r = await runCli([name, "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`$ oz-worker ${name} [options]`);
    for (const flag of spec.flags) expect(r.stdout).toContain(`--${flag.name}`);
    expect(r.stdout).toContain("-e, --env <KEY=VALUE>");
    expect(r.stdout).toContain("-h, --help");
  });

  test("the flags each command declares", () => {
    const flags = Object.fromEntries(COMMANDS.map((c) => [c.name, c.flags.map((f) => f.name)]));
    const config = ["config-file", "worker-id", "api-key", "log-level", "no-cleanup", "env", "max-concurrent-tasks", "idle-on-complete", "web-socket-url", "server-root-url", "backend", "session-sharing-server-url", "volumes", "target-dir"];
    expect(flags).toEqual({
      run: [...config, "log-format", "health-addr", "skip-preflight"],
      preflight: [...config, "log-format", "timeout", "output"],
      "validate-config": [...config, "output"],
      "render-pod": [...config, "task", "kind", "output", "show-secrets"],
    });
  });

  test("--version prints the package version and the commit", async () => {
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^oz-worker ${VERSION.replace(/\./g, "\\.")} \\(commit ([0-9a-f]{7,40}(-dirty)?|dev)\\)\\n$`));
    if (CLI.length === 1) expect(r.stdout).not.toContain("(commit dev)");
  });

  test("no command: usage on stderr, exit 2", async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Usage:");
  });

  test("arguments that start with a flag run the worker, like the Go worker's", async () => {
    const r = await runCli(["--worker-id", "warp-x", "--config-file", THREE_MISTAKES], { env: { WARP_API_KEY: "k" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--worker-id: worker ids beginning with "warp" are reserved by Warp; got "warp-x"');
    expect(r.stderr).toContain(":7:24 backend.kubernetes.image_pull_policy");
    const help = await runCli(["--worker-id", "w", "--help"]);
    expect(help.stdout).toStartWith("oz-worker run: ");
  });

  test("an unknown command is a usage error with a suggestion", async () => {
    const r = await runCli(["valdate-config"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "valdate-config" (did you mean validate-config?)');
  });

  test.each([
    [["validate-config", "--confg-file", "x.yaml"], "unknown option --confg-file (did you mean --config-file?)"],
    [["render-pod", "-x"], "unknown option -x"],
    [["validate-config", "stray"], 'unexpected argument "stray"'],
    [["validate-config", "--config-file"], "--config-file: missing value"],
    [["validate-config", "--output", "xml"], '--output: expected one of text, json; got "xml"'],
    [["render-pod", "--kind=deployment"], '--kind: expected one of job, pod; got "deployment"'],
    [["run", "--log-format", "xml", "--worker-id", "w"], '--log-format: expected one of pretty, json; got "xml"'],
    [["--bogus"], "unknown option --bogus"],
  ])("%p is a usage error (exit 2)", async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe("validate-config", () => {
  test("three mistakes: three errors, each with line:column, exit 2", async () => {
    const r = await runCli(["validate-config", "--config-file", THREE_MISTAKES]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trimEnd().split("\n")).toEqual([
      `${THREE_MISTAKES}:6:28 backend.kubernetes.unschedulable_timeout: expected a duration such as 30s, 2m or 1h30m (units ns, us, ms, s, m, h); got "30 seconds"`,
      `${THREE_MISTAKES}:7:24 backend.kubernetes.image_pull_policy: expected one of Always, Never, IfNotPresent; got "always"`,
      `${THREE_MISTAKES}:8:5 backend.kubernetes.namspace: unknown key "namspace" (did you mean "namespace"?)`,
      "invalid configuration: 3 errors",
    ]);
  });

  test("the file name is shown as given", async () => {
    const r = await runCli(["validate-config", "--config-file", "three-mistakes.yaml"], { cwd: FIXTURES });
    expect(r.stderr).toStartWith("three-mistakes.yaml:6:28 ");
  });

  test("--output json: {valid, errors, config}", async () => {
    const r = await runCli(["validate-config", "--config-file", THREE_MISTAKES, "--output", "json", "--max-concurrent-tasks", "many"]);
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(["valid", "errors", "config"]);
    expect(out.valid).toBe(false);
    expect(out.config).toBeNull();
    expect(out.errors).toHaveLength(4);
    expect(out.errors[1]).toEqual({
      file: THREE_MISTAKES,
      line: 7,
      column: 24,
      path: "backend.kubernetes.image_pull_policy",
      message: 'expected one of Always, Never, IfNotPresent; got "always"',
    });
    expect(out.errors[3]).toEqual({ file: null, line: null, column: null, path: "--max-concurrent-tasks", message: 'expected a number; got "many"' });
  });

  test("a valid config: exit 0, the effective config with the API key and -e values redacted", async () => {
    const r = await runCli(["validate-config", "--config-file", join(FIXTURES, "full.yaml"), "-e", "TOKEN=hunter2", "--output", "json"], {
      env: { WARP_API_KEY: "wk_live_secret" },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("wk_live_secret");
    expect(r.stdout).not.toContain("hunter2");
    const out = JSON.parse(r.stdout);
    expect(out.valid).toBe(true);
    expect(out.errors).toEqual([]);
    expect(out.config.apiKey).toBe("<redacted>");
    expect(out.config.env).toEqual([{ name: "TOKEN", value: "<redacted>" }]);
    expect(out.config.workerId).toBe("full-worker");
    expect(out.config.kubernetes.namespace).toBe("oz-tasks");
  });

  test("text output: a summary in YAML on stdout", async () => {
    const r = await runCli(["validate-config", "--worker-id", "cli-worker", "--api-key", "k-123", "--no-cleanup"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("# no config file: valid.");
    expect(r.stdout).toContain("workerId: cli-worker\n");
    expect(r.stdout).toContain("cleanup: false\n");
    expect(r.stdout).toContain("apiKey: <redacted>\n");
    expect(r.stdout).not.toContain("k-123");
    expect(r.stdout).not.toContain("ttlSecondsAfterFinished");
  });

  test("--config-file - reads standard input", async () => {
    const r = await runCli(["validate-config", "--config-file", "-"], { stdin: "worker_id: piped\nnope: 1\n" });
    expect(r.code).toBe(2);
    expect(r.stderr).toStartWith('<stdin>:2:1 nope: unknown key "nope"');
  });

  test("a missing config file names the flag", async () => {
    const r = await runCli(["validate-config", "--config-file", "/nonexistent/config.yaml"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--config-file: cannot read "/nonexistent/config.yaml": no such file');
  });
});

describe("run and preflight load the config before anything else", () => {
  test("run: config errors exit 2 and name every problem", async () => {
    const r = await runCli(["run", "--config-file", THREE_MISTAKES, "--health-addr", "nope"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--health-addr: invalid listen address");
    expect(r.stderr).toContain(":7:24 backend.kubernetes.image_pull_policy");
    expect(r.stderr).toContain("--api-key: required: pass --api-key or set the WARP_API_KEY environment variable");
  });

  test("run refuses a reserved worker id", async () => {
    const r = await runCli(["run", "--worker-id", "warp-worker"], { env: { WARP_API_KEY: "k" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--worker-id: worker ids beginning with "warp" are reserved by Warp; got "warp-worker"');
  });

  test("preflight: a bad --timeout and config errors exit 2", async () => {
    const r = await runCli(["preflight", "--timeout", "soon"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--timeout: expected a positive duration such as 15s or 1m; got "soon"');
    expect(r.stderr).toContain("worker_id: required");
  });
});
