// The runtime check the entry point runs before it loads anything else.
import { describe, expect, test } from "bun:test";
import { compareVersions, currentRuntime, MIN_RUNTIME_VERSIONS, runtimeRefusal } from "../../src/runtime.ts";

describe("runtimeRefusal", () => {
  test.each([
    [{ name: "node", version: "20.20.2" }, "oz-worker needs Node.js 22.18.0 or newer; this is Node.js 20.20.2"],
    [{ name: "node", version: "22.17.1" }, "oz-worker needs Node.js 22.18.0 or newer; this is Node.js 22.17.1"],
    [{ name: "deno", version: "1.46.3" }, "oz-worker needs Deno 2.0.0 or newer; this is Deno 1.46.3"],
    [{ name: "bun", version: "1.1.38" }, "oz-worker needs Bun 1.2.0 or newer; this is Bun 1.1.38"],
  ] as const)("%o is refused in one line naming both versions", (rt, line) => {
    expect(runtimeRefusal(rt)).toBe(line);
  });

  test.each([
    { name: "node", version: "22.18.0" },
    { name: "node", version: "24.3.0" },
    { name: "deno", version: "2.9.6" },
    { name: "bun", version: "1.4.5" },
  ] as const)("%o is accepted", (rt) => {
    expect(runtimeRefusal(rt)).toBeUndefined();
  });

  test("this test process (Bun) is recognised and accepted", () => {
    expect(currentRuntime()).toEqual({ name: "bun", version: Bun.version });
    expect(runtimeRefusal()).toBeUndefined();
  });
});

test("compareVersions compares numerically, ignoring a v prefix and suffixes", () => {
  expect(compareVersions("22.9.0", "22.18.0")).toBe(-1);
  expect(compareVersions("v22.18.0", "22.18.0")).toBe(0);
  expect(compareVersions("2.10.0-rc.1", "2.9.6")).toBe(1);
  expect(Object.keys(MIN_RUNTIME_VERSIONS).sort()).toEqual(["bun", "deno", "node"]);
});
