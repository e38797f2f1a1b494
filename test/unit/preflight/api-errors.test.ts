// explainCreateError on the API server's real Status answers for refusals the sandbox cannot
// produce (a policy webhook, an API server without image volumes, a server error); the ones it
// can (missing namespace, RBAC, Pod Security) are covered in test/e2e/preflight.test.ts.
import { describe, expect, test } from "bun:test";
import type { RawResult } from "../../../src/kube/raw.ts";
import { explainCreateError } from "../../../src/preflight/checks/api-errors.ts";
import type { CheckContext } from "../../../src/preflight/context.ts";
import { makeConfig } from "../core/fixtures.ts";

function ctx(useImageVolumes = false): CheckContext {
  const config = makeConfig({ namespace: "tasks", useImageVolumes });
  return { config, kube: {} as CheckContext["kube"], namespace: "tasks", timeoutMs: 15_000, signal: new AbortController().signal, facts: {} };
}

function refused(status: number, error: NonNullable<RawResult["error"]>): RawResult {
  return { status, ok: false, error, warnings: [] };
}

describe("explainCreateError", () => {
  test("a policy webhook: named and quoted, with the exception to ask for", () => {
    const res = refused(400, {
      kind: "Status",
      status: "Failure",
      reason: "BadRequest",
      code: 400,
      message:
        'admission webhook "validation.gatekeeper.sh" denied the request: [k8sallowedrepos] container <task> has an invalid image repo <ubuntu:22.04>, allowed repos are ["registry.example.com/"]',
    });
    const e = explainCreateError(ctx(), "task Job", "jobs", "oz-task-x", res);
    expect(e.status).toBe("fail");
    expect(e.summary).toBe('the admission webhook "validation.gatekeeper.sh" rejects the task Job in namespace "tasks"');
    expect(e.details?.[0]).toContain("k8sallowedrepos");
    expect(e.fix).toContain('exception for oz-worker in namespace "tasks"');
  });

  test("an API server without image volumes drops the volume source: says so, only in image-volume mode", () => {
    const res = refused(422, {
      kind: "Status",
      status: "Failure",
      reason: "Invalid",
      code: 422,
      message: 'Job.batch "oz-task-x" is invalid: spec.template.spec.volumes[1]: Required value: must specify a volume type',
      details: { causes: [{ field: "spec.template.spec.volumes[1]", message: "Required value: must specify a volume type" }] },
    });
    const withVolumes = explainCreateError(ctx(true), "task Job", "jobs", "oz-task-x", res);
    expect(withVolumes.summary).toContain("does not accept image volumes");
    expect(withVolumes.fix).toContain("use_image_volumes: false");

    const plain = explainCreateError(ctx(false), "task Job", "jobs", "oz-task-x", res);
    expect(plain.summary).toBe("the API server rejects the task Job oz-task-x as invalid");
    expect(plain.details).toContain("invalid: spec.template.spec.volumes[1]: Required value: must specify a volume type");
  });

  test("a server error points at failing webhooks and the API server's health", () => {
    const res = refused(500, {
      kind: "Status",
      status: "Failure",
      reason: "InternalError",
      code: 500,
      message: 'Internal error occurred: failed calling webhook "policy.example.com": context deadline exceeded',
    });
    const e = explainCreateError(ctx(), "preflight Job", "jobs", "oz-preflight-x", res);
    expect(e.summary).toBe("the API server refused the preflight Job oz-preflight-x (HTTP 500)");
    expect(e.fix).toContain("failing admission webhook");
  });
});
