// Every Kubernetes permission the worker uses, in one list: the preflight checks each of
// them with a SelfSubjectAccessReview, and the Helm chart's Role (the `oz-agent-worker.rbacRules`
// template) grants exactly these (a unit test compares the two). Pure.
import type { WorkerConfig } from "../core/types.ts";

export interface RequiredPermission {
  /** "" is the core group. */
  apiGroup: string;
  /** The resource, with a subresource after a slash (`pods/log`). */
  resource: string;
  verb: string;
  /** Why the worker needs it (shown when it is missing). */
  reason: string;
  /** Only needed for the per-task env Secret, i.e. when `inline_task_env` is off. */
  taskSecretsOnly?: true;
}

/**
 * The reference RBAC (jobs create/get/list/watch/delete, pods get/list/watch, pods/log get,
 * events list) plus what oz-worker adds: jobs patch and secrets create/get.
 * Order matters: the Role rules (and the chart) list resources and verbs in this order.
 */
export const REQUIRED_PERMISSIONS: readonly RequiredPermission[] = [
  { apiGroup: "batch", resource: "jobs", verb: "create", reason: "create each task Job and the preflight Job" },
  { apiGroup: "batch", resource: "jobs", verb: "get", reason: "read an execution's existing Job (a repeated assignment is adopted, never created twice)" },
  { apiGroup: "batch", resource: "jobs", verb: "list", reason: "list this worker's Jobs: start of the one shared Job watch, and adoption after a restart" },
  { apiGroup: "batch", resource: "jobs", verb: "watch", reason: "follow every task Job's conditions through one watch" },
  { apiGroup: "batch", resource: "jobs", verb: "patch", reason: "record a reported outcome as an annotation on the task Job, so a restarted worker never reports it twice" },
  { apiGroup: "batch", resource: "jobs", verb: "delete", reason: "delete succeeded and cancelled task Jobs, and the preflight Job" },
  { apiGroup: "", resource: "pods", verb: "get", reason: "read a task pod's status and container states" },
  { apiGroup: "", resource: "pods", verb: "list", reason: "list this worker's pods: start of the one shared Pod watch" },
  { apiGroup: "", resource: "pods", verb: "watch", reason: "follow task pods and the preflight pod" },
  { apiGroup: "", resource: "pods/log", verb: "get", reason: "copy a failed task's container logs into the worker log" },
  { apiGroup: "", resource: "events", verb: "list", reason: "read FailedCreate, FailedMount and image pull events of a Job or pod in trouble" },
  { apiGroup: "", resource: "secrets", verb: "create", reason: "create the per-task Secret holding the task's env_vars (owned by its Job)", taskSecretsOnly: true },
  { apiGroup: "", resource: "secrets", verb: "get", reason: "check that a Job left suspended by a stopped worker has its per-task Secret before resuming it", taskSecretsOnly: true },
];

/** The permissions this config needs: without the Secret ones when env is inline. */
export function requiredPermissions(config: Pick<WorkerConfig, "kubernetes">): RequiredPermission[] {
  return REQUIRED_PERMISSIONS.filter((p) => !(p.taskSecretsOnly && config.kubernetes.inlineTaskEnv));
}

/** `jobs delete (batch)`, `pods/log get`. */
export function describePermission(p: Pick<RequiredPermission, "apiGroup" | "resource" | "verb">): string {
  return `${p.resource} ${p.verb}${p.apiGroup ? ` (${p.apiGroup})` : ""}`;
}

export function samePermission(
  a: Pick<RequiredPermission, "apiGroup" | "resource" | "verb">,
  b: Pick<RequiredPermission, "apiGroup" | "resource" | "verb">,
): boolean {
  return a.apiGroup === b.apiGroup && a.resource === b.resource && a.verb === b.verb;
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** Role rules for these permissions: one rule per (apiGroup, resource), in first-seen order. */
export function roleRules(perms: readonly Pick<RequiredPermission, "apiGroup" | "resource" | "verb">[]): PolicyRule[] {
  const rules: PolicyRule[] = [];
  for (const p of perms) {
    let rule = rules.find((r) => r.apiGroups[0] === p.apiGroup && r.resources[0] === p.resource);
    if (!rule) {
      rule = { apiGroups: [p.apiGroup], resources: [p.resource], verbs: [] };
      rules.push(rule);
    }
    if (!rule.verbs.includes(p.verb)) rule.verbs.push(p.verb);
  }
  return rules;
}

/** Who the worker authenticates as, for the RoleBinding of the snippet. */
export type RbacSubject =
  | { kind: "ServiceAccount"; name: string; namespace: string }
  | { kind: "User"; name: string }
  | { kind: "Group"; name: string };

/** `system:serviceaccount:ns:name` → a ServiceAccount subject; anything else → a User. */
export function subjectFromUsername(username: string | undefined): RbacSubject | undefined {
  if (!username) return undefined;
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  if (m) return { kind: "ServiceAccount", namespace: m[1]!, name: m[2]! };
  return { kind: "User", name: username };
}

export const SNIPPET_ROLE_NAME = "oz-worker-missing-permissions";

const q = (s: string): string => JSON.stringify(s);
const list = (items: readonly string[]): string => `[${items.map(q).join(", ")}]`;

/**
 * A ready-to-apply (`kubectl apply -f`) List of a Role granting exactly these permissions in
 * the namespace and a RoleBinding to the subject (a placeholder ServiceAccount when unknown).
 * Additive: it never takes away what another Role grants. One YAML document, so it still
 * applies when copied with the indentation of the text report.
 */
export function renderRoleSnippet(
  namespace: string,
  perms: readonly Pick<RequiredPermission, "apiGroup" | "resource" | "verb">[],
  subject?: RbacSubject,
  name: string = SNIPPET_ROLE_NAME,
): string {
  const lines = [
    "apiVersion: v1",
    "kind: List",
    "items:",
    "  - apiVersion: rbac.authorization.k8s.io/v1",
    "    kind: Role",
    "    metadata:",
    `      name: ${q(name)}`,
    `      namespace: ${q(namespace)}`,
    "    rules:",
  ];
  for (const r of roleRules(perms)) {
    lines.push(`      - apiGroups: ${list(r.apiGroups)}`, `        resources: ${list(r.resources)}`, `        verbs: ${list(r.verbs)}`);
  }
  lines.push(
    "  - apiVersion: rbac.authorization.k8s.io/v1",
    "    kind: RoleBinding",
    "    metadata:",
    `      name: ${q(name)}`,
    `      namespace: ${q(namespace)}`,
    "    roleRef:",
    "      apiGroup: rbac.authorization.k8s.io",
    "      kind: Role",
    `      name: ${q(name)}`,
    "    subjects:",
  );
  if (!subject) {
    lines.push(
      "      # the worker's identity could not be determined: name its ServiceAccount here",
      "      - kind: ServiceAccount",
      '        name: "oz-agent-worker"',
      `        namespace: ${q(namespace)}`,
    );
  } else if (subject.kind === "ServiceAccount") {
    lines.push("      - kind: ServiceAccount", `        name: ${q(subject.name)}`, `        namespace: ${q(subject.namespace)}`);
  } else {
    lines.push(`      - kind: ${subject.kind}`, "        apiGroup: rbac.authorization.k8s.io", `        name: ${q(subject.name)}`);
  }
  return lines.join("\n");
}
