import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ConfigError,
  type ConfigFlags,
  type ConfigIssue,
  formatConfigIssue,
  loadConfig,
  parseEnvFlag,
  resolveConfig,
} from "../../../src/config/load.ts";
import type { WorkerConfig } from "../../../src/core/types.ts";

const FIXTURES = join(import.meta.dir, "../../fixtures/config");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");

/** Resolves and expects success. */
function ok(text: string | undefined, flags: ConfigFlags = {}, env: Record<string, string> = {}): WorkerConfig {
  const r = resolveConfig({ text, file: "config.yaml", flags, env });
  if (!r.ok) throw new Error(`expected a valid config, got:\n${r.issues.map(formatConfigIssue).join("\n")}`);
  return r.config;
}

/** Resolves and expects failure; returns the issues formatted as printed. */
function errors(text: string | undefined, flags: ConfigFlags = {}, env: Record<string, string> = {}): string[] {
  const r = resolveConfig({ text, file: "config.yaml", flags, env });
  if (r.ok) throw new Error("expected config errors, got a valid config");
  return r.issues.map(formatConfigIssue);
}

const WORKER = "worker_id: w\n";

describe("defaults", () => {
  test("only a worker id: every default, resolved", () => {
    expect(ok(undefined, { workerId: "w" })).toEqual({
      workerId: "w",
      cleanup: true,
      maxConcurrentTasks: 0,
      webSocketUrl: "wss://oz.warp.dev/api/v1/selfhosted/worker/ws",
      serverRootUrl: "https://app.warp.dev",
      logLevel: "info",
      env: [],
      kubernetes: {
        namespace: "default",
        imagePullPolicy: "IfNotPresent",
        useImageVolumes: false,
        preflightImage: "busybox:1.36",
        preflightResources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "100m", memory: "64Mi" } },
        codingCliSidecars: {},
        extraLabels: {},
        extraAnnotations: {},
        ttlSecondsAfterFinished: 86_400,
        unschedulableTimeoutMs: 30_000,
        inlineTaskEnv: false,
      },
    });
  });

  test("an empty file, a file of comments, and empty mappings are all defaults", () => {
    const base = ok(undefined, { workerId: "w" });
    expect(ok("", { workerId: "w" })).toEqual(base);
    expect(ok("# nothing here\n", { workerId: "w" })).toEqual(base);
    expect(ok("backend:\n", { workerId: "w" })).toEqual(base);
    expect(ok("backend:\n  kubernetes:\n", { workerId: "w" })).toEqual(base);
    expect(ok("backend: {kubernetes: {}}\n", { workerId: "w" })).toEqual(base);
  });

  test("every key of the file maps onto WorkerConfig", () => {
    const c = ok(fixture("full.yaml"));
    expect(c.workerId).toBe("full-worker");
    expect(c.maxConcurrentTasks).toBe(4);
    expect(c.idleOnComplete).toBe("10m");
    const k = c.kubernetes;
    expect(k).toMatchObject({
      kubeconfig: "/etc/kube/config",
      namespace: "oz-tasks",
      defaultImage: "ghcr.io/example/dev:1",
      imagePullPolicy: "Always",
      useImageVolumes: true,
      preflightImage: "registry.example.com/busybox:1.36",
      preflightResources: { requests: { cpu: "20m", memory: "32Mi" }, limits: { cpu: "200m", memory: "128Mi" } },
      sidecarImage: "registry.example.com/agent:stable",
      codingCliSidecars: { claude: "registry.example.com/claude-cli:1" },
      setupCommand: "./bootstrap.sh",
      teardownCommand: "./report.sh",
      extraLabels: { team: "agents" },
      extraAnnotations: { "example.com/owner": "platform" },
      activeDeadlineSeconds: 3600,
      ttlSecondsAfterFinished: 600,
      workspaceSizeLimit: "20Gi",
      unschedulableTimeoutMs: 120_000,
      inlineTaskEnv: true,
    });
    // Quantities written as numbers become strings, as the API types want.
    expect(k.podTemplate?.containers?.[0]?.resources).toEqual({
      requests: { cpu: "2", memory: "4Gi" },
      limits: { memory: "8Gi", cpu: "2.5" },
    });
    expect(k.podTemplate?.initContainers?.[0]?.restartPolicy).toBe("Always");
    expect(k.podTemplate?.serviceAccountName).toBe("agent-task-sa");
  });

  test("unschedulable_timeout 0s turns the fail-fast off", () => {
    expect(ok(`${WORKER}backend:\n  kubernetes:\n    unschedulable_timeout: 0s\n`).kubernetes.unschedulableTimeoutMs).toBe(0);
  });
});

describe("precedence: flags > file > defaults", () => {
  const FILE = `worker_id: from-file
cleanup: true
max_concurrent_tasks: 4
idle_on_complete: 10m
backend:
  kubernetes:
    ttl_seconds_after_finished: 600
`;

  test("the file beats the defaults", () => {
    const c = ok(FILE);
    expect([c.workerId, c.cleanup, c.maxConcurrentTasks, c.idleOnComplete]).toEqual(["from-file", true, 4, "10m"]);
    expect(c.kubernetes.ttlSecondsAfterFinished).toBe(600);
  });

  test("flags beat the file", () => {
    const c = ok(FILE, { workerId: "from-flag", noCleanup: true, maxConcurrentTasks: "8", idleOnComplete: "1h" });
    expect([c.workerId, c.cleanup, c.maxConcurrentTasks, c.idleOnComplete]).toEqual(["from-flag", false, 8, "1h"]);
  });

  test("a flag of 0 still beats the file", () => {
    expect(ok(FILE, { maxConcurrentTasks: "0" }).maxConcurrentTasks).toBe(0);
  });

  test("flags alone, no file", () => {
    const c = ok(undefined, {
      workerId: "w",
      logLevel: "debug",
      webSocketUrl: "ws://127.0.0.1:8787/ws",
      serverRootUrl: "http://127.0.0.1:8787",
    });
    expect([c.logLevel, c.webSocketUrl, c.serverRootUrl]).toEqual(["debug", "ws://127.0.0.1:8787/ws", "http://127.0.0.1:8787"]);
  });

  test("--api-key beats WARP_API_KEY, which is used otherwise", () => {
    expect(ok(WORKER, { apiKey: "flag-key" }, { WARP_API_KEY: "env-key" }).apiKey).toBe("flag-key");
    expect(ok(WORKER, {}, { WARP_API_KEY: "env-key" }).apiKey).toBe("env-key");
    expect(ok(WORKER, {}, {}).apiKey).toBeUndefined();
  });

  test("an API key is required only when asked for", () => {
    const r = resolveConfig({ text: WORKER, file: "config.yaml", env: {}, requireApiKey: true });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues).toEqual([{ path: "--api-key", message: "required: pass --api-key or set the WARP_API_KEY environment variable" }]);
    expect(resolveConfig({ text: WORKER, env: { WARP_API_KEY: "k" }, requireApiKey: true }).ok).toBe(true);
  });
});

describe("cleanup and the TTL of finished Jobs", () => {
  const ttl = (text: string, flags: ConfigFlags = {}) => ok(`${WORKER}${text}`, flags).kubernetes.ttlSecondsAfterFinished;
  test("cleanup on: 86400 unless set", () => {
    expect(ttl("")).toBe(86_400);
    expect(ttl("backend:\n  kubernetes:\n    ttl_seconds_after_finished: 600\n")).toBe(600);
    expect(ttl("backend:\n  kubernetes:\n    ttl_seconds_after_finished: 0\n")).toBe(0);
  });
  test("cleanup off (file or --no-cleanup): no TTL, even when one is set", () => {
    expect(ttl("cleanup: false\n")).toBeUndefined();
    expect(ttl("cleanup: false\nbackend:\n  kubernetes:\n    ttl_seconds_after_finished: 600\n")).toBeUndefined();
    expect(ttl("backend:\n  kubernetes:\n    ttl_seconds_after_finished: 600\n", { noCleanup: true })).toBeUndefined();
  });
});

describe("-e / --env", () => {
  const host = { HOME: "/home/oz", EMPTY: "" };
  test.each([
    ["KEY=VALUE", "KEY", "VALUE"],
    ["KEY=", "KEY", ""],
    ["KEY=a=b", "KEY", "a=b"],
    ["KEY= spaced value ", "KEY", " spaced value "],
    ["HOME", "HOME", "/home/oz"],
    ["EMPTY", "EMPTY", ""],
    ["NOT_ON_HOST", "NOT_ON_HOST", ""],
  ])("%p", (entry, name, value) => {
    expect(parseEnvFlag(entry, host)).toEqual({ ok: true, name, value });
  });

  test.each([
    ["", 'expected KEY=VALUE or KEY; got ""'],
    ["=value", 'expected KEY=VALUE or KEY; got "=value" (the key is empty)'],
    ["MY KEY=v", 'expected KEY=VALUE or KEY; got "MY KEY=v" (the key contains whitespace)'],
    ["\tKEY", 'expected KEY=VALUE or KEY; got "\\tKEY" (the key contains whitespace)'],
  ])("rejects %p", (entry, message) => {
    expect(parseEnvFlag(entry, host)).toEqual({ ok: false, message });
  });

  test("overrides keep their order; a later one for the same key wins", () => {
    expect(ok(WORKER, { env: ["A=1", "HOME", "B=2", "A=3"] }, host).env).toEqual([
      { name: "A", value: "3" },
      { name: "HOME", value: "/home/oz" },
      { name: "B", value: "2" },
    ]);
  });

  test("every bad -e is reported, naming the flag", () => {
    expect(errors(WORKER, { env: ["=x", "OK=1", "A B"] })).toEqual([
      '--env: expected KEY=VALUE or KEY; got "=x" (the key is empty)',
      '--env: expected KEY=VALUE or KEY; got "A B" (the key contains whitespace)',
    ]);
  });
});

describe("worker id", () => {
  test("required in the file or as a flag", () => {
    expect(errors("cleanup: true\n")).toEqual(["config.yaml: worker_id: required: set worker_id in the config file or pass --worker-id"]);
    expect(ok("cleanup: true\n", { workerId: "w" }).workerId).toBe("w");
  });

  test("ids beginning with warp are reserved, in the file or as a flag", () => {
    expect(errors("worker_id: warp-runner\n")).toEqual([
      'config.yaml:1:12 worker_id: worker ids beginning with "warp" are reserved by Warp; got "warp-runner"',
    ]);
    expect(errors(undefined, { workerId: "Warp1" })).toEqual(['--worker-id: worker ids beginning with "warp" are reserved by Warp; got "Warp1"']);
    expect(ok("worker_id: my-warp-runner\n").workerId).toBe("my-warp-runner");
  });

  test("a reserved id in the file does not matter when the flag overrides it", () => {
    expect(ok("worker_id: warp\n", { workerId: "mine" }).workerId).toBe("mine");
  });
});

describe("every kind of error, with its exact position", () => {
  test("the issue's example: a wrong enum at 7:24", () => {
    const text = `worker_id: w
cleanup: true
max_concurrent_tasks: 1
backend:
  kubernetes:
    namespace: agents
    image_pull_policy: always
`;
    expect(errors(text)).toEqual([
      'config.yaml:7:24 backend.kubernetes.image_pull_policy: expected one of Always, Never, IfNotPresent; got "always"',
    ]);
  });

  test("three mistakes give three errors in one run, in file order", () => {
    expect(errors(fixture("three-mistakes.yaml"))).toEqual([
      'config.yaml:6:28 backend.kubernetes.unschedulable_timeout: expected a duration such as 30s, 2m or 1h30m (units ns, us, ms, s, m, h); got "30 seconds"',
      'config.yaml:7:24 backend.kubernetes.image_pull_policy: expected one of Always, Never, IfNotPresent; got "always"',
      'config.yaml:8:5 backend.kubernetes.namspace: unknown key "namspace" (did you mean "namespace"?)',
    ]);
  });

  test("the structured issue carries file, line, column and path", () => {
    const r = resolveConfig({ text: fixture("three-mistakes.yaml"), file: "three.yaml" });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues[2]).toEqual({
        file: "three.yaml",
        line: 8,
        column: 5,
        path: "backend.kubernetes.namspace",
        message: 'unknown key "namspace" (did you mean "namespace"?)',
      } satisfies ConfigIssue);
    }
  });

  test("every unknown key of a mapping is reported, not only the first", () => {
    expect(errors(`${WORKER}clean_up: false\nmax_tasks: 2\nfoo: 1\n`)).toEqual([
      'config.yaml:2:1 clean_up: unknown key "clean_up" (did you mean "cleanup"?)',
      'config.yaml:3:1 max_tasks: unknown key "max_tasks"',
      'config.yaml:4:1 foo: unknown key "foo"',
    ]);
  });

  test("a camelCase spelling of a config key suggests the snake_case one", () => {
    expect(errors(`${WORKER}backend:\n  kubernetes:\n    imagePullPolicy: Always\n`)).toEqual([
      'config.yaml:4:5 backend.kubernetes.imagePullPolicy: unknown key "imagePullPolicy" (did you mean "image_pull_policy"?)',
    ]);
  });

  test("wrong types and out-of-range numbers", () => {
    expect(
      errors(`${WORKER}cleanup: maybe\nmax_concurrent_tasks: four\nbackend:
  kubernetes:
    active_deadline_seconds: 0
    ttl_seconds_after_finished: -1
    extra_labels: [a, b]
    use_image_volumes: 1
`),
    ).toEqual([
      'config.yaml:2:10 cleanup: expected true or false; got "maybe"',
      'config.yaml:3:23 max_concurrent_tasks: expected a number; got "four"',
      "config.yaml:6:30 backend.kubernetes.active_deadline_seconds: expected a positive integer; got 0",
      "config.yaml:7:33 backend.kubernetes.ttl_seconds_after_finished: expected an integer >= 0; got -1",
      "config.yaml:8:19 backend.kubernetes.extra_labels: expected a mapping; got a list",
      "config.yaml:9:24 backend.kubernetes.use_image_volumes: expected true or false; got 1",
    ]);
  });

  test("durations: bad grammar and negative values", () => {
    expect(errors(`${WORKER}idle_on_complete: 45\nbackend:\n  kubernetes:\n    unschedulable_timeout: -5s\n`)).toEqual([
      'config.yaml:2:19 idle_on_complete: expected a duration such as 30s, 2m or 1h30m (units ns, us, ms, s, m, h); got "45"',
      'config.yaml:5:28 backend.kubernetes.unschedulable_timeout: expected a duration that is not negative; got "-5s"',
    ]);
  });

  test("image references without whitespace; quantity for the workspace size", () => {
    expect(errors(`${WORKER}backend:\n  kubernetes:\n    default_image: "ubuntu 22.04"\n    workspace_size_limit: 20 GB\n`)).toEqual([
      'config.yaml:4:20 backend.kubernetes.default_image: expected an image reference without whitespace; got "ubuntu 22.04"',
      'config.yaml:5:27 backend.kubernetes.workspace_size_limit: expected a Kubernetes quantity such as 2, 500m, 4Gi or 1e3; got "20 GB"',
    ]);
  });

  test("at most one backend, and only kubernetes", () => {
    expect(errors(`${WORKER}backend:\n  docker:\n    volumes: []\n  kubernetes: {}\n`)).toEqual([
      "config.yaml:3:3 backend.docker: oz-worker runs tasks only as Kubernetes Jobs; the docker backend is not supported (configure backend.kubernetes instead; at most one backend may be configured)",
    ]);
    expect(errors(`${WORKER}backend:\n  kubernets: {}\n`)).toEqual([
      'config.yaml:3:3 backend.kubernets: unknown key "kubernets" (did you mean "kubernetes"?)',
    ]);
  });

  test("YAML syntax errors have positions", () => {
    expect(errors("worker_id: w\nworker_id: x\n")).toEqual(["config.yaml:2:1: invalid YAML: Map keys must be unique"]);
    expect(errors("worker_id: [w\n")).toEqual([
      "config.yaml:2:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ]);
    expect(errors("backend:\n\tkubernetes: {}\n")[0]).toStartWith("config.yaml:2:1: invalid YAML: Tabs are not allowed");
  });

  test("repeated keys are found at any depth, in block and flow mappings, where the yaml library would report them", () => {
    const labels = Array.from({ length: 2000 }, (_, i) => `      k${i}: v`);
    labels.splice(1500, 0, "      k7: again");
    expect(errors(`${WORKER}backend:\n  kubernetes:\n    namespace: a\n    extra_labels:\n${labels.join("\n")}\n`)).toEqual([
      "config.yaml:1506:7: invalid YAML: Map keys must be unique",
    ]);
    expect(errors(`${WORKER}backend: { kubernetes: { namespace: a, namespace: b } }\n`)).toEqual(["config.yaml:2:40: invalid YAML: Map keys must be unique"]);
    // Different scalar types are different keys, as in the library; a mapping inside a list is checked too.
    expect(errors(`${WORKER}env: [{ a: 1, a: 2 }]\nbackend: { kubernetes: { namespace: a, extra_labels: { 1: x, "1": y } } }\n`)).toEqual([
      "config.yaml:2:15: invalid YAML: Map keys must be unique",
    ]);
  });

  test("syntax errors and flag errors are reported together", () => {
    expect(errors("a: [\n", { logLevel: "loud" })).toEqual([
      "config.yaml:2:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
      '--log-level: expected one of debug, info, warn, error; got "loud"',
    ]);
  });

  test("the top level must be a mapping", () => {
    expect(errors("- worker_id: w\n")).toEqual(["config.yaml:1:1: expected a mapping of config keys at the top level; got a list"]);
    expect(errors("just text\n")).toEqual(['config.yaml:1:1: expected a mapping of config keys at the top level; got "just text"']);
  });
});

describe("pod_template is checked as a PodSpec", () => {
  const tpl = (body: string) => `${WORKER}backend:\n  kubernetes:\n    pod_template:\n${body}`;

  test("an unknown field, with the closest known one", () => {
    expect(
      errors(
        tpl(`      serviceAccount_name: sa
      containers:
        - name: task
          image_pull_policy: Always
          resources:
            limit: { cpu: "1" }
`),
      ),
    ).toEqual([
      'config.yaml:5:7 backend.kubernetes.pod_template.serviceAccount_name: unknown key "serviceAccount_name" (did you mean "serviceAccountName"?)',
      'config.yaml:8:11 backend.kubernetes.pod_template.containers[0].image_pull_policy: unknown key "image_pull_policy" (did you mean "imagePullPolicy"?)',
      'config.yaml:10:13 backend.kubernetes.pod_template.containers[0].resources.limit: unknown key "limit" (did you mean "limits"?)',
    ]);
  });

  test("a bad quantity", () => {
    expect(
      errors(
        tpl(`      containers:
        - name: task
          resources:
            requests: { cpu: lots, memory: 4Gi }
            limits: { memory: "-1Gi" }
`),
      ),
    ).toEqual([
      'config.yaml:8:30 backend.kubernetes.pod_template.containers[0].resources.requests.cpu: expected a Kubernetes quantity such as 2, 500m, 4Gi or 1e3; got "lots"',
      'config.yaml:9:31 backend.kubernetes.pod_template.containers[0].resources.limits.memory: expected a Kubernetes quantity such as 2, 500m, 4Gi or 1e3; got "-1Gi"',
    ]);
  });

  test("enums: pull policy, pod restart policy, init container restart policy", () => {
    expect(
      errors(
        tpl(`      restartPolicy: Sometimes
      initContainers:
        - name: proxy
          image: envoy
          restartPolicy: OnFailure
      containers:
        - name: task
          imagePullPolicy: IfNotThere
`),
      ),
    ).toEqual([
      'config.yaml:5:22 backend.kubernetes.pod_template.restartPolicy: expected one of Always, OnFailure, Never; got "Sometimes"',
      'config.yaml:9:26 backend.kubernetes.pod_template.initContainers[0].restartPolicy: expected one of Always; got "OnFailure"',
      'config.yaml:12:28 backend.kubernetes.pod_template.containers[0].imagePullPolicy: expected one of Always, Never, IfNotPresent; got "IfNotThere"',
    ]);
  });

  test("string fields need strings, as the API server reads them", () => {
    expect(errors(tpl("      containers:\n        - name: task\n          env:\n            - { name: N, value: 1 }\n"))).toEqual([
      "config.yaml:8:33 backend.kubernetes.pod_template.containers[0].env[0].value: expected a string; got 1 (quote it to make it a string)",
    ]);
  });

  test("a missing required field points at its object", () => {
    expect(errors(tpl("      containers:\n        - image: busybox\n"))).toEqual([
      'config.yaml:6:11 backend.kubernetes.pod_template.containers[0].name: missing required key "name"',
    ]);
  });

  test("volumes: exactly one source; workspace is the worker's", () => {
    expect(
      errors(
        tpl(`      volumes:
        - name: none
        - name: two
          emptyDir: {}
          secret: { secretName: s }
        - name: workspace
          emptyDir: {}
`),
      ),
    ).toEqual([
      "config.yaml:6:11 backend.kubernetes.pod_template.volumes[0]: expected exactly one volume source (emptyDir, configMap, secret, persistentVolumeClaim, ...); got none",
      "config.yaml:7:11 backend.kubernetes.pod_template.volumes[1]: expected exactly one volume source; got 2 (emptyDir, secret)",
      'config.yaml:10:11 backend.kubernetes.pod_template.volumes[2]: volume name "workspace" is reserved: oz-worker mounts its own workspace volume at /workspace',
    ]);
  });

  test("containers other than task need an image; names are unique", () => {
    expect(errors(tpl("      containers:\n        - name: task\n        - name: helper\n"))).toEqual([
      'config.yaml:7:11 backend.kubernetes.pod_template.containers[1]: container "helper" needs an image (only the "task" container gets its image from the worker)',
    ]);
    expect(
      errors(tpl("      initContainers:\n        - { name: a, image: x }\n      containers:\n        - { name: a, image: y }\n")),
    ).toEqual([
      'config.yaml:4:5 backend.kubernetes.pod_template: container names must be unique across containers and initContainers; "a" appears twice',
    ]);
  });

  test("the product page's example is valid", () => {
    const c = ok(
      tpl(`      serviceAccountName: agent-task-sa
      imagePullSecrets:
      - name: my-registry-creds
      containers:
      - name: task
        resources:
          requests:
            cpu: "2"
            memory: 4Gi
          limits:
            memory: 8Gi
        env:
        - name: GITHUB_TOKEN
          valueFrom:
            secretKeyRef:
              name: my-k8s-secret
              key: github-token
      tolerations:
      - key: "dedicated"
        operator: "Equal"
        value: "agents"
        effect: "NoSchedule"
`),
    );
    expect(c.kubernetes.podTemplate?.containers?.[0]?.env?.[0]?.valueFrom?.secretKeyRef?.key).toBe("github-token");
  });
});

describe("read like the Go worker reads it", () => {
  test("string keys take any scalar as written", () => {
    const c = ok("worker_id: 0123\nbackend:\n  kubernetes:\n    namespace: 42\n    extra_labels:\n      version: 1.10\n      enabled: true\n");
    expect(c.workerId).toBe("0123");
    expect(c.kubernetes.namespace).toBe("42");
    expect(c.kubernetes.extraLabels).toEqual({ version: "1.10", enabled: "true" });
  });

  test("empty and null values are unset", () => {
    const c = ok(`${WORKER}idle_on_complete:\nbackend:\n  kubernetes:\n    namespace: ""\n    image_pull_policy: ""\n    default_image: ~\n    pod_template: null\n`);
    expect(c.kubernetes.namespace).toBe("default");
    expect(c.kubernetes.imagePullPolicy).toBe("IfNotPresent");
    expect(c.kubernetes.defaultImage).toBeUndefined();
    expect(c.kubernetes.podTemplate).toBeUndefined();
    expect(c.idleOnComplete).toBeUndefined();
  });

  test("YAML 1.1 booleans", () => {
    expect(ok(`${WORKER}cleanup: no\n`).cleanup).toBe(false);
    expect(ok(`${WORKER}backend:\n  kubernetes:\n    inline_task_env: yes\n    use_image_volumes: On\n`).kubernetes).toMatchObject({
      inlineTaskEnv: true,
      useImageVolumes: true,
    });
  });

  test("anchors, aliases and merge keys", () => {
    const c = ok(`${WORKER}backend:
  kubernetes:
    extra_labels: &labels
      team: agents
    extra_annotations:
      <<: *labels
      note: merged
`);
    expect(c.kubernetes.extraLabels).toEqual({ team: "agents" });
    expect(c.kubernetes.extraAnnotations).toEqual({ team: "agents", note: "merged" });
    // An alias of a number is still read as the text it was written as.
    expect(ok(`${WORKER}backend:\n  kubernetes:\n    extra_labels: {a: &v 1.10, b: *v}\n`).kubernetes.extraLabels).toEqual({ a: "1.10", b: "1.10" });
  });
});

describe("flags are checked and named", () => {
  test.each<[ConfigFlags, string]>([
    [{ logLevel: "verbose" }, '--log-level: expected one of debug, info, warn, error; got "verbose"'],
    [{ webSocketUrl: "https://oz.example/ws" }, '--web-socket-url: expected a ws:// or wss:// URL; got "https://oz.example/ws"'],
    [{ serverRootUrl: "not a url" }, '--server-root-url: expected an http:// or https:// URL; got "not a url"'],
    [{ backend: "docker" }, '--backend: expected kubernetes (oz-worker runs tasks only as Kubernetes Jobs); got "docker"'],
    [{ maxConcurrentTasks: "many" }, '--max-concurrent-tasks: expected a number; got "many"'],
    [{ maxConcurrentTasks: "-1" }, "--max-concurrent-tasks: expected an integer >= 0; got -1"],
    [{ maxConcurrentTasks: "1.5" }, "--max-concurrent-tasks: expected an integer; got 1.5"],
    [{ idleOnComplete: "5 minutes" }, '--idle-on-complete: expected a duration such as 30s, 2m or 1h30m (units ns, us, ms, s, m, h); got "5 minutes"'],
    [{ workerId: "" }, '--worker-id: expected a non-empty worker id; got ""'],
    [{ apiKey: "" }, '--api-key: expected an API key; got ""'],
  ])("%p", (flags, message) => {
    expect(errors(WORKER, flags)).toEqual([message]);
  });

  test("--backend kubernetes is accepted", () => {
    expect(ok(WORKER, { backend: "kubernetes" }).workerId).toBe("w");
  });

  test("file and flag errors come together", () => {
    expect(errors(fixture("three-mistakes.yaml"), { logLevel: "x", maxConcurrentTasks: "y" })).toHaveLength(5);
  });
});

describe("loadConfig", () => {
  test("reads --config-file", async () => {
    const c = await loadConfig({ flags: { configFile: join(FIXTURES, "full.yaml") }, env: {} });
    expect(c.workerId).toBe("full-worker");
  });

  test("- reads standard input, named <stdin> in errors", async () => {
    const readStdin = async () => "worker_id: w\nbogus: 1\n";
    const err = await loadConfig({ flags: { configFile: "-" }, readStdin, env: {} }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([{ file: "<stdin>", line: 2, column: 1, path: "bogus", message: 'unknown key "bogus"' }]);
    expect((err as ConfigError).message).toBe('<stdin>:2:1 bogus: unknown key "bogus"');
  });

  test("a missing file is a config error naming the flag", async () => {
    const err = await loadConfig({ flags: { configFile: "/nonexistent/oz.yaml" }, env: {} }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues).toEqual([{ path: "--config-file", message: 'cannot read "/nonexistent/oz.yaml": no such file' }]);
  });

  test("no file: flags and defaults only", async () => {
    expect((await loadConfig({ flags: { workerId: "w" }, env: {} })).workerId).toBe("w");
  });
});

describe("formatConfigIssue", () => {
  test.each<[ConfigIssue, string]>([
    [{ file: "c.yaml", line: 7, column: 24, path: "a.b", message: "m" }, "c.yaml:7:24 a.b: m"],
    [{ file: "c.yaml", line: 2, column: 1, path: "", message: "invalid YAML: x" }, "c.yaml:2:1: invalid YAML: x"],
    [{ file: "c.yaml", path: "worker_id", message: "required" }, "c.yaml: worker_id: required"],
    [{ path: "--log-level", message: "m" }, "--log-level: m"],
  ])("%p", (issue, text) => {
    expect(formatConfigIssue(issue)).toBe(text);
  });

  test("odd keys are quoted in paths", () => {
    expect(errors(`${WORKER}backend:\n  kubernetes:\n    extra_labels:\n      app.kubernetes.io/name: [x]\n`)).toEqual([
      'config.yaml:5:31 backend.kubernetes.extra_labels["app.kubernetes.io/name"]: expected a string; got a list',
    ]);
  });
});
