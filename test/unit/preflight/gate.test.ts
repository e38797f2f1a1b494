// The startup gate of `run`: the same checks, logged; skip with a warning.
import { describe, expect, test } from "bun:test";
import { preflightGate, startupPreflight } from "../../../src/preflight/gate.ts";
import { createLogger } from "../../../src/telemetry/log.ts";
import { makeConfig } from "../core/fixtures.ts";
import { FakeKube } from "./fake-kube.ts";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ format: "json", level: "debug", stream: { write: (s: string) => void lines.push(...s.trim().split("\n").map((l) => JSON.parse(l))) } });
  return { log, lines };
}

const config = makeConfig({ namespace: "tasks", inlineTaskEnv: false });
const startedPod = (job: string) => ({
  metadata: { name: `${job}-abcde` },
  status: { phase: "Running", containerStatuses: [{ name: "main", state: { running: {} } }] },
});

describe("startupPreflight", () => {
  test("logs each check and passes", async () => {
    const { log, lines } = capture();
    const kube = new FakeKube({ onJobCreated: (k, job) => k.push("pods", "ADDED", startedPod(job.metadata.name)) });
    const r = await startupPreflight({ config, kube, log });
    expect(r).toMatchObject({ ok: true, skipped: false, exitCode: 0 });
    expect(lines.map((l) => [l.level, l.check ?? null])).toEqual([
      ["info", "connection"],
      ["info", "permissions"],
      ["info", "dry-run"],
      ["info", "preflight-job"],
      ["info", null],
    ]);
    expect(lines.at(-1)?.msg).toBe("preflight passed");
  });

  test("a failure is logged as an error with details and fix", async () => {
    const { log, lines } = capture();
    const r = await startupPreflight({ config, kube: new FakeKube({ denied: ["jobs delete"] }), log });
    expect(r).toMatchObject({ ok: false, exitCode: 1 });
    const perm = lines.find((l) => l.check === "permissions")!;
    expect(perm.level).toBe("error");
    expect(perm.msg).toBe('preflight permissions: missing 1 of 13 permissions in namespace "tasks": jobs delete (batch)');
    expect(perm.details).toEqual(["missing: jobs delete (batch): needed to delete succeeded and cancelled task Jobs, and the preflight Job"]);
    expect(String(perm.fix)).toContain("kind: Role");
    expect(lines.at(-1)?.msg).toContain("the worker will not accept tasks");
  });

  test("skip: a warning, nothing checked", async () => {
    const { log, lines } = capture();
    const kube = new FakeKube();
    const r = await startupPreflight({ config, kube, log, skip: true });
    expect(r).toEqual({ ok: true, skipped: true, exitCode: 0 });
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe("warn");
    expect(kube.requests).toEqual([]);
  });

  test("preflightGate fits runWorker's hook", async () => {
    const { log } = capture();
    const kube = new FakeKube({ unreachable: true });
    expect(await preflightGate(config, log, new AbortController().signal, kube as never)).toBe(false);
  });
});
