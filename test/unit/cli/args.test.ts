import { describe, expect, test } from "bun:test";
import { CONFIG_FLAGS, configFlagsFrom, type FlagSpec, parseArgs } from "../../../src/cli/args.ts";

const SPECS: FlagSpec[] = [
  ...CONFIG_FLAGS,
  { name: "output", kind: "string", description: "", choices: ["text", "json"] },
  { name: "show-secrets", kind: "boolean", description: "" },
];

const values = (argv: string[]) => {
  const r = parseArgs(SPECS, argv);
  if (!r.ok) throw new Error(r.message);
  return r.values;
};
const failure = (argv: string[]) => {
  const r = parseArgs(SPECS, argv);
  if (r.ok) throw new Error("expected a parse error");
  return r.message;
};

describe("parseArgs", () => {
  test("values stay as typed: no number coercion", () => {
    expect(values(["--worker-id", "0123", "--api-key", "1e5", "--max-concurrent-tasks", "007"])).toEqual({
      "worker-id": "0123",
      "api-key": "1e5",
      "max-concurrent-tasks": "007",
    });
  });

  test("--flag=value, --flag value, -e value, -eVALUE, -e=VALUE", () => {
    expect(values(["--worker-id=w", "-e", "A=1", "-eB=2", "-e=C", "--env", "D", "--env=E=5"])).toEqual({
      "worker-id": "w",
      env: ["A=1", "B=2", "C", "D", "E=5"],
    });
  });

  test("- and negative numbers are values", () => {
    expect(values(["--config-file", "-", "--max-concurrent-tasks", "-1"])).toEqual({ "config-file": "-", "max-concurrent-tasks": "-1" });
  });

  test("a value may start with - when attached with =", () => {
    expect(values(["--worker-id=-odd"])).toEqual({ "worker-id": "-odd" });
  });

  test("booleans, including =true / =false", () => {
    expect(values(["--no-cleanup", "--show-secrets=false"])).toEqual({ "no-cleanup": true, "show-secrets": false });
    expect(failure(["--no-cleanup=yes"])).toBe('--no-cleanup: expected no value (or =true / =false); got "yes"');
  });

  test("the last value of a single-valued flag wins", () => {
    expect(values(["--worker-id", "a", "--worker-id", "b"])).toEqual({ "worker-id": "b" });
  });

  test.each([
    [["--wroker-id", "w"], "unknown option --wroker-id (did you mean --worker-id?)"],
    [["--totally-unknown"], "unknown option --totally-unknown"],
    [["-z"], "unknown option -z"],
    [["--worker-id"], "--worker-id: missing value (expected ID; use --worker-id=VALUE for a value that starts with -)"],
    [["--worker-id", "--no-cleanup"], "--worker-id: missing value (expected ID; use --worker-id=VALUE for a value that starts with -)"],
    [["-e"], "-e: missing value (expected KEY=VALUE; use -e=VALUE for a value that starts with -)"],
    [["positional"], 'unexpected argument "positional"'],
    [["--", "after"], 'unexpected argument "after"'],
    [["--output", "yaml"], '--output: expected one of text, json; got "yaml"'],
    [["--log-level", "trace"], '--log-level: expected one of debug, info, warn, error; got "trace"'],
  ])("%p → %p", (argv, message) => {
    expect(failure(argv)).toBe(message);
  });

  test("a trailing -- alone is fine", () => {
    expect(values(["--no-cleanup", "--"])).toEqual({ "no-cleanup": true });
  });
});

describe("configFlagsFrom", () => {
  test("maps flag names onto ConfigFlags, leaving absent ones out", () => {
    expect(
      configFlagsFrom(
        values([
          "--config-file", "c.yaml", "--worker-id", "w", "--api-key", "k", "--log-level", "debug", "--no-cleanup",
          "-e", "A=1", "--max-concurrent-tasks", "3", "--idle-on-complete", "5m", "--web-socket-url", "ws://h/ws",
          "--server-root-url", "http://h", "--backend", "kubernetes", "--output", "json",
        ]),
      ),
    ).toEqual({
      configFile: "c.yaml",
      workerId: "w",
      apiKey: "k",
      logLevel: "debug",
      noCleanup: true,
      env: ["A=1"],
      maxConcurrentTasks: "3",
      idleOnComplete: "5m",
      webSocketUrl: "ws://h/ws",
      serverRootUrl: "http://h",
      backend: "kubernetes",
    });
    expect(configFlagsFrom(values([]))).toEqual({});
  });
});
