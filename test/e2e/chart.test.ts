// The Helm chart (charts/oz-agent-worker) against its contract: the product
// page's values and defaults, a namespace-scoped install, the exact RBAC the
// worker uses, and the worker config file built from values.
//
// Everything here renders offline with scripts/helm (helm v3.22.0 built from
// the Go module proxy on first use, then cached) through the shared render
// helpers in test/support/helm.ts. The sandbox tests of the rendered sets
// (server-side dry run, the Role's sufficiency and minimality, the pod
// template reaching a task pod) are in test/e2e/chart-sandbox.test.ts.

import { beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import {
  allValuesFile,
  chartDir,
  type ConfigMap,
  ensureHelm,
  goDefaultsFile,
  helm,
  NAMESPACE,
  type PodMonitor,
  RELEASE,
  type Rendered,
  render,
  renderAllValues,
  renderFails,
  renderWith,
  renderSeedInstall,
  repoRoot,
  type Role,
  type RoleBinding,
  type Secret,
  SEED_SET,
  type Service,
  valuesFile,
} from "../support/helm.ts";

/** Exactly the permissions the worker uses: the product page's list plus jobs patch and secrets create/get (REQUIRED_PERMISSIONS in src/preflight/permissions.ts). */
const EXPECTED_RULES = [
  { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "patch", "delete"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
  { apiGroups: [""], resources: ["events"], verbs: ["list"] },
  { apiGroups: [""], resources: ["secrets"], verbs: ["create", "get"] },
];

// ---------------------------------------------------------------------------
// values.yaml, values.schema.json and the fixture

type Values = Record<string, unknown>;

interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
}

const isMap = (v: unknown): v is Values => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Dotted paths of the chart's values: the schema's declared properties,
 * descending into those the schema declares with properties of their own
 * (free-form values such as resources or podTemplate are one value).
 */
function schemaPaths(node: SchemaNode, prefix = ""): string[] {
  return Object.entries(node.properties ?? {}).flatMap(([key, sub]) => {
    const p = prefix + key;
    return sub.properties ? schemaPaths(sub, `${p}.`) : [p];
  });
}

function lookup(values: unknown, dotted: string): { found: boolean; value?: unknown } {
  let cur: unknown = values;
  for (const key of dotted.split(".")) {
    if (!isMap(cur) || !(key in cur)) return { found: false };
    cur = cur[key];
  }
  return { found: true, value: cur };
}

const defaults = parse(readFileSync(path.join(chartDir, "values.yaml"), "utf8")) as Values;
const schema = JSON.parse(readFileSync(path.join(chartDir, "values.schema.json"), "utf8")) as SchemaNode;
const allValues = parse(readFileSync(allValuesFile, "utf8")) as Values;
const goDefaults = parse(readFileSync(goDefaultsFile, "utf8")) as Values;

// ---------------------------------------------------------------------------

// The first run builds helm from the Go module proxy (a few minutes).
beforeAll(ensureHelm, 30 * 60_000);

describe("chart: lint", () => {
  test("helm lint --strict passes for the product page's install", async () => {
    const res = await helm("lint", "--strict", chartDir, "--namespace", NAMESPACE, ...SEED_SET);
    expect(res.stdout + res.stderr).toContain("0 chart(s) failed");
    expect(res.code).toBe(0);
  });

  test("helm lint --strict passes with every value set", async () => {
    const res = await helm("lint", "--strict", chartDir, "--namespace", NAMESPACE, "--values", allValuesFile);
    expect(res.stdout + res.stderr).toContain("0 chart(s) failed");
    expect(res.code).toBe(0);
  });

  test("Chart.yaml's appVersion is the package version", () => {
    const chart = parse(readFileSync(path.join(chartDir, "Chart.yaml"), "utf8")) as Values;
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
    expect(chart.name).toBe("oz-agent-worker");
    expect(chart.appVersion).toBe(pkg.version);
  });
});

describe("chart: the Go worker chart's values and defaults", () => {
  // Where our defaults knowingly differ from the Go chart's: our own image, the httpGet
  // probe of /healthz (a Go user's exec probe replaces it: see "drop-in" below), and a
  // read-only root filesystem on top of the Go chart's container security context.
  const OWN_DEFAULTS = ["image.repository", "worker.livenessProbe", "worker.securityContext"];
  /** The Go values file's paths, down to the values our schema declares as one value. */
  const goPaths = (v: Values, node: SchemaNode, prefix = ""): string[] =>
    Object.entries(v).flatMap(([k, sub]) => {
      const s = node.properties?.[k];
      if (!s) return [`${prefix}${k} (not declared by values.schema.json)`];
      return s.properties && isMap(sub) ? goPaths(sub, s, `${prefix}${k}.`) : [prefix + k];
    });
  const goValuePaths = goPaths(goDefaults, schema);

  test("the fixture lists the Go chart's values (a sample of the list: nested and free-form ones)", () => {
    for (const p of ["worker.extraArgs", "worker.podSecurityContext", "kubernetesBackend.preflightResources", "metrics.podMonitor.scrapeTimeout", "image.pullSecrets"]) {
      expect(goValuePaths).toContain(p);
    }
    // The list in the upstream-compatibility facts has 61 values.
    expect(goValuePaths).toHaveLength(61);
  });

  test("every Go value is declared by values.schema.json and has a default in values.yaml", () => {
    expect(goValuePaths.filter((p) => p.includes(" "))).toEqual([]);
    expect(goValuePaths.filter((p) => !lookup(defaults, p).found)).toEqual([]);
  });

  test.each(goValuePaths.filter((p) => !OWN_DEFAULTS.includes(p)).map((p) => [p]))("%s has the Go chart's default", (p) => {
    expect(lookup(defaults, p).value).toEqual(lookup(goDefaults, p).value);
  });

  test("the defaults that differ: our image, the httpGet liveness probe, and a read-only root filesystem on top of the Go security context", () => {
    expect(lookup(defaults, "image.repository").value).toBe("oz-worker");
    expect(lookup(defaults, "worker.securityContext").value).toEqual({
      ...(lookup(goDefaults, "worker.securityContext").value as Values),
      readOnlyRootFilesystem: true,
    });
    expect(lookup(defaults, "worker.livenessProbe").value).toMatchObject({ httpGet: { path: "/healthz" } });
  });

  test("the default probes are httpGet /healthz and /readyz on the health port 8081", () => {
    expect(lookup(defaults, "worker.healthPort").value).toBe(8081);
    expect(lookup(defaults, "worker.livenessProbe").value).toMatchObject({ httpGet: { path: "/healthz", port: "health" } });
    expect(lookup(defaults, "worker.readinessProbe").value).toMatchObject({ httpGet: { path: "/readyz", port: "health" } });
  });

  test("values.yaml and values.schema.json declare the same values", () => {
    // Every value the schema declares has a default in values.yaml...
    expect(schemaPaths(schema).filter((p) => !lookup(defaults, p).found)).toEqual([]);
    // values.yaml has nothing the schema does not declare (the schema rejects
    // unknown keys inside image, worker, kubernetesBackend, warp and metrics).
    const walk = (v: Values, node: SchemaNode, prefix: string): string[] =>
      Object.entries(v).flatMap(([k, sub]) => {
        const s = node.properties?.[k];
        if (!s) return [prefix + k];
        return s.properties && isMap(sub) ? walk(sub, s, `${prefix}${k}.`) : [];
      });
    expect(walk(defaults, schema, "")).toEqual([]);
  });

  test("the all-values fixture sets every value", () => {
    const missing = schemaPaths(schema).filter((p) => !lookup(allValues, p).found);
    expect(missing).toEqual([]);
    const unchanged = schemaPaths(schema).filter(
      (p) => JSON.stringify(lookup(allValues, p).value) === JSON.stringify(lookup(defaults, p).value),
    );
    // These stay at their defaults so the objects they control render.
    expect(unchanged).toEqual(["serviceAccount.create", "rbac.create", "metrics.exporter", "metrics.service.create"]);
  });
});

describe("chart: helm template of the product page's install command", () => {
  let r: Rendered;
  beforeAll(async () => {
    r = await renderSeedInstall();
  });

  test("renders only namespaced objects in the release namespace, named as the Go chart names them", () => {
    expect(r.kinds()).toEqual(["ConfigMap", "Deployment", "Role", "RoleBinding", "ServiceAccount"]);
    for (const o of r.objects) expect(`${o.kind} ${o.metadata.namespace}`).toBe(`${o.kind} ${NAMESPACE}`);
    for (const o of r.objects) expect(o.metadata.name).toBe(o.kind === "ConfigMap" ? `${RELEASE}-config` : RELEASE);
  });

  test("the Deployment runs one worker, non-root and locked down", () => {
    const d = r.deployment();
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.strategy).toEqual({ type: "Recreate" });
    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).toBe(r.one("ServiceAccount").metadata.name);
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.terminationGracePeriodSeconds).toBe(30);
    const c = r.container();
    expect(c.name).toBe("oz-agent-worker");
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(c.image).toBe("oz-worker:0.1.0");
    expect(c.imagePullPolicy).toBe("IfNotPresent");
    // The Go chart's arguments, no subcommand, then the health endpoints' address.
    expect(c.args).toEqual([
      "--config-file", "/etc/oz-agent-worker/config.yaml",
      "--backend", "kubernetes",
      "--log-level", "info",
      "--web-socket-url", "wss://oz.warp.dev/api/v1/selfhosted/worker/ws",
      "--server-root-url", "https://app.warp.dev",
      "--health-addr", "0.0.0.0:8081",
    ]);
    expect(c.resources).toEqual({ requests: { cpu: "100m", memory: "128Mi" } });
    // The health endpoints, on all interfaces of the pod, probed by httpGet.
    expect(c.ports).toEqual([{ name: "health", containerPort: 8081, protocol: "TCP" }]);
    expect(c.livenessProbe).toEqual({
      httpGet: { path: "/healthz", port: "health" },
      initialDelaySeconds: 10,
      periodSeconds: 30,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
    expect(c.readinessProbe).toEqual({
      httpGet: { path: "/readyz", port: "health" },
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
    // Exactly the Go chart's selector, and it selects the pod template.
    expect(d.spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "oz-agent-worker", "app.kubernetes.io/instance": RELEASE });
    expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
  });

  test("the config is mounted read-only at /etc/oz-agent-worker and /tmp is writable", () => {
    const pod = r.deployment().spec.template.spec;
    expect(r.one<ConfigMap>("ConfigMap").data).toHaveProperty(["config.yaml"]);
    expect(r.container().volumeMounts).toEqual([
      { name: "config", mountPath: "/etc/oz-agent-worker", readOnly: true },
      { name: "tmp", mountPath: "/tmp" },
    ]);
    expect(pod.volumes).toEqual([
      { name: "config", configMap: { name: r.one("ConfigMap").metadata.name } },
      { name: "tmp", emptyDir: {} },
    ]);
  });

  test("WARP_API_KEY comes from the oz-agent-worker Secret, which the chart does not create", () => {
    expect(r.env("WARP_API_KEY")).toEqual({
      name: "WARP_API_KEY",
      valueFrom: { secretKeyRef: { name: "oz-agent-worker", key: "WARP_API_KEY" } },
    });
    expect(r.all("Secret")).toEqual([]);
  });

  test("metrics are off: no exporter, no Service", () => {
    expect(r.env("OTEL_METRICS_EXPORTER")?.value).toBe("none");
    expect(r.env("OTEL_EXPORTER_PROMETHEUS_PORT")).toBeUndefined();
  });

  test("the Role has exactly the worker's permissions, bound to its ServiceAccount", () => {
    const role = r.one<Role>("Role");
    expect(role.rules).toEqual(EXPECTED_RULES);
    const binding = r.one<RoleBinding>("RoleBinding");
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name });
    expect(binding.subjects).toEqual([
      { kind: "ServiceAccount", name: r.one("ServiceAccount").metadata.name, namespace: NAMESPACE },
    ]);
  });

  test("config.yaml has the worker's keys, with empty values left out", () => {
    expect(r.config()).toEqual({
      worker_id: "oz-k8s-worker",
      cleanup: true,
      max_concurrent_tasks: 0,
      backend: {
        kubernetes: {
          namespace: NAMESPACE,
          image_pull_policy: "IfNotPresent",
          unschedulable_timeout: "30s",
          active_deadline_seconds: 28800,
          ttl_seconds_after_finished: 86400,
        },
      },
    });
  });

  test("the pod carries a checksum of the config", () => {
    expect(r.checksum()).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("chart: required values and the schema", () => {
  test("without worker.workerId it fails naming worker.workerId", async () => {
    const stderr = await renderFails("--set", "image.tag=0.1.0");
    expect(stderr).toContain("worker.workerId is required");
  });

  test("without image.tag it fails naming image.tag", async () => {
    const stderr = await renderFails("--set", "worker.workerId=oz-k8s-worker");
    expect(stderr).toContain("image.tag is required");
  });

  test.each([
    ["worker.logLevel", "verbose", "/worker/logLevel", "value must be one of 'debug', 'info', 'warn', 'error'"],
    ["image.pullPolicy", "Sometimes", "/image/pullPolicy", "value must be one of"],
    ["kubernetesBackend.imagePullPolicy", "Sometimes", "/kubernetesBackend/imagePullPolicy", "value must be one of"],
    ["metrics.exporter", "statsd", "/metrics/exporter", "'prometheus', 'otlp', 'console', 'none'"],
  ])("%s=%s fails the schema", async (key, value, at, message) => {
    const stderr = await renderFails(...SEED_SET, "--set", `${key}=${value}`);
    expect(stderr).toContain("values don't meet the specifications of the schema");
    expect(stderr).toContain(`at '${at}'`);
    expect(stderr).toContain(message);
  });

  test.each([
    ["worker.maxConcurrentTasks", "many", "/worker/maxConcurrentTasks", "want integer"],
    ["worker.cleanup", "yes", "/worker/cleanup", "want boolean"],
    ["metrics.port", "99999", "/metrics/port", "maximum"],
    ["kubernetesBackend.unschedulableTimeout", "thirty", "/kubernetesBackend/unschedulableTimeout", "pattern"],
    ["kubernetesBackend.namespace", "Tasks_NS", "/kubernetesBackend/namespace", "pattern"],
    ["kubernetesBackend.workspaceSizeLimit", "10ni", "/kubernetesBackend/workspaceSizeLimit", "pattern"],
    ["worker.idleOnComplete", "-5s", "/worker/idleOnComplete", "pattern"],
  ])("%s=%s fails the schema", async (key, value, at, message) => {
    const stderr = await renderFails(...SEED_SET, "--set", `${key}=${value}`);
    expect(stderr).toContain(`at '${at}'`);
    expect(stderr).toContain(message);
  });

  test("a misspelt value is rejected rather than ignored", async () => {
    const stderr = await renderFails(...SEED_SET, "--set", "worker.workerID=oz-k8s-worker");
    expect(stderr).toContain("additional properties 'workerID' not allowed");
  });

  test.each(["warp-worker", "Warp", "WARPED"])("worker ID %s is reserved", async (id) => {
    const stderr = await renderFails("--set", `worker.workerId=${id}`, "--set", "image.tag=0.1.0");
    expect(stderr).toContain("at '/worker/workerId'");
  });

  test.each(["war", "w", "my-warp-worker", "oz-k8s-worker"])("worker ID %s is allowed", async (id) => {
    const r = await render("--set", `worker.workerId=${id}`, "--set", "image.tag=0.1.0");
    expect(r.config().worker_id).toBe(id);
  });

  test("a chart-managed Secret needs the key", async () => {
    const stderr = await renderFails(...SEED_SET, "--set", "warp.apiKeySecret.create=true");
    expect(stderr).toContain("warp.apiKeySecret.value is required");
  });

  test("a PodMonitor without Prometheus metrics is not rendered (as in the Go chart)", async () => {
    const r = await renderSeedInstall("--set", "metrics.podMonitor.create=true");
    expect(r.all("PodMonitor")).toEqual([]);
    const otlp = await renderSeedInstall("--set", "metrics.podMonitor.create=true", "--set", "metrics.enabled=true", "--set", "metrics.exporter=otlp");
    expect(otlp.all("PodMonitor")).toEqual([]);
  });
});

describe("chart: helm template with every value set", () => {
  let r: Rendered;
  beforeAll(async () => {
    r = await renderAllValues();
  });

  test("renders every object, RBAC in the task namespace", () => {
    expect(r.kinds()).toEqual([
      "ConfigMap",
      "Deployment",
      "PodMonitor",
      "Role",
      "RoleBinding",
      "Secret",
      "Service",
      "ServiceAccount",
    ]);
    for (const o of r.objects) {
      const ns = o.kind === "Role" || o.kind === "RoleBinding" ? "warp-oz-tasks" : NAMESPACE;
      expect(`${o.kind} ${o.metadata.namespace}`).toBe(`${o.kind} ${ns}`);
    }
    expect(r.one<Role>("Role").rules).toEqual(EXPECTED_RULES);
    expect(r.one<RoleBinding>("RoleBinding").subjects).toEqual([
      { kind: "ServiceAccount", name: "oz-worker-prod-sa", namespace: NAMESPACE },
    ]);
    const sa = r.one("ServiceAccount");
    expect(sa.metadata.name).toBe("oz-worker-prod-sa");
    expect(sa.metadata.annotations).toEqual({ "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/oz-worker" });
    expect(r.one("ConfigMap").metadata.name).toBe("oz-worker-prod-config");
  });

  test("config.yaml carries every worker setting under its snake_case key", () => {
    const kb = allValues.kubernetesBackend as Values;
    expect(r.config()).toEqual({
      worker_id: "oz-k8s-worker-prod",
      cleanup: false,
      max_concurrent_tasks: 4,
      idle_on_complete: "45m",
      backend: {
        kubernetes: {
          namespace: "warp-oz-tasks",
          default_image: "registry.example.com/platform/agent-base:2024.10",
          image_pull_policy: "Always",
          use_image_volumes: true,
          preflight_image: "registry.example.com/mirror/busybox:1.36",
          preflight_resources: kb.preflightResources,
          sidecar_image: "registry.example.com/mirror/oz-agent-sidecar:2024.10",
          unschedulable_timeout: "2m30s",
          setup_command: kb.setupCommand,
          teardown_command: kb.teardownCommand,
          extra_labels: { team: "platform", "cost-center": "1234" },
          extra_annotations: {
            "example.com/owner": "platform-team",
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
          },
          active_deadline_seconds: 7200,
          // No ttl_seconds_after_finished: cleanup is off, so Jobs are kept (as in the Go chart).
          workspace_size_limit: "20Gi",
          pod_template: kb.podTemplate,
        },
      },
    });
  });

  test("the Deployment uses the image, scheduling, security, annotation, label and env values", () => {
    const d = r.deployment();
    const pod = d.spec.template.spec;
    const w = allValues.worker as Values;
    expect(pod.imagePullSecrets).toEqual([{ name: "platform-registry" }]);
    expect(pod.serviceAccountName).toBe("oz-worker-prod-sa");
    expect(pod.terminationGracePeriodSeconds).toBe(90);
    expect(pod.securityContext).toEqual(w.podSecurityContext as Values);
    expect(r.container().securityContext).toEqual(w.securityContext as Values);
    expect(d.metadata.annotations).toEqual({ "example.com/owner": "platform-team" });
    expect(d.spec.template.metadata.annotations).toMatchObject({ "example.com/scrape-logs": "true" });
    // worker.podLabels are added; the selector label it names keeps the chart's value.
    expect(d.spec.template.metadata.labels).toEqual({ "app.kubernetes.io/name": "ozw", "app.kubernetes.io/instance": RELEASE, team: "platform" });
    expect(d.spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "ozw", "app.kubernetes.io/instance": RELEASE });
    expect(pod.nodeSelector).toEqual(w.nodeSelector as Record<string, string>);
    expect(pod.tolerations).toEqual(w.tolerations as Record<string, unknown>[]);
    expect(pod.affinity).toEqual(w.affinity as Record<string, unknown>);
    const c = r.container();
    expect(c.image).toBe("registry.example.com/platform/oz-worker:0.1.0-rc.1");
    expect(c.imagePullPolicy).toBe("Always");
    expect(c.args).toEqual([
      "--config-file", "/etc/oz-agent-worker/config.yaml",
      "--backend", "kubernetes",
      "--log-level", "debug",
      "--web-socket-url", "wss://oz.eu.example.com/api/v1/selfhosted/worker/ws",
      "--server-root-url", "https://oz.eu.example.com",
      "--health-addr", "0.0.0.0:9081",
      "-e", "GIT_AUTHOR_NAME=Oz Agent",
    ]);
    expect(c.resources).toEqual(w.resources as Record<string, unknown>);
    // A probe with its own handler replaces the default httpGet one; the rest is merged.
    expect(c.livenessProbe).toEqual({
      tcpSocket: { port: "health" },
      initialDelaySeconds: 5,
      periodSeconds: 20,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
    expect(c.readinessProbe).toEqual({
      httpGet: { path: "/readyz", port: "health", httpHeaders: [{ name: "X-Probe", value: "readiness" }] },
      periodSeconds: 5,
      timeoutSeconds: 5,
      failureThreshold: 2,
    });
    // The Go chart's order: the API key, worker.extraEnv, then the exporter's.
    expect(c.env.map((e) => e.name)).toEqual([
      "WARP_API_KEY",
      "HTTPS_PROXY",
      "NO_PROXY",
      "OTEL_METRICS_EXPORTER",
      "OTEL_EXPORTER_PROMETHEUS_HOST",
      "OTEL_EXPORTER_PROMETHEUS_PORT",
      "OTEL_METRIC_EXPORT_INTERVAL",
    ]);
    expect(r.env("WARP_API_KEY")?.valueFrom).toEqual({
      secretKeyRef: { name: "oz-worker-prod-api-key", key: "api-key" },
    });
    expect(r.env("NO_PROXY")?.valueFrom).toEqual({ configMapKeyRef: { name: "proxy-settings", key: "no-proxy" } });
  });

  test("the chart-managed Secret holds the key and rolls the pod", () => {
    const secret = r.one<Secret>("Secret");
    expect(secret.metadata.name).toBe("oz-worker-prod-api-key");
    expect(Buffer.from(secret.data["api-key"] ?? "", "base64").toString()).toBe("wk-test-not-a-real-key");
    expect(r.deployment().spec.template.metadata.annotations?.["checksum/secret"]).toMatch(/^[0-9a-f]{64}$/);
  });

  test("the metrics Service and PodMonitor select the worker pod", () => {
    const selector = r.deployment().spec.selector.matchLabels;
    const svc = r.one<Service>("Service");
    // The values' annotations, merged by helm into the default ones.
    expect(svc.metadata.annotations).toEqual({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "9100",
      "prometheus.io/path": "/metrics",
      "example.com/team": "platform",
    });
    expect(svc.metadata.name).toBe("oz-worker-prod-metrics");
    expect(svc.spec.type).toBe("NodePort");
    expect(svc.spec.selector).toEqual(selector);
    expect(svc.spec.ports).toEqual([{ name: "metrics", port: 9100, targetPort: "metrics", protocol: "TCP" }]);
    expect(r.container().ports).toEqual([
      { name: "health", containerPort: 9081, protocol: "TCP" },
      { name: "metrics", containerPort: 9100, protocol: "TCP" },
    ]);
    const pm = r.one<PodMonitor>("PodMonitor");
    expect(pm.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(pm.metadata.labels?.release).toBe("kube-prometheus-stack");
    expect(pm.spec.selector.matchLabels).toEqual(selector);
    expect(pm.spec.namespaceSelector.matchNames).toEqual([NAMESPACE]);
    expect(pm.spec.podMetricsEndpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "15s", scrapeTimeout: "5s" }]);
  });
});

describe("chart: the worker config", () => {
  test("kubernetesBackend.podTemplate with a secretKeyRef env reaches config.yaml unchanged", async () => {
    // The product page's pod_template example.
    const podTemplate = {
      serviceAccountName: "agent-task-sa",
      imagePullSecrets: [{ name: "my-registry-creds" }],
      containers: [
        {
          name: "task",
          resources: { requests: { cpu: "2", memory: "4Gi" }, limits: { memory: "8Gi" } },
          env: [{ name: "GITHUB_TOKEN", valueFrom: { secretKeyRef: { name: "my-k8s-secret", key: "github-token" } } }],
        },
      ],
      tolerations: [{ key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule" }],
      // Integers stay integers (no 1e+06), booleans stay booleans.
      securityContext: { runAsUser: 1000000, runAsNonRoot: true },
      terminationGracePeriodSeconds: 30,
    };
    const file = valuesFile("pod-template", { kubernetesBackend: { podTemplate } });
    const r = await renderSeedInstall("--values", file);
    expect(r.kubernetesConfig().pod_template).toEqual(podTemplate);
    const text = r.one<ConfigMap>("ConfigMap").data["config.yaml"] ?? "";
    expect(text).toContain("runAsUser: 1000000");
    expect(text).not.toContain("e+");
  });

  test("values that turn a worker default off are kept", async () => {
    const r = await renderSeedInstall(
      "--set",
      "kubernetesBackend.unschedulableTimeout=0s",
      "--set",
      "worker.cleanup=false",
      "--set",
      "worker.maxConcurrentTasks=1",
    );
    expect(r.kubernetesConfig().unschedulable_timeout).toBe("0s");
    expect(r.config().cleanup).toBe(false);
    expect(r.config().max_concurrent_tasks).toBe(1);
  });

  test("activeDeadlineSeconds null leaves the key out", async () => {
    const r = await renderSeedInstall("--set", "kubernetesBackend.activeDeadlineSeconds=null");
    expect(r.kubernetesConfig()).not.toHaveProperty("active_deadline_seconds");
  });

  test("a command with YAML-special characters round-trips", async () => {
    const setupCommand = `echo "a: b" # not a comment && printf '%s\\n' '{x}' | tee -a /workspace/log`;
    const file = valuesFile("setup", { kubernetesBackend: { setupCommand } });
    const r = await renderSeedInstall("--values", file);
    expect(r.kubernetesConfig().setup_command).toBe(setupCommand);
  });
});

describe("chart: rollout on config change", () => {
  test("changing a config value changes the checksum; other values do not", async () => {
    const base = (await renderSeedInstall()).checksum();
    const again = (await renderSeedInstall()).checksum();
    const changed = (await renderSeedInstall("--set", "kubernetesBackend.setupCommand=echo hi")).checksum();
    const otherChanged = (await renderSeedInstall("--set", "worker.maxConcurrentTasks=3")).checksum();
    const notConfig = (await renderSeedInstall("--set", "worker.resources.requests.cpu=200m")).checksum();
    expect(again).toBe(base);
    expect(changed).not.toBe(base);
    expect(otherChanged).not.toBe(base);
    expect(otherChanged).not.toBe(changed);
    expect(notConfig).toBe(base);
  });
});

describe("chart: metrics and probe values", () => {
  test("metrics.enabled with the default exporter serves Prometheus on 9464 behind a Service", async () => {
    const r = await renderSeedInstall("--set", "metrics.enabled=true");
    expect(r.env("OTEL_METRICS_EXPORTER")?.value).toBe("prometheus");
    expect(r.env("OTEL_EXPORTER_PROMETHEUS_HOST")?.value).toBe("0.0.0.0");
    expect(r.env("OTEL_EXPORTER_PROMETHEUS_PORT")?.value).toBe("9464");
    expect(r.container().ports).toEqual([
      { name: "health", containerPort: 8081, protocol: "TCP" },
      { name: "metrics", containerPort: 9464, protocol: "TCP" },
    ]);
    const svc = r.one<Service>("Service");
    expect(svc.metadata.annotations).toMatchObject({ "prometheus.io/scrape": "true", "prometheus.io/port": "9464" });
    expect(svc.spec.ports[0]?.port).toBe(9464);
    expect(r.all("PodMonitor")).toEqual([]);
  });

  test("the otlp exporter takes its endpoint from metrics.extraEnv and needs no Service", async () => {
    const file = valuesFile("otlp", {
      metrics: {
        enabled: true,
        exporter: "otlp",
        extraEnv: [{ name: "OTEL_EXPORTER_OTLP_ENDPOINT", value: "http://otel-collector:4318" }],
      },
    });
    const r = await renderSeedInstall("--values", file);
    expect(r.env("OTEL_METRICS_EXPORTER")?.value).toBe("otlp");
    expect(r.env("OTEL_EXPORTER_OTLP_ENDPOINT")?.value).toBe("http://otel-collector:4318");
    expect(r.env("OTEL_EXPORTER_PROMETHEUS_PORT")).toBeUndefined();
    expect(r.all("Service")).toEqual([]);
    expect(r.container().ports).toEqual([{ name: "health", containerPort: 8081, protocol: "TCP" }]);
  });

  test("an env var set in worker.extraEnv replaces the chart's own", async () => {
    const file = valuesFile("extra-env", {
      worker: { extraEnv: [{ name: "OTEL_METRICS_EXPORTER", value: "console" }] },
    });
    const r = await renderSeedInstall("--values", file);
    expect(r.container().env.filter((e) => e.name === "OTEL_METRICS_EXPORTER")).toEqual([
      { name: "OTEL_METRICS_EXPORTER", value: "console" },
    ]);
  });

  test.each(["livenessProbe", "readinessProbe"])("worker.%s=null disables the probe, the other stays", async (name) => {
    const r = await renderSeedInstall("--set", `worker.${name}=null`);
    const c = r.container() as unknown as Record<string, unknown>;
    expect(c[name]).toBeUndefined();
    const other = name === "livenessProbe" ? "readinessProbe" : "livenessProbe";
    expect(c[other]).toMatchObject({ httpGet: { port: "health" } });
  });

  test("an exec probe replaces the default httpGet probe", async () => {
    const file = valuesFile("probe", { worker: { livenessProbe: { exec: { command: ["sh", "-c", "kill -0 1"] } } } });
    const r = await renderSeedInstall("--values", file);
    expect(r.container().livenessProbe).toEqual({
      exec: { command: ["sh", "-c", "kill -0 1"] },
      initialDelaySeconds: 10,
      periodSeconds: 30,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
  });

  test("an httpGet override is merged into the default one", async () => {
    const r = await renderSeedInstall("--set", "worker.readinessProbe.httpGet.port=8081", "--set", "worker.readinessProbe.periodSeconds=3");
    expect(r.container().readinessProbe).toEqual({
      httpGet: { path: "/readyz", port: 8081 },
      periodSeconds: 3,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
  });

  test("worker.healthPort moves the listen address, the container port and so the probes", async () => {
    const r = await renderSeedInstall("--set", "worker.healthPort=9000");
    const c = r.container();
    expect(c.args).toContain("0.0.0.0:9000");
    expect(c.ports).toEqual([{ name: "health", containerPort: 9000, protocol: "TCP" }]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "health" });
  });

  test("worker.healthPort must differ from the Prometheus port", async () => {
    const stderr = await renderFails(...SEED_SET, "--set", "metrics.enabled=true", "--set", "metrics.port=8081");
    expect(stderr).toContain("metrics.port and worker.healthPort are both 8081");
    // Without the Prometheus endpoint the port is free to share.
    await renderSeedInstall("--set", "metrics.port=8081");
  });

  test.each([
    ["worker.healthPort", "0", "/worker/healthPort", "minimum"],
    ["worker.healthPort", "http", "/worker/healthPort", "want integer"],
    ["worker.readinessProbe", "yes", "/worker/readinessProbe", "want null or object"],
  ])("%s=%s fails the schema", async (key, value, at, message) => {
    const stderr = await renderFails(...SEED_SET, "--set", `${key}=${value}`);
    expect(stderr).toContain(`at '${at}'`);
    expect(stderr).toContain(message);
  });
});

describe("chart: drop-in for Go-worker values (test/fixtures/chart/go-defaults.yaml)", () => {
  const REQUIRED = ["--set", "worker.workerId=oz-k8s-worker", "--set", "image.tag=0.1.0"];
  const renderGo = (...extra: string[]) => render("--values", goDefaultsFile, ...REQUIRED, ...extra);

  test("the Go defaults file renders unchanged: the Go chart's names, selector, args, env and probe", async () => {
    const r = await renderGo();
    expect(r.kinds()).toEqual(["ConfigMap", "Deployment", "Role", "RoleBinding", "ServiceAccount"]);
    const d = r.deployment();
    expect(d.spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "oz-agent-worker", "app.kubernetes.io/instance": RELEASE });
    for (const o of r.objects) {
      expect(Object.keys(o.metadata.labels ?? {}).sort()).toEqual([
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/name",
        "app.kubernetes.io/version",
        "helm.sh/chart",
      ]);
    }
    expect(r.one("ConfigMap").metadata.name).toBe(`${RELEASE}-config`);
    const c = r.container();
    expect(c.image).toBe("warpdotdev/oz-agent-worker:0.1.0");
    expect(c.args.slice(0, 10)).toEqual([
      "--config-file", "/etc/oz-agent-worker/config.yaml",
      "--backend", "kubernetes",
      "--log-level", "info",
      "--web-socket-url", "wss://oz.warp.dev/api/v1/selfhosted/worker/ws",
      "--server-root-url", "https://app.warp.dev",
    ]);
    expect(r.env("WARP_API_KEY")?.valueFrom).toEqual({ secretKeyRef: { name: "oz-agent-worker", key: "WARP_API_KEY" } });
    expect(r.env("OTEL_METRICS_EXPORTER")?.value).toBe("none");
    // The Go chart's exec probe replaces our httpGet one (the image has /bin/sh; kill is its builtin).
    expect(c.livenessProbe).toEqual({
      exec: { command: ["/bin/sh", "-c", "kill -0 1"] },
      initialDelaySeconds: 10,
      periodSeconds: 30,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
    expect(r.kubernetesConfig()).toEqual({
      namespace: NAMESPACE,
      image_pull_policy: "IfNotPresent",
      unschedulable_timeout: "30s",
      active_deadline_seconds: 28800,
      ttl_seconds_after_finished: 86400,
    });
  });

  test.each([
    ["release name without the chart name", "team-a", [], "team-a-oz-agent-worker"],
    ["release name containing the chart name", "prod-oz-agent-worker-1", [], "prod-oz-agent-worker-1"],
    ["nameOverride", "team-a", ["--set", "nameOverride=ozw"], "team-a-ozw"],
    ["fullnameOverride wins", "team-a", ["--set", "nameOverride=ozw", "--set", "fullnameOverride=workers"], "workers"],
    ["cut to 63", "r".repeat(50), [], `${"r".repeat(50)}-oz-agent-worker`.slice(0, 63)],
  ])("fullname rule: %s", async (_what, release, extra, fullname) => {
    const r = await renderWith({ release }, "--values", goDefaultsFile, ...REQUIRED, ...extra);
    for (const kind of ["Deployment", "ServiceAccount", "Role", "RoleBinding"]) expect(`${kind} ${r.one(kind).metadata.name}`).toBe(`${kind} ${fullname}`);
    expect(r.one("ConfigMap").metadata.name).toBe(`${fullname}-config`);
    expect(r.deployment().spec.selector.matchLabels["app.kubernetes.io/instance"]).toBe(release);
  });

  test("a chart-created Secret without a name is <fullname>-api-key; with create=false the name is required", async () => {
    const r = await renderWith({ release: "team-a" }, ...REQUIRED, "--set", "warp.apiKeySecret.create=true", "--set", "warp.apiKeySecret.name=", "--set", "warp.apiKeySecret.value=k");
    expect(r.one<Secret>("Secret").metadata.name).toBe("team-a-oz-agent-worker-api-key");
    expect(r.env("WARP_API_KEY")?.valueFrom).toEqual({ secretKeyRef: { name: "team-a-oz-agent-worker-api-key", key: "WARP_API_KEY" } });
    const stderr = await renderFails(...REQUIRED, "--set", "warp.apiKeySecret.name=");
    expect(stderr).toContain("warp.apiKeySecret.name is required when warp.apiKeySecret.create=false");
  });

  test("serviceAccount.create=false: no ServiceAccount; the pod and the RoleBinding use serviceAccount.name as is", async () => {
    const r = await renderGo("--set", "serviceAccount.create=false", "--set", "serviceAccount.name=irsa-worker");
    expect(r.all("ServiceAccount")).toEqual([]);
    expect(r.deployment().spec.template.spec.serviceAccountName).toBe("irsa-worker");
    expect(r.one<RoleBinding>("RoleBinding").subjects).toEqual([{ kind: "ServiceAccount", name: "irsa-worker", namespace: NAMESPACE }]);
    const stderr = await renderFails("--values", goDefaultsFile, ...REQUIRED, "--set", "serviceAccount.create=false");
    expect(stderr).toContain("serviceAccount.name is required when serviceAccount.create=false");
  });

  test("serviceAccount.create with a name and annotations", async () => {
    const r = await renderGo("--set", "serviceAccount.name=wi-worker", "--set", "serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=w@p.iam.gserviceaccount.com");
    const sa = r.one("ServiceAccount");
    expect(sa.metadata.name).toBe("wi-worker");
    expect(sa.metadata.annotations).toEqual({ "iam.gke.io/gcp-service-account": "w@p.iam.gserviceaccount.com" });
    expect(r.deployment().spec.template.spec.serviceAccountName).toBe("wi-worker");
  });

  test("rbac.create=false: no Role and no RoleBinding", async () => {
    const r = await renderGo("--set", "rbac.create=false");
    expect(r.kinds()).toEqual(["ConfigMap", "Deployment", "ServiceAccount"]);
  });

  test("warp.webSocketURL / serverRootURL become the args; empty ones are left out (the worker's defaults)", async () => {
    const r = await renderGo("--set", "warp.webSocketURL=ws://oz.internal:8080/ws", "--set", "warp.serverRootURL=http://oz.internal:8080");
    const args = r.container().args;
    expect(args.slice(args.indexOf("--web-socket-url"), args.indexOf("--web-socket-url") + 4)).toEqual([
      "--web-socket-url", "ws://oz.internal:8080/ws", "--server-root-url", "http://oz.internal:8080",
    ]);
    const empty = (await renderGo("--set", "warp.webSocketURL=", "--set", "warp.serverRootURL=", "--set", "worker.logLevel=")).container().args;
    expect(empty).not.toContain("--web-socket-url");
    expect(empty).not.toContain("--server-root-url");
    expect(empty).not.toContain("--log-level");
  });

  test("worker.extraArgs come last, after the chart's own", async () => {
    const file = valuesFile("extra-args", { worker: { extraArgs: ["--max-concurrent-tasks", "3", "-e", "A=1 2"] } });
    const args = (await renderGo("--values", file)).container().args;
    expect(args.slice(-4)).toEqual(["--max-concurrent-tasks", "3", "-e", "A=1 2"]);
  });

  test("kubernetesBackend: empty and null values are left out; ttl only with cleanup; 0 deadline disables", async () => {
    const off = await renderGo("--set", "kubernetesBackend.activeDeadlineSeconds=null", "--set", "kubernetesBackend.ttlSecondsAfterFinished=null");
    expect(off.kubernetesConfig()).not.toHaveProperty("active_deadline_seconds");
    expect(off.kubernetesConfig()).not.toHaveProperty("ttl_seconds_after_finished");
    const zero = await renderGo("--set", "kubernetesBackend.activeDeadlineSeconds=0", "--set", "kubernetesBackend.ttlSecondsAfterFinished=0");
    expect(zero.kubernetesConfig()).not.toHaveProperty("active_deadline_seconds");
    expect(zero.kubernetesConfig().ttl_seconds_after_finished).toBe(0);
    const noCleanup = await renderGo("--set", "worker.cleanup=false", "--set", "kubernetesBackend.ttlSecondsAfterFinished=600");
    expect(noCleanup.kubernetesConfig()).not.toHaveProperty("ttl_seconds_after_finished");
    const set = await renderGo("--set", "kubernetesBackend.ttlSecondsAfterFinished=600", "--set", "kubernetesBackend.useImageVolumes=true", "--set", "kubernetesBackend.sidecarImage=mirror/agent:1", "--set", "kubernetesBackend.preflightImage=mirror/busybox:1.36", "--set", "kubernetesBackend.preflightResources.limits.memory=32Mi");
    expect(set.kubernetesConfig()).toMatchObject({
      ttl_seconds_after_finished: 600,
      use_image_volumes: true,
      sidecar_image: "mirror/agent:1",
      preflight_image: "mirror/busybox:1.36",
      preflight_resources: { limits: { memory: "32Mi" } },
    });
  });

  test("metrics.service.create=false: no Service; service.type and annotations as given", async () => {
    const none = await renderGo("--set", "metrics.enabled=true", "--set", "metrics.service.create=false");
    expect(none.all("Service")).toEqual([]);
    expect(none.env("OTEL_EXPORTER_PROMETHEUS_PORT")?.value).toBe("9464");
    const lb = await renderGo("--set", "metrics.enabled=true", "--set", "metrics.service.type=LoadBalancer", "--set", "metrics.service.annotations=null");
    const svc = lb.one<Service>("Service");
    expect(svc.spec.type).toBe("LoadBalancer");
    expect(svc.metadata.annotations).toBeUndefined();
  });

  test("the Go chart's PodMonitor options", async () => {
    const r = await renderGo(
      "--set", "metrics.enabled=true", "--set", "metrics.podMonitor.create=true",
      "--set", "metrics.podMonitor.interval=1m", "--set", "metrics.podMonitor.scrapeTimeout=20s",
      "--set", "metrics.podMonitor.additionalLabels.release=prom",
    );
    const pm = r.one<PodMonitor>("PodMonitor");
    expect(pm.metadata.labels?.release).toBe("prom");
    expect(pm.spec.podMetricsEndpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "1m", scrapeTimeout: "20s" }]);
  });

  test("the Go chart's env order with metrics on: API key, worker.extraEnv, exporter, metrics.extraEnv", async () => {
    const file = valuesFile("go-env", {
      worker: { extraEnv: [{ name: "HTTPS_PROXY", value: "http://proxy:3128" }] },
      metrics: { enabled: true, extraEnv: [{ name: "OTEL_METRIC_EXPORT_INTERVAL", value: "15000" }] },
    });
    const r = await renderGo("--values", file);
    expect(r.container().env.map((e) => e.name)).toEqual([
      "WARP_API_KEY",
      "HTTPS_PROXY",
      "OTEL_METRICS_EXPORTER",
      "OTEL_EXPORTER_PROMETHEUS_HOST",
      "OTEL_EXPORTER_PROMETHEUS_PORT",
      "OTEL_METRIC_EXPORT_INTERVAL",
    ]);
  });

  test("the old imagePullSecrets value fails naming its new place", async () => {
    const file = valuesFile("old-pull-secrets", { imagePullSecrets: [{ name: "creds" }] });
    const stderr = await renderFails(...REQUIRED, "--values", file);
    expect(stderr).toContain("imagePullSecrets is now image.pullSecrets");
  });

  test.each([
    ["worker.extraArg", "x", "additional properties 'extraArg' not allowed"],
    ["serviceAccount.nmae", "x", "additional properties 'nmae' not allowed"],
    ["rbac.crate", "false", "additional properties 'crate' not allowed"],
    ["metrics.podMonitor.labels.release", "x", "additional properties 'labels' not allowed"],
    ["worker.terminationGracePeriodSeconds", "30s", "want integer"],
    ["metrics.service.type", "Headless", "value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'"],
    ["warp.webSocketURL", "https://oz.warp.dev/ws", "pattern"],
    ["kubernetesBackend.sidecarImage", "a b", "pattern"],
  ])("%s=%s fails the schema", async (key, value, message) => {
    const stderr = await renderFails(...REQUIRED, "--set", `${key}=${value}`);
    expect(stderr).toContain("values don't meet the specifications of the schema");
    expect(stderr).toContain(message);
  });
});
