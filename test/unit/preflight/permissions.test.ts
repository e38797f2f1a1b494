import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import {
  describePermission,
  REQUIRED_PERMISSIONS,
  renderRoleSnippet,
  requiredPermissions,
  roleRules,
  subjectFromUsername,
} from "../../../src/preflight/permissions.ts";
import { makeConfig } from "../core/fixtures.ts";

const repoRoot = path.resolve(import.meta.dir, "../../..");

/** The rules of the chart's `oz-agent-worker.rbacRules` named template, as YAML. */
function chartRules(): unknown {
  const tpl = readFileSync(path.join(repoRoot, "charts/oz-agent-worker/templates/_helpers.tpl"), "utf8");
  const m = /\{\{-? define "oz-agent-worker\.rbacRules" -?\}\}\n([\s\S]*?)\{\{-? end -?\}\}/.exec(tpl);
  if (!m) throw new Error("rbacRules template not found");
  return parse(m[1]!);
}

describe("REQUIRED_PERMISSIONS", () => {
  test("the reference RBAC plus jobs patch and secrets create/get, each with a reason", () => {
    expect(REQUIRED_PERMISSIONS.map(describePermission)).toEqual([
      "jobs create (batch)",
      "jobs get (batch)",
      "jobs list (batch)",
      "jobs watch (batch)",
      "jobs patch (batch)",
      "jobs delete (batch)",
      "pods get",
      "pods list",
      "pods watch",
      "pods/log get",
      "events list",
      "secrets create",
      "secrets get",
    ]);
    for (const p of REQUIRED_PERMISSIONS) expect(p.reason.length).toBeGreaterThan(10);
    const keys = REQUIRED_PERMISSIONS.map((p) => `${p.apiGroup}/${p.resource}/${p.verb}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  test("the Helm chart's Role grants exactly these", () => {
    expect(chartRules()).toEqual(roleRules(REQUIRED_PERMISSIONS));
  });

  test("inline_task_env drops the Secret permissions", () => {
    const inline = requiredPermissions(makeConfig({ inlineTaskEnv: true }));
    expect(inline.some((p) => p.resource === "secrets")).toBe(false);
    expect(inline).toHaveLength(11);
    const secret = requiredPermissions(makeConfig({ inlineTaskEnv: false }));
    expect(secret.filter((p) => p.resource === "secrets").map((p) => p.verb)).toEqual(["create", "get"]);
    expect(secret).toHaveLength(13);
  });
});

describe("roleRules", () => {
  test("one rule per apiGroup and resource, verbs in order", () => {
    expect(
      roleRules([
        { apiGroup: "batch", resource: "jobs", verb: "delete" },
        { apiGroup: "", resource: "pods/log", verb: "get" },
        { apiGroup: "batch", resource: "jobs", verb: "patch" },
        { apiGroup: "", resource: "pods", verb: "watch" },
      ]),
    ).toEqual([
      { apiGroups: ["batch"], resources: ["jobs"], verbs: ["delete", "patch"] },
      { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["watch"] },
    ]);
  });
});

describe("renderRoleSnippet", () => {
  const missing = [
    { apiGroup: "batch", resource: "jobs", verb: "delete" },
    { apiGroup: "", resource: "events", verb: "list" },
    { apiGroup: "batch", resource: "jobs", verb: "patch" },
  ];

  test("a Role and a RoleBinding to the worker's ServiceAccount, in one List ready for kubectl apply", () => {
    const text = renderRoleSnippet("warp-oz", missing, subjectFromUsername("system:serviceaccount:warp-oz:oz-agent-worker"));
    expect(text).toBe(
      [
        "apiVersion: v1",
        "kind: List",
        "items:",
        "  - apiVersion: rbac.authorization.k8s.io/v1",
        "    kind: Role",
        "    metadata:",
        '      name: "oz-worker-missing-permissions"',
        '      namespace: "warp-oz"',
        "    rules:",
        '      - apiGroups: ["batch"]',
        '        resources: ["jobs"]',
        '        verbs: ["delete", "patch"]',
        '      - apiGroups: [""]',
        '        resources: ["events"]',
        '        verbs: ["list"]',
        "  - apiVersion: rbac.authorization.k8s.io/v1",
        "    kind: RoleBinding",
        "    metadata:",
        '      name: "oz-worker-missing-permissions"',
        '      namespace: "warp-oz"',
        "    roleRef:",
        "      apiGroup: rbac.authorization.k8s.io",
        "      kind: Role",
        '      name: "oz-worker-missing-permissions"',
        "    subjects:",
        "      - kind: ServiceAccount",
        '        name: "oz-agent-worker"',
        '        namespace: "warp-oz"',
      ].join("\n"),
    );
    const [role, binding] = parse(text).items;
    expect(role.rules).toEqual(roleRules(missing));
    expect(binding.roleRef.name).toBe(role.metadata.name);
  });

  test("still one valid document when indented (as in the text report)", () => {
    const indented = renderRoleSnippet("ns", missing).split("\n").map((l) => `        ${l}`).join("\n");
    expect(parse(indented)).toEqual(parse(renderRoleSnippet("ns", missing)));
  });

  test("a user subject, and a placeholder when the identity is unknown", () => {
    const user = parse(renderRoleSnippet("ns", missing, subjectFromUsername("alice@example.com"))).items;
    expect(user[1].subjects).toEqual([{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "alice@example.com" }]);
    const unknown = renderRoleSnippet("ns", missing);
    expect(unknown).toContain("could not be determined");
    expect(parse(unknown).items[1].subjects[0].kind).toBe("ServiceAccount");
  });

  test("names that need quoting stay valid YAML", () => {
    const [role] = parse(renderRoleSnippet("a: b", missing)).items;
    expect(role.metadata.namespace).toBe("a: b");
  });
});

describe("subjectFromUsername", () => {
  test("ServiceAccount usernames", () => {
    expect(subjectFromUsername("system:serviceaccount:ns1:sa1")).toEqual({ kind: "ServiceAccount", namespace: "ns1", name: "sa1" });
    expect(subjectFromUsername("kubernetes-admin")).toEqual({ kind: "User", name: "kubernetes-admin" });
    expect(subjectFromUsername(undefined)).toBeUndefined();
  });
});
