import { describe, expect, test } from "bun:test";
import type { V1PodSpec } from "@kubernetes/client-node";
import { shortHash } from "../../../src/core/naming.ts";
import { buildPreflightJob } from "../../../src/core/preflight-spec.ts";
import { makeConfig } from "./fixtures.ts";

const NANOS = 1717171717171717171n;
const template: V1PodSpec = {
  serviceAccountName: "agent-task-sa",
  imagePullSecrets: [{ name: "my-registry-creds" }],
  nodeSelector: { pool: "agents" },
  tolerations: [{ key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule" }],
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "arch", operator: "In", values: ["amd64"] }] }] } } },
  securityContext: { fsGroup: 1000 },
  runtimeClassName: "gvisor",
  priorityClassName: "agents",
  initContainers: [{ name: "proxy", image: "corp/proxy:1", restartPolicy: "Always" }],
  containers: [{ name: "task", image: "corp/x:1", env: [{ name: "A", value: "1" }] }],
  volumes: [{ name: "data", persistentVolumeClaim: { claimName: "cache" } }],
};

describe("preflight Job, default mode", () => {
  const config = makeConfig({ podTemplate: template, extraLabels: { team: "p" }, extraAnnotations: { note: "n" } });
  const job = buildPreflightJob(config, { nanos: NANOS });
  const spec = job.spec!.template.spec!;

  test("name and labels", () => {
    expect(job.metadata?.name).toBe(`oz-preflight-${shortHash("k8s-worker-prod")}-${NANOS}`);
    expect(job.metadata?.namespace).toBe("warp-oz");
    const labels = {
      team: "p",
      "oz-worker-id": "k8s-worker-prod",
      "oz-worker-hash": shortHash("k8s-worker-prod"),
      "oz-preflight": "true",
    };
    expect(job.metadata?.labels).toEqual(labels);
    expect(job.spec?.template.metadata?.labels).toEqual(labels);
    expect(job.metadata?.annotations).toEqual({ note: "n" });
  });
  test("safety nets: backoffLimit 0, Never, short deadline and TTL", () => {
    expect(job.spec?.backoffLimit).toBe(0);
    expect(spec.restartPolicy).toBe("Never");
    expect(job.spec?.activeDeadlineSeconds).toBe(60);
    expect(job.spec?.ttlSecondsAfterFinished).toBe(60);
  });
  test("the template's pod-level shape applies", () => {
    expect(spec.serviceAccountName).toBe("agent-task-sa");
    expect(spec.imagePullSecrets).toEqual([{ name: "my-registry-creds" }]);
    expect(spec.nodeSelector).toEqual({ pool: "agents" });
    expect(spec.tolerations).toEqual(template.tolerations!);
    expect(spec.affinity).toEqual(template.affinity!);
    expect(spec.securityContext).toEqual({ fsGroup: 1000 });
    expect(spec.runtimeClassName).toBe("gvisor");
    expect(spec.priorityClassName).toBe("agents");
  });
  test("but not its containers or volumes", () => {
    expect(spec.volumes).toBeUndefined();
    expect(JSON.stringify(spec)).not.toContain("corp/");
  });
  test("a root init container and a main container on the preflight image running true", () => {
    const res = { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "100m", memory: "64Mi" } };
    expect(spec.initContainers).toEqual([
      {
        name: "root-init-preflight",
        image: "busybox:1.36",
        imagePullPolicy: "IfNotPresent",
        resources: res,
        command: ["/bin/sh", "-c", "true"],
        securityContext: { runAsUser: 0, runAsGroup: 0 },
      },
    ]);
    expect(spec.containers).toEqual([
      { name: "main", image: "busybox:1.36", imagePullPolicy: "IfNotPresent", resources: res, command: ["/bin/sh", "-c", "true"] },
    ]);
  });
  test("no template: a bare pod", () => {
    const bare = buildPreflightJob(makeConfig({ preflightImage: "registry.corp/busybox:1" }), { nanos: 5 }).spec!.template.spec!;
    expect(bare.serviceAccountName).toBeUndefined();
    expect(bare.containers[0]?.image).toBe("registry.corp/busybox:1");
  });
});

describe("preflight Job, image-volume mode", () => {
  const config = makeConfig({ useImageVolumes: true, imagePullPolicy: "Always", podTemplate: template });
  const spec = buildPreflightJob(config, { nanos: NANOS }).spec!.template.spec!;

  test("an image volume of the preflight image mounted read-only, and a check it exists", () => {
    expect(spec.initContainers).toBeUndefined();
    expect(spec.volumes).toEqual([{ name: "preflight-image", image: { reference: "busybox:1.36", pullPolicy: "Always" } }]);
    expect(spec.containers).toHaveLength(1);
    expect(spec.containers[0]?.command).toEqual(["/bin/sh", "-c", "test -d /preflight-image"]);
    expect(spec.containers[0]?.volumeMounts).toEqual([{ name: "preflight-image", mountPath: "/preflight-image", readOnly: true }]);
    expect(spec.containers[0]?.resources).toEqual(config.kubernetes.preflightResources);
    expect(spec.serviceAccountName).toBe("agent-task-sa");
  });
  test("the template is not mutated", () => {
    expect(template.containers).toHaveLength(1);
    expect(template.volumes).toHaveLength(1);
  });
});
