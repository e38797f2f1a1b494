// YAML problems that the yaml library reports only when the document is converted (not while
// parsing): found by the validate-config fuzz test, where each made validate-config exit 1
// (an unexpected exception) instead of 2 with the problem. resolveConfig never throws.
import { describe, expect, test } from "bun:test";
import { resolveConfig } from "../../../src/config/load.ts";

const BASE = "worker_id: w\nbackend:\n  kubernetes:\n    namespace: agents\n";

function issuesOf(text: string) {
  let result: ReturnType<typeof resolveConfig> | undefined;
  expect(() => (result = resolveConfig({ text, file: "config.yaml" }))).not.toThrow();
  expect(result?.ok).toBe(false);
  return result?.ok === false ? result.issues : [];
}

describe("YAML errors found when the document is converted", () => {
  test("an alias bomb (more aliases than allowed) is an issue, not an exception", () => {
    const rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) rows.push(`${"abcdefghi"[i]}: &${"abcdefghi"[i]} [${Array(9).fill(`*${"abcdefghi"[i - 1]}`).join(",")}]`);
    const issues = issuesOf(`${BASE}${rows.join("\n")}\n`);
    expect(issues).toEqual([expect.objectContaining({ file: "config.yaml", path: "", message: expect.stringMatching(/^invalid YAML: Excessive alias count/) })]);
    expect(issues[0]?.line).toBe(1);
  });

  test("an alias to no anchor", () => {
    expect(issuesOf(`${BASE}    default_image: *nothing\n`)).toEqual([
      expect.objectContaining({ path: "", message: expect.stringMatching(/^invalid YAML: Unresolved alias/) }),
    ]);
  });

  test("a merge key (<<) of a scalar", () => {
    expect(issuesOf(`base: &b 1\n${BASE}    <<: *b\n`)).toEqual([
      expect.objectContaining({ path: "", message: "invalid YAML: Merge sources must be maps or map aliases" }),
    ]);
  });

  test("a valid merge still works", () => {
    const result = resolveConfig({ text: "defaults: &d { namespace: merged }\nworker_id: w\nbackend:\n  kubernetes:\n    <<: *d\n" });
    // Whatever the verdict on the unknown top-level key, the merge itself does not throw.
    expect(result.ok === true || result.issues.every((i) => !i.message.startsWith("invalid YAML"))).toBe(true);
  });
});
