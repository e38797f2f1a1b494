import { describe, expect, test } from "bun:test";
import { parseFlags, UsageError, usageText, type FlagDefs } from "../../../scripts/lib/args.ts";

const DEFS: FlagDefs = {
  tasks: { kind: "int", help: "tasks" },
  "task-seconds": { kind: "number", help: "seconds" },
  json: { kind: "string", placeholder: "FILE", help: "json" },
  keep: { kind: "boolean", help: "keep" },
};

describe("parseFlags", () => {
  test("space and = forms, booleans", () => {
    expect(parseFlags(["--tasks", "5", "--task-seconds=0.5", "--json", "/tmp/o.json", "--keep"], DEFS)).toEqual({
      tasks: 5,
      "task-seconds": 0.5,
      json: "/tmp/o.json",
      keep: true,
    });
    expect(parseFlags(["--keep=false"], DEFS)).toEqual({ keep: false });
  });

  test("errors", () => {
    expect(() => parseFlags(["--nope"], DEFS)).toThrow(UsageError);
    expect(() => parseFlags(["--tasks"], DEFS)).toThrow(/needs a value/);
    expect(() => parseFlags(["--tasks", "1.5"], DEFS)).toThrow(/whole number/);
    expect(() => parseFlags(["--tasks", "x"], DEFS)).toThrow(/number/);
    expect(() => parseFlags(["stray"], DEFS)).toThrow(/unexpected/);
    expect(() => parseFlags(["--keep=yes"], DEFS)).toThrow(/takes no value/);
  });

  test("a value may start with dashes when given with =", () => {
    expect(parseFlags(["--json=--odd"], DEFS)).toEqual({ json: "--odd" });
  });
});

test("usageText lists every flag", () => {
  const text = usageText("scripts/x", "Does x.", DEFS);
  expect(text).toContain("--json FILE");
  expect(text).toContain("--keep ");
  expect(text).toContain("--tasks N");
});
