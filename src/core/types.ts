// The plain-data inputs of the pure core. The config loader (src/config) produces
// WorkerConfig; the Oz protocol parser (src/oz/protocol.ts) produces TaskAssignment.
// Both are resolved: defaults applied, durations in milliseconds, nothing left to parse.
import type { V1PodSpec, V1ResourceRequirements } from "@kubernetes/client-node";

export type ImagePullPolicy = "Always" | "Never" | "IfNotPresent";
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface KubernetesBackendConfig {
  /** Explicit kubeconfig path; unset means in-cluster, else the default loading rules. */
  kubeconfig?: string;
  namespace: string;
  /** Unset means the built-in fallback image (ubuntu:22.04). */
  defaultImage?: string;
  imagePullPolicy: ImagePullPolicy;
  useImageVolumes: boolean;
  preflightImage: string;
  preflightResources: V1ResourceRequirements;
  /** Overrides the server's /agent sidecar image. */
  sidecarImage?: string;
  /** harness name -> image, mounted at /mnt/<harness>-cli-sidecar. */
  codingCliSidecars: Record<string, string>;
  setupCommand?: string;
  teardownCommand?: string;
  extraLabels: Record<string, string>;
  extraAnnotations: Record<string, string>;
  activeDeadlineSeconds?: number;
  /** Already resolved against `cleanup`: unset means the Job gets no TTL. */
  ttlSecondsAfterFinished?: number;
  workspaceSizeLimit?: string;
  /** 0 turns the unschedulable fail-fast off. */
  unschedulableTimeoutMs: number;
  /** Put the assignment's env_vars inline in the Job spec instead of a per-task Secret. */
  inlineTaskEnv: boolean;
  podTemplate?: V1PodSpec;
}

export interface EnvOverride {
  name: string;
  value: string;
}

export interface WorkerConfig {
  workerId: string;
  cleanup: boolean;
  /** 0 means unlimited. */
  maxConcurrentTasks: number;
  /** Duration string as the user wrote it (e.g. "45m"), passed to the agent. */
  idleOnComplete?: string;
  apiKey?: string;
  webSocketUrl: string;
  serverRootUrl: string;
  /** `--session-sharing-server-url`: passed to the agent after its other arguments. */
  sessionSharingServerUrl?: string;
  logLevel: LogLevel;
  /** The worker's `-e KEY=VALUE` / `-e KEY` overrides, already resolved. */
  env: EnvOverride[];
  kubernetes: KubernetesBackendConfig;
}
