// Rendering charts/oz-agent-worker with scripts/helm (helm v3.22.0 built from
// the Go module proxy on first use, then cached), parsed into typed objects.
// Shared by the offline chart tests (test/e2e/chart.test.ts), the sandbox
// tests of the rendered sets (test/e2e/chart-sandbox.test.ts) and the binary
// tests (test/e2e/binary.test.ts).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse, parseAllDocuments, stringify } from "yaml";

export const repoRoot = path.resolve(import.meta.dir, "../..");
export const chartDir = path.join(repoRoot, "charts/oz-agent-worker");
export const helmScript = path.join(repoRoot, "scripts/helm");
export const allValuesFile = path.join(repoRoot, "test/fixtures/chart/all-values.yaml");
/** Every value of the Go worker's chart at its Go default (required ones empty). */
export const goDefaultsFile = path.join(repoRoot, "test/fixtures/chart/go-defaults.yaml");

/** The minimal stand-in for the Go worker's chart (a Go-worker release to upgrade from). */
export const goChartDir = path.join(repoRoot, "test/fixtures/go-chart/oz-agent-worker");

/** The product page's install command: release, namespace and `--set`s. */
export const RELEASE = "oz-agent-worker";
export const NAMESPACE = "warp-oz";
export const SEED_SET = ["--set", "worker.workerId=oz-k8s-worker", "--set", "image.tag=0.1.0"];

/** The helm release scripts/helm builds. */
export const HELM_VERSION = "v3.22.0";

// ---------------------------------------------------------------------------
// helm

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

let home: string | undefined;

/**
 * A temp directory for this test process: helm's isolated home (no user repos
 * or plugins) and values files written by tests. Removed when the process exits.
 */
export function helmTempDir(): string {
  if (home === undefined) {
    const dir = mkdtempSync(path.join(tmpdir(), "oz-chart-test-"));
    home = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return home;
}

/** Runs scripts/helm with an isolated helm home. */
export async function helm(...args: string[]): Promise<HelmResult> {
  const dir = helmTempDir();
  const proc = Bun.spawn([helmScript, ...args], {
    cwd: repoRoot,
    env: {
      ...process.env,
      HELM_CACHE_HOME: path.join(dir, "cache"),
      HELM_CONFIG_HOME: path.join(dir, "config"),
      HELM_DATA_HOME: path.join(dir, "data"),
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

let ready: Promise<void> | undefined;

/**
 * Makes sure scripts/helm runs and is the expected release. The first run in a
 * fresh cache builds helm from the Go module proxy (minutes): give the calling
 * hook a long timeout. Shared by every caller in the process.
 */
export function ensureHelm(): Promise<void> {
  ready ??= (async () => {
    const res = await helm("version", "--short");
    if (res.code !== 0) throw new Error(`scripts/helm does not run:\n${res.stderr}`);
    if (!res.stdout.includes(HELM_VERSION)) throw new Error(`scripts/helm is not ${HELM_VERSION}: ${res.stdout}`);
  })();
  return ready;
}

/** Writes a values file (in helmTempDir()) and returns its path. */
export function valuesFile(name: string, values: unknown): string {
  const file = path.join(helmTempDir(), `${name}.yaml`);
  writeFileSync(file, stringify(values));
  return file;
}

// ---------------------------------------------------------------------------
// Rendered objects

export interface Metadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  args: string[];
  env: EnvVar[];
  ports?: { name: string; containerPort: number; protocol: string }[];
  livenessProbe?: Record<string, unknown>;
  readinessProbe?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface Deployment extends K8sObject {
  spec: {
    replicas: number;
    strategy: { type: string };
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: Metadata;
      spec: {
        serviceAccountName: string;
        terminationGracePeriodSeconds?: number;
        imagePullSecrets?: { name: string }[];
        securityContext: Record<string, unknown>;
        containers: Container[];
        volumes: Record<string, unknown>[];
        nodeSelector?: Record<string, string>;
        tolerations?: Record<string, unknown>[];
        affinity?: Record<string, unknown>;
      };
    };
  };
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface Role extends K8sObject {
  rules: PolicyRule[];
}

export interface RoleBinding extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { kind: string; name: string; namespace: string }[];
}

export interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}

export interface Secret extends K8sObject {
  type: string;
  data: Record<string, string>;
}

export interface Service extends K8sObject {
  spec: {
    type: string;
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort: string | number; protocol: string }[];
  };
}

export interface PodMonitor extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    namespaceSelector: { matchNames: string[] };
    podMetricsEndpoints: { port: string; path: string; interval?: string; scrapeTimeout?: string }[];
  };
}

/** The objects one `helm template` rendered, in helm's order. */
export class Rendered {
  readonly objects: K8sObject[];
  /** helm's output as is. */
  readonly manifest: string;
  constructor(
    objects: K8sObject[],
    manifest = "",
  ) {
    this.objects = objects;
    this.manifest = manifest;
  }

  kinds(): string[] {
    return this.objects.map((o) => o.kind).sort();
  }

  all(kind: string): K8sObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  one<T extends K8sObject>(kind: string): T {
    const found = this.all(kind);
    if (found.length !== 1) throw new Error(`expected one ${kind}, rendered ${found.length}`);
    return found[0] as T;
  }

  deployment(): Deployment {
    return this.one<Deployment>("Deployment");
  }

  container(): Container {
    const containers = this.deployment().spec.template.spec.containers;
    if (containers.length !== 1) throw new Error(`expected one container, rendered ${containers.length}`);
    return containers[0] as Container;
  }

  env(name: string): EnvVar | undefined {
    return this.container().env.find((e) => e.name === name);
  }

  /** The worker config file as rendered (the ConfigMap's config.yaml). */
  configText(): string {
    const text = this.one<ConfigMap>("ConfigMap").data["config.yaml"];
    if (text === undefined) throw new Error("ConfigMap has no config.yaml");
    return text;
  }

  /** The worker config file, parsed. */
  config(): Record<string, unknown> {
    return parse(this.configText()) as Record<string, unknown>;
  }

  kubernetesConfig(): Record<string, unknown> {
    return (this.config().backend as { kubernetes: Record<string, unknown> }).kubernetes;
  }

  checksum(): string | undefined {
    return this.deployment().spec.template.metadata.annotations?.["checksum/config"];
  }
}

export interface RenderOptions {
  release?: string;
  /** `--namespace` (the release namespace); NAMESPACE by default. */
  namespace?: string;
}

/** Parses a multi-document manifest; empty documents are skipped. */
export function parseManifest(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message}`);
    const obj = doc.toJS() as K8sObject | null;
    if (obj) objects.push(obj);
  }
  return objects;
}

function templateArgs(opts: RenderOptions, args: string[]): string[] {
  return ["template", opts.release ?? RELEASE, chartDir, "--namespace", opts.namespace ?? NAMESPACE, ...args];
}

/** `helm template` with release and namespace options; throws with helm's stderr if rendering fails. */
export async function renderWith(opts: RenderOptions, ...args: string[]): Promise<Rendered> {
  const res = await helm(...templateArgs(opts, args));
  if (res.code !== 0) throw new Error(`helm template ${args.join(" ")} failed:\n${res.stderr}`);
  return new Rendered(parseManifest(res.stdout), res.stdout);
}

/** `helm template oz-agent-worker charts/oz-agent-worker --namespace warp-oz ARGS`. */
export const render = (...args: string[]): Promise<Rendered> => renderWith({}, ...args);

/** `helm template` that must fail; returns helm's stderr (throws if it rendered). */
export async function renderFails(...args: string[]): Promise<string> {
  const res = await helm(...templateArgs({}, args));
  if (res.code === 0) throw new Error(`helm template ${args.join(" ")} rendered, but it was expected to fail`);
  return res.stderr;
}

/** The product page's install command, plus `extra`. */
export const renderSeedInstall = (...extra: string[]): Promise<Rendered> => render(...SEED_SET, ...extra);
/** The all-values fixture, plus `extra`. */
export const renderAllValues = (...extra: string[]): Promise<Rendered> => render("--values", allValuesFile, ...extra);

// ---------------------------------------------------------------------------
// Releases on a cluster: a Go-worker release, upgraded to charts/oz-agent-worker

export interface GoReleaseOptions {
  release: string;
  namespace: string;
  /** The cluster's (admin) kubeconfig. */
  kubeconfig: string;
  /** The user's values, for both charts alike: `--values FILE` and `--set K=V` arguments. */
  values: string[];
  /**
   * Arguments for the upgrade only: what a user changes when switching, the image
   * (`--set image.repository=... --set image.tag=...`), and on a real node whatever
   * else it needs (scheduling, pull policy). The upgrade does not wait when one is
   * wanted here: pass `--wait` yourself.
   */
  upgrade?: string[];
}

/** `helm install` of the Go-worker stand-in chart, waiting for its Deployment; throws with helm's output on failure. */
export async function installGoRelease(opts: GoReleaseOptions): Promise<HelmResult> {
  const res = await helm("install", opts.release, goChartDir, "--namespace", opts.namespace, "--kubeconfig", opts.kubeconfig, "--wait", "--timeout", "2m", ...opts.values);
  if (res.code !== 0) throw new Error(`helm install of the Go-worker stand-in failed:\n${res.stdout}${res.stderr}`);
  return res;
}

/** `helm upgrade` of that release to charts/oz-agent-worker with the same values, then `upgrade`; returns helm's result as is. */
export function upgradeToChart(opts: GoReleaseOptions): Promise<HelmResult> {
  return helm("upgrade", opts.release, chartDir, "--namespace", opts.namespace, "--kubeconfig", opts.kubeconfig, ...opts.values, ...(opts.upgrade ?? []));
}
