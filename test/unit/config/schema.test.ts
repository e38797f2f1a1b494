// The config schema: its defaults, and that the pod_template schema knows
// exactly the fields of the Kubernetes API types it checks (taken from the
// @kubernetes/client-node models, which are generated from the API's OpenAPI).
import { describe, expect, test } from "bun:test";
import * as k8s from "@kubernetes/client-node";
import * as v from "valibot";
import { PodSpecSchema } from "../../../src/config/pod-spec.ts";
import {
  ConfigFileSchema,
  DEFAULT_PREFLIGHT_RESOURCES,
  KubernetesBackendSchema,
} from "../../../src/config/schema.ts";
import { type AnySchema, entriesOf, unwrap } from "../../../src/config/schema-kit.ts";

describe("defaults of the config file", () => {
  test("an empty file gets every default", () => {
    const out = v.parse(ConfigFileSchema, {});
    expect(out).toEqual({
      cleanup: true,
      max_concurrent_tasks: 0,
      backend: {
        kubernetes: {
          namespace: "default",
          image_pull_policy: "IfNotPresent",
          use_image_volumes: false,
          preflight_image: "busybox:1.36",
          preflight_resources: {
            requests: { cpu: "10m", memory: "16Mi" },
            limits: { cpu: "100m", memory: "64Mi" },
          },
          coding_cli_sidecars: {},
          extra_labels: {},
          extra_annotations: {},
          unschedulable_timeout: "30s",
          inline_task_env: false,
        },
      },
    });
  });

  test("keys without a default stay unset", () => {
    const k = v.parse(KubernetesBackendSchema, {});
    for (const key of [
      "kubeconfig",
      "default_image",
      "sidecar_image",
      "setup_command",
      "teardown_command",
      "active_deadline_seconds",
      "ttl_seconds_after_finished",
      "workspace_size_limit",
      "pod_template",
    ]) {
      expect(k).not.toHaveProperty(key);
    }
  });

  test("the preflight resources default is a fresh copy each time", () => {
    const a = v.parse(KubernetesBackendSchema, {});
    (a.preflight_resources.requests as Record<string, string>).cpu = "1";
    const b = v.parse(KubernetesBackendSchema, {});
    expect(b.preflight_resources).toEqual(structuredClone(DEFAULT_PREFLIGHT_RESOURCES) as never);
  });
});

// --- pod_template vs the Kubernetes API types -------------------------------

function child(schema: AnySchema, key: string): AnySchema {
  const entry = entriesOf(schema)?.[key];
  if (!entry) throw new Error(`no key ${key}`);
  const s = unwrap(entry) as AnySchema & { item?: AnySchema };
  return s.type === "array" && s.item ? s.item : s;
}

function keysOf(schema: AnySchema): string[] {
  return Object.keys(entriesOf(schema) ?? {}).sort();
}

function apiFields(model: { attributeTypeMap: { baseName: string }[] }): string[] {
  return model.attributeTypeMap.map((a) => a.baseName).sort();
}

const pod = PodSpecSchema as unknown as AnySchema;
const container = child(pod, "containers");
const initContainer = child(pod, "initContainers");
const volume = child(pod, "volumes");
const securityContext = child(container, "securityContext");

const CASES: [string, AnySchema, { attributeTypeMap: { baseName: string }[] }][] = [
  ["PodSpec", pod, k8s.V1PodSpec],
  ["Container (containers)", container, k8s.V1Container],
  ["Container (initContainers)", initContainer, k8s.V1Container],
  ["ResourceRequirements", child(container, "resources"), k8s.V1ResourceRequirements],
  ["EnvVar", child(container, "env"), k8s.V1EnvVar],
  ["EnvVarSource", child(child(container, "env"), "valueFrom"), k8s.V1EnvVarSource],
  ["SecretKeySelector", child(child(child(container, "env"), "valueFrom"), "secretKeyRef"), k8s.V1SecretKeySelector],
  ["EnvFromSource", child(container, "envFrom"), k8s.V1EnvFromSource],
  ["VolumeMount", child(container, "volumeMounts"), k8s.V1VolumeMount],
  ["ContainerPort", child(container, "ports"), k8s.V1ContainerPort],
  ["SecurityContext", securityContext, k8s.V1SecurityContext],
  ["Capabilities", child(securityContext, "capabilities"), k8s.V1Capabilities],
  ["SeccompProfile", child(securityContext, "seccompProfile"), k8s.V1SeccompProfile],
  ["PodSecurityContext", child(pod, "securityContext"), k8s.V1PodSecurityContext],
  ["Probe", child(container, "livenessProbe"), k8s.V1Probe],
  ["Lifecycle", child(container, "lifecycle"), k8s.V1Lifecycle],
  ["LifecycleHandler", child(child(container, "lifecycle"), "preStop"), k8s.V1LifecycleHandler],
  ["Volume", volume, k8s.V1Volume],
  ["EmptyDirVolumeSource", child(volume, "emptyDir"), k8s.V1EmptyDirVolumeSource],
  ["ImageVolumeSource", child(volume, "image"), k8s.V1ImageVolumeSource],
  ["ConfigMapVolumeSource", child(volume, "configMap"), k8s.V1ConfigMapVolumeSource],
  ["SecretVolumeSource", child(volume, "secret"), k8s.V1SecretVolumeSource],
  ["PersistentVolumeClaimVolumeSource", child(volume, "persistentVolumeClaim"), k8s.V1PersistentVolumeClaimVolumeSource],
  ["HostPathVolumeSource", child(volume, "hostPath"), k8s.V1HostPathVolumeSource],
  ["Toleration", child(pod, "tolerations"), k8s.V1Toleration],
  ["Affinity", child(pod, "affinity"), k8s.V1Affinity],
  ["PodDNSConfig", child(pod, "dnsConfig"), k8s.V1PodDNSConfig],
  ["HostAlias", child(pod, "hostAliases"), k8s.V1HostAlias],
  ["LocalObjectReference (imagePullSecrets)", child(pod, "imagePullSecrets"), k8s.V1LocalObjectReference],
];

describe("pod_template knows exactly the fields of the Kubernetes API types", () => {
  test.each(CASES)("%s", (_name, schema, model) => {
    expect(keysOf(schema)).toEqual(apiFields(model));
  });
});
