// Realistic inputs for the pure-core tests.
import type { TaskAssignment } from "../../../src/oz/protocol.ts";
import type { KubernetesBackendConfig, WorkerConfig } from "../../../src/core/types.ts";

export const TASK_ID = "6f1c2e0a-3b7d-4c1e-9a51-2d8e4f7b9c10";
export const EXECUTION_ID = "0b9d8c7e-5a41-4f3e-8d2c-7e6f5a4b3c21";
export const SECRET_VALUE = "ghp_s3cr3tV4lueThatMustNeverLeak";

export function makeConfig(
  k8s: Partial<KubernetesBackendConfig> = {},
  top: Partial<Omit<WorkerConfig, "kubernetes">> = {},
): WorkerConfig {
  return {
    workerId: "k8s-worker-prod",
    cleanup: true,
    maxConcurrentTasks: 0,
    webSocketUrl: "wss://oz.warp.dev/api/v1/selfhosted/worker/ws",
    serverRootUrl: "https://app.warp.dev",
    logLevel: "info",
    env: [],
    ...top,
    kubernetes: {
      namespace: "warp-oz",
      imagePullPolicy: "IfNotPresent",
      useImageVolumes: false,
      preflightImage: "busybox:1.36",
      preflightResources: {
        requests: { cpu: "10m", memory: "16Mi" },
        limits: { cpu: "100m", memory: "64Mi" },
      },
      codingCliSidecars: {},
      extraLabels: {},
      extraAnnotations: {},
      ttlSecondsAfterFinished: 86400,
      unschedulableTimeoutMs: 30_000,
      inlineTaskEnv: true,
      ...k8s,
    },
  };
}

export function makeAssignment(overrides: Partial<TaskAssignment> = {}): TaskAssignment {
  return {
    task_id: TASK_ID,
    execution_id: EXECUTION_ID,
    task: {
      id: TASK_ID,
      title: "Fix flaky test",
      task_definition: { prompt: "Fix the flaky test in payments." },
      created_at: "2025-06-02T14:03:11Z",
      updated_at: "2025-06-02T14:03:12Z",
      owner: { Type: "TEAM", Id: 4821 },
      agent_config_snapshot: { model_id: "claude-sonnet-4" },
    },
    docker_image: "ghcr.io/example/payments-dev:2025.06",
    sidecar_image: "us-docker.pkg.dev/warp/agent-sidecar:stable",
    env_vars: { GITHUB_TOKEN: SECRET_VALUE, WARP_API_KEY: "wk-another-secret-value" },
    additional_sidecars: [],
    additional_oz_args: [],
    ...overrides,
  };
}
