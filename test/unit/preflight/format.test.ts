import { describe, expect, test } from "bun:test";
import { formatCheckJson, formatCheckText, formatDuration, formatSummaryText } from "../../../src/preflight/format.ts";
import { exitCodeFor, type CheckResult, type PreflightReport } from "../../../src/preflight/types.ts";

const pass: CheckResult = { name: "connection", status: "pass", durationMs: 12, summary: 'Kubernetes v1.33.1 at https://127.0.0.1:6443; namespace "tasks" exists' };
const fail: CheckResult = {
  name: "permissions",
  status: "fail",
  durationMs: 31,
  summary: 'missing 1 of 13 permissions in namespace "tasks": jobs delete (batch)',
  details: ["missing: jobs delete (batch): needed to delete succeeded and cancelled task Jobs, and the preflight Job"],
  fix: "Grant the missing permissions:\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role",
};
const skip: CheckResult = { name: "preflight-job", status: "skip", durationMs: 0, summary: "skipped: needs jobs delete (batch) (see permissions)" };

describe("formatCheckText", () => {
  test("one line per check: status, name, duration, summary", () => {
    expect(formatCheckText(pass)).toBe('✓ PASS  connection       12 ms  Kubernetes v1.33.1 at https://127.0.0.1:6443; namespace "tasks" exists');
    expect(formatCheckText(skip)).toBe("- SKIP  preflight-job     0 ms  skipped: needs jobs delete (batch) (see permissions)");
  });

  test("a failure: details and the fix indented below, multi-line fixes kept", () => {
    expect(formatCheckText(fail).split("\n")).toEqual([
      '✗ FAIL  permissions      31 ms  missing 1 of 13 permissions in namespace "tasks": jobs delete (batch)',
      "      missing: jobs delete (batch): needed to delete succeeded and cancelled task Jobs, and the preflight Job",
      "      fix: Grant the missing permissions:",
      "        apiVersion: rbac.authorization.k8s.io/v1",
      "        kind: Role",
    ]);
  });

  test("colour only when asked", () => {
    expect(formatCheckText(pass, { color: true })).toContain("\x1b[32m✓ PASS\x1b[0m");
    expect(formatCheckText(pass)).not.toContain("\x1b[");
  });
});

describe("formatCheckJson", () => {
  test("one object per line with name, status, durationMs, summary and, when present, details and fix", () => {
    const line = formatCheckJson(fail);
    expect(line).not.toContain("\n");
    expect(JSON.parse(line)).toEqual(fail);
    expect(Object.keys(JSON.parse(formatCheckJson(pass)))).toEqual(["name", "status", "durationMs", "summary"]);
  });
});

describe("durations, summary line and exit codes", () => {
  test("formatDuration", () => {
    expect(formatDuration(0)).toBe("0 ms");
    expect(formatDuration(999)).toBe("999 ms");
    expect(formatDuration(1234)).toBe("1.23 s");
    expect(formatDuration(15_012)).toBe("15.0 s");
  });

  const report = (over: Partial<PreflightReport>): PreflightReport => ({
    ok: true,
    results: [pass],
    unreachable: false,
    interrupted: false,
    namespace: "tasks",
    durationMs: 1500,
    ...over,
  });

  test("summary line", () => {
    expect(formatSummaryText(report({}))).toBe('preflight passed in 1.50 s: namespace "tasks" is ready to run tasks');
    expect(formatSummaryText(report({ ok: false, results: [pass, fail, skip] }))).toBe('preflight failed in 1.50 s: permissions (namespace "tasks")');
  });

  test("exit codes: 0 passed, 1 a check failed, 3 unreachable, 130 interrupted", () => {
    expect(exitCodeFor(report({}))).toBe(0);
    expect(exitCodeFor(report({ ok: false }))).toBe(1);
    expect(exitCodeFor(report({ ok: false, unreachable: true }))).toBe(3);
    expect(exitCodeFor(report({ ok: false, interrupted: true }))).toBe(130);
  });
});
