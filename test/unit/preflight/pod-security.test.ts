import { describe, expect, test } from "bun:test";
import { parsePodSecurity, podSecurityFix } from "../../../src/preflight/pod-security.ts";
import { PSA_REJECTION } from "./fixtures.ts";

describe("parsePodSecurity", () => {
  test("an enforce rejection: policy, level and every violated rule", () => {
    const psa = parsePodSecurity(PSA_REJECTION);
    expect(psa?.policy).toBe("restricted:latest");
    expect(psa?.level).toBe("restricted");
    expect(psa?.warning).toBe(false);
    expect(psa?.violations.map((v) => v.rule)).toEqual([
      "allowPrivilegeEscalation != false",
      "unrestricted capabilities",
      "runAsNonRoot != true",
      "runAsUser=0",
      "seccompProfile",
    ]);
    expect(psa?.violations[1]?.detail).toBe('containers "root-init-preflight", "main" must set securityContext.capabilities.drop=["ALL"]');
    expect(psa?.violations[3]?.detail).toBe('container "root-init-preflight" must not set runAsUser=0');
  });

  test("a warn/audit warning", () => {
    const psa = parsePodSecurity('would violate PodSecurity "baseline:v1.30": host namespaces (hostNetwork=true), hostPort (container "task" uses hostPort 8080)');
    expect(psa).toMatchObject({ policy: "baseline:v1.30", level: "baseline", warning: true });
    expect(psa?.violations).toEqual([
      { rule: "host namespaces", detail: "hostNetwork=true" },
      { rule: "hostPort", detail: 'container "task" uses hostPort 8080' },
    ]);
  });

  test("anything else", () => {
    expect(parsePodSecurity('pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1')).toBeUndefined();
  });
});

describe("podSecurityFix", () => {
  test("root rules: suggests use_image_volumes and relabelling the namespace, naming it", () => {
    const fix = podSecurityFix("tasks", parsePodSecurity(PSA_REJECTION)!, false);
    expect(fix).toContain('namespace "tasks" enforces "restricted:latest"');
    expect(fix).toContain("runAsUser=0");
    expect(fix).toContain("use_image_volumes: true");
    expect(fix).toContain("kubectl label namespace tasks --overwrite pod-security.kubernetes.io/enforce=baseline");
  });

  test("already in image-volume mode: only the namespace policy", () => {
    const fix = podSecurityFix("tasks", parsePodSecurity(PSA_REJECTION)!, true);
    expect(fix).not.toContain("use_image_volumes: true");
    expect(fix).toContain("pod-security.kubernetes.io/enforce=baseline");
  });
});
