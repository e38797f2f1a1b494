// Job predicates (src/core/job-predicates.ts) on real Jobs (test/fixtures/kube/*.json).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { V1Job } from "@kubernetes/client-node";
import { isReported } from "../../../src/core/job-predicates.ts";
import { REPORTED_OUTCOME_ANNOTATION } from "../../../src/core/naming.ts";

const FIXTURES = join(import.meta.dir, "../../fixtures/kube");
const KINDS = ["succeeded", "exit-3", "oom", "pull-error", "config-error"] as const;

function jobOf(kind: string): V1Job {
  return JSON.parse(readFileSync(join(FIXTURES, `${kind}.json`), "utf8")).job as V1Job;
}

describe("isReported", () => {
  for (const kind of KINDS) {
    test(`${kind}: only once the reported-outcome annotation is set`, () => {
      const job = jobOf(kind);
      expect(isReported(job)).toBe(false);
      job.metadata!.annotations = { ...job.metadata!.annotations, [REPORTED_OUTCOME_ANNOTATION]: "succeeded" };
      expect(isReported(job)).toBe(true);
    });
  }

  test("an empty annotation value still counts; no Job or no annotations does not", () => {
    const job = jobOf("oom");
    expect(isReported(undefined)).toBe(false);
    expect(isReported({ metadata: { name: "x" } })).toBe(false);
    job.metadata!.annotations![REPORTED_OUTCOME_ANNOTATION] = "";
    expect(isReported(job)).toBe(true);
  });
});
