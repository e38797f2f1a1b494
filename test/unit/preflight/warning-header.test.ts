import { describe, expect, test } from "bun:test";
import { parseWarningHeader } from "../../../src/kube/raw.ts";

describe("parseWarningHeader", () => {
  test("one warning", () => {
    expect(parseWarningHeader('299 - "would violate PodSecurity \\"restricted:latest\\": runAsUser=0 (container \\"a\\" must not set runAsUser=0)"')).toEqual([
      'would violate PodSecurity "restricted:latest": runAsUser=0 (container "a" must not set runAsUser=0)',
    ]);
  });

  test("several, joined by fetch with commas inside the texts", () => {
    const joined = '299 - "unknown field \\"spec.foo\\", spec.bar", 299 - "metadata.finalizers: \\"x\\": prefer a domain-qualified finalizer name"';
    expect(parseWarningHeader(joined)).toEqual(['unknown field "spec.foo", spec.bar', 'metadata.finalizers: "x": prefer a domain-qualified finalizer name']);
  });

  test("with a date, and nothing", () => {
    expect(parseWarningHeader('299 kube-apiserver "text" "Wed, 21 Oct 2015 07:28:00 GMT"')).toEqual(["text"]);
    expect(parseWarningHeader(null)).toEqual([]);
    expect(parseWarningHeader("")).toEqual([]);
  });
});
