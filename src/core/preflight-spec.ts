// The short-lived preflight Job: proves, before any task is accepted, that the worker may
// create Jobs of the task pod's shape in its namespace (RBAC, Pod Security admission,
// policy engines, image pull). Pure.
import type { V1Container, V1Job, V1PodSpec, V1Volume } from "@kubernetes/client-node";
import { PREFLIGHT_LABEL, preflightJobName, workerLabels } from "./naming.ts";
import type { WorkerConfig } from "./types.ts";

export const PREFLIGHT_IMAGE_VOLUME = "preflight-image";
export const PREFLIGHT_IMAGE_MOUNT_PATH = "/preflight-image";
/** Safety nets: the worker deletes the Job itself, normally within seconds. */
export const PREFLIGHT_ACTIVE_DEADLINE_SECONDS = 60;
export const PREFLIGHT_TTL_SECONDS = 60;

/** Pod-level fields of pod_template that shape admission and scheduling; they apply to
 * the preflight pod too. Containers, init containers and volumes of the template do not
 * (the preflight pod runs only its own tiny containers). */
export const PREFLIGHT_TEMPLATE_FIELDS = [
  "serviceAccountName",
  "automountServiceAccountToken",
  "imagePullSecrets",
  "nodeSelector",
  "tolerations",
  "affinity",
  "securityContext",
  "runtimeClassName",
  "priorityClassName",
  "schedulerName",
  "hostUsers",
] as const satisfies readonly (keyof V1PodSpec)[];

export interface PreflightOptions {
  /** Clock reading in nanoseconds, for a unique name. */
  nanos: bigint | number;
}

export function buildPreflightJob(config: WorkerConfig, opts: PreflightOptions): V1Job {
  const k8s = config.kubernetes;
  const pullPolicy = k8s.imagePullPolicy;
  const resources = structuredClone(k8s.preflightResources);
  const template = k8s.podTemplate;

  const spec: V1PodSpec = { containers: [] };
  if (template) {
    const fields = spec as unknown as Record<string, unknown>;
    const source = template as unknown as Record<string, unknown>;
    for (const field of PREFLIGHT_TEMPLATE_FIELDS) {
      if (source[field] !== undefined) fields[field] = structuredClone(source[field]);
    }
  }
  spec.restartPolicy = "Never";

  const base = {
    image: k8s.preflightImage,
    imagePullPolicy: pullPolicy,
    resources,
  };
  if (k8s.useImageVolumes) {
    const volume: V1Volume = {
      name: PREFLIGHT_IMAGE_VOLUME,
      image: { reference: k8s.preflightImage, pullPolicy },
    };
    spec.volumes = [volume];
    const main: V1Container = {
      name: "main",
      ...base,
      command: ["/bin/sh", "-c", `test -d ${PREFLIGHT_IMAGE_MOUNT_PATH}`],
      volumeMounts: [{ name: PREFLIGHT_IMAGE_VOLUME, mountPath: PREFLIGHT_IMAGE_MOUNT_PATH, readOnly: true }],
    };
    spec.containers = [main];
  } else {
    spec.initContainers = [
      {
        name: "root-init-preflight",
        ...base,
        command: ["/bin/sh", "-c", "true"],
        securityContext: { runAsUser: 0, runAsGroup: 0 },
      },
    ];
    spec.containers = [{ name: "main", ...base, command: ["/bin/sh", "-c", "true"] }];
  }

  const labels: Record<string, string> = {
    ...k8s.extraLabels,
    ...workerLabels(config.workerId),
    [PREFLIGHT_LABEL]: "true",
  };
  const annotations =
    Object.keys(k8s.extraAnnotations).length > 0 ? { ...k8s.extraAnnotations } : undefined;
  const metadata = (extra: { name?: string; namespace?: string }) => ({
    ...extra,
    labels: { ...labels },
    ...(annotations ? { annotations: { ...annotations } } : {}),
  });

  const job: V1Job = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: metadata({ name: preflightJobName(config.workerId, opts.nanos), namespace: k8s.namespace }),
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: PREFLIGHT_ACTIVE_DEADLINE_SECONDS,
      ttlSecondsAfterFinished: PREFLIGHT_TTL_SECONDS,
      template: { metadata: metadata({}), spec },
    },
  };
  return JSON.parse(JSON.stringify(job)) as V1Job;
}
