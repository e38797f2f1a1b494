// The compiled binary (dist/oz-worker, from scripts/build) is self-contained, as the container
// image relies on: copied alone into an empty directory, with an EMPTY environment (`env -i`:
// no PATH, no HOME), no node_modules anywhere above it and no sources, it prints its help and
// version and validates a config file, including the config.yaml the Helm chart renders.
// The Dockerfile runs the same kind of check in its build stage.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { allValuesFile, ensureHelm, goDefaultsFile, render, repoRoot, SEED_SET } from "../support/helm.ts";

// bun's default is 5 s per test; the binary's start-up on a busy machine needs more headroom.
setDefaultTimeout(30_000);

const BINARY = process.env.OZ_WORKER_BIN || path.join(repoRoot, "dist/oz-worker");
const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };

/** Holds only the copied binary. */
let binDir = "";
/** Config files, elsewhere. */
let configDir = "";

beforeAll(async () => {
  if (!process.env.OZ_WORKER_BIN && !existsSync(BINARY)) {
    // scripts/test builds it first; build it when this file runs on its own.
    const res = await run([path.join(repoRoot, "scripts/build")], repoRoot, 10 * 60_000);
    if (res.code !== 0) throw new Error(`scripts/build failed:\n${res.stderr}`);
  }
  binDir = mkdtempSync(path.join(tmpdir(), "oz-worker-bin-"));
  configDir = mkdtempSync(path.join(tmpdir(), "oz-worker-bin-config-"));
  copyFileSync(BINARY, path.join(binDir, "oz-worker"));
  await ensureHelm();
}, 30 * 60_000);

afterAll(() => {
  for (const dir of [binDir, configDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], cwd: string, timeoutMs: number): Promise<Result> {
  const proc = Bun.spawn(argv, { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** `env -i ./oz-worker ARGS` in the binary's directory: no environment variable at all. */
function runAlone(...args: string[]): Promise<Result> {
  return run(["/usr/bin/env", "-i", "./oz-worker", ...args], binDir, 30_000);
}

function writeConfig(name: string, text: string): string {
  const file = path.join(configDir, name);
  writeFileSync(file, text);
  return file;
}

describe("the compiled binary is self-contained", () => {
  test("it runs from a directory holding only itself, with no node_modules above it", () => {
    expect(readdirSync(binDir)).toEqual(["oz-worker"]);
    for (let dir = binDir; ; dir = path.dirname(dir)) {
      expect(existsSync(path.join(dir, "node_modules"))).toBe(false);
      expect(existsSync(path.join(dir, "package.json"))).toBe(false);
      if (path.dirname(dir) === dir) break;
    }
  });

  test("--help with an empty environment: exit 0, the commands listed", async () => {
    const res = await runAlone("--help");
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    expect(res.stdout).toStartWith(`oz-worker ${pkg.version}`);
    for (const command of ["run", "preflight", "render-pod", "validate-config"]) expect(res.stdout).toContain(command);
  });

  test("--version with an empty environment: the package version and an embedded commit", async () => {
    const res = await runAlone("--version");
    expect(res.code).toBe(0);
    expect(res.stdout.trim()).toMatch(new RegExp(`^oz-worker ${pkg.version.replaceAll(".", "\\.")} \\(commit [0-9a-z-]+\\)$`));
  });

  test("validate-config of a valid config with an empty environment: exit 0", async () => {
    const file = writeConfig(
      "minimal.yaml",
      ["worker_id: binary-check", "backend:", "  kubernetes:", "    namespace: oz-tasks", ""].join("\n"),
    );
    const res = await runAlone("validate-config", "--config-file", file);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`# ${file}: valid.`);
    expect(res.stdout).toContain("workerId: binary-check");
    expect(readdirSync(binDir)).toEqual(["oz-worker"]);
  });

  test("validate-config of an invalid config with an empty environment: exit non-zero, the error named", async () => {
    const file = writeConfig("invalid.yaml", ["worker_id: binary-check", "max_concurrent_tasks: many", ""].join("\n"));
    const res = await runAlone("validate-config", "--config-file", file);
    expect(res.code).not.toBe(0);
    expect(res.stdout + res.stderr).toContain("max_concurrent_tasks");
  });

  test.each([
    ["the product page's install command", SEED_SET],
    ["every value set", ["--values", allValuesFile]],
    // With cleanup on, the chart writes every key it can (ttl_seconds_after_finished too).
    ["every value set, cleanup on", ["--values", allValuesFile, "--set", "worker.cleanup=true"]],
    ["the Go chart's defaults", ["--values", goDefaultsFile, ...SEED_SET]],
  ])("validate-config accepts the config.yaml the chart renders for %s", async (name, args) => {
    const rendered = await render(...args);
    const file = writeConfig(`chart-${name.replace(/[^a-z]+/gi, "-")}.yaml`, rendered.configText());
    const res = await runAlone("validate-config", "--config-file", file, "--output", "json");
    const report = JSON.parse(res.stdout) as { valid: boolean; errors: unknown[]; config: { workerId: string; kubernetes: Record<string, unknown> } };
    expect(report.errors).toEqual([]);
    expect(report.valid).toBe(true);
    expect(res.code).toBe(0);
    expect(report.config.workerId).toBe(rendered.config().worker_id as string);
    expect(report.config.kubernetes.namespace).toBe(rendered.kubernetesConfig().namespace as string);
    if (name === "every value set, cleanup on") {
      expect(Object.keys(rendered.kubernetesConfig())).toContain("ttl_seconds_after_finished");
      expect(report.config.kubernetes).toMatchObject({
        ttlSecondsAfterFinished: 3600,
        useImageVolumes: true,
        sidecarImage: "registry.example.com/mirror/oz-agent-sidecar:2024.10",
        preflightResources: { requests: { cpu: "20m", memory: "32Mi" }, limits: { cpu: "200m", memory: "64Mi" } },
      });
    }
  });
});
