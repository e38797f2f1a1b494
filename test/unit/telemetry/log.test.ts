import { describe, expect, test } from "bun:test";
import { createLogger, resolveLogFormat, serverText, type LoggerOptions } from "../../../src/telemetry/log.ts";
import {
  REDACTED,
  registerSecret,
  SecretRegistry,
  secrets as globalSecrets,
  unregisterSecret,
} from "../../../src/telemetry/secrets.ts";

function sink(isTTY = false) {
  const chunks: string[] = [];
  return {
    chunks,
    stream: { isTTY, write: (s: string) => chunks.push(s) },
    text: () => chunks.join(""),
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter((l) => l !== ""),
    json: () =>
      chunks
        .join("")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const FIXED = new Date("2030-01-02T03:04:05.678Z");

function jsonLogger(opts: Partial<LoggerOptions> = {}) {
  const out = sink();
  const registry = opts.secrets ?? new SecretRegistry();
  const logger = createLogger({ format: "json", level: "debug", stream: out.stream, secrets: registry, clock: () => FIXED, ...opts });
  return { out, logger, registry };
}

describe("json format", () => {
  test("one JSON object per line with time, level, msg and fields", () => {
    const { out, logger } = jsonLogger();
    logger.info("Connected to Oz", { url: "wss://x", attempt: 2 });
    logger.warn("slow", { nested: { a: [1, 2] } });
    expect(out.lines()).toHaveLength(2);
    expect(out.json()).toEqual([
      { time: "2030-01-02T03:04:05.678Z", level: "info", msg: "Connected to Oz", url: "wss://x", attempt: 2 },
      { time: "2030-01-02T03:04:05.678Z", level: "warn", msg: "slow", nested: { a: [1, 2] } },
    ]);
  });

  test("levels filter", () => {
    const { out, logger } = jsonLogger({ level: "warn" });
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    expect(out.json().map((l) => l.level)).toEqual(["warn", "error"]);
  });

  test("repeated identical lines are all written (no consola throttling)", () => {
    const { out, logger } = jsonLogger();
    for (let i = 0; i < 10; i++) logger.info("same line", { k: 1 });
    expect(out.lines()).toHaveLength(10);
  });

  test("withTask: every line carries task_id and execution_id; children stack", () => {
    const { out, logger } = jsonLogger();
    const task = logger.withTask({ task_id: "run-1", execution_id: "exec-9" });
    task.info("job created", { job: "oz-task-run-1-exec-9" });
    task.child({ component: "watch" }).error("pod failed", { reason: "container_oom" });
    logger.withTask({ task_id: "run-2", execution_id: "" }).info("fallback");
    const lines = out.json();
    expect(lines[0]).toMatchObject({ task_id: "run-1", execution_id: "exec-9", job: "oz-task-run-1-exec-9" });
    expect(lines[1]).toMatchObject({ task_id: "run-1", execution_id: "exec-9", component: "watch", reason: "container_oom" });
    expect(lines[2]).toMatchObject({ task_id: "run-2", execution_id: "run-2" });
  });

  test("reserved keys in fields do not clobber time/level/msg", () => {
    const { out, logger } = jsonLogger();
    logger.info("real", { msg: "fake", level: "error", time: "never" });
    expect(out.json()[0]).toEqual({ time: FIXED.toISOString(), level: "info", msg: "real", msg_: "fake", level_: "error", time_: "never" });
  });

  test("errors, cycles, Maps, bigints and binary are serialized safely", () => {
    const { out, logger } = jsonLogger();
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = cyclic;
    const err = Object.assign(new Error("outer", { cause: new Error("inner") }), { code: "E_X" });
    logger.error("many", { err, cyclic, map: new Map([["k", 1]]), big: 12n, buf: new Uint8Array(3), fn: () => 1, when: FIXED });
    const line = out.json()[0] ?? {};
    expect(line.err).toMatchObject({ name: "Error", message: "outer", code: "E_X", cause: { message: "inner" } });
    expect(String((line.err as Record<string, unknown>).stack)).toContain("outer");
    expect(line.cyclic).toEqual({ name: "loop", self: "[Circular]" });
    expect(line.map).toEqual({ k: 1 });
    expect(line.big).toBe("12");
    expect(line.buf).toBe("[Uint8Array 3 bytes]");
    expect(line.fn).toBe("[Function fn]");
    expect(line.when).toBe(FIXED.toISOString());
  });

  test("a throwing sink never throws into the caller", () => {
    const logger = createLogger({
      format: "json",
      stream: {
        write() {
          throw new Error("EPIPE");
        },
      },
    });
    expect(() => logger.error("x", { a: 1 })).not.toThrow();
  });
});

describe("redaction", () => {
  const API_KEY = "wk-MARKER-apikey-7f3a9c";
  const TASK_SECRET = "ghp_MARKERtasksecret123";

  test("registered secrets never appear: message, nested fields, arrays, Map keys, error messages and stacks", () => {
    const { out, logger, registry } = jsonLogger();
    registry.register(API_KEY);
    registry.register(TASK_SECRET);
    const task = logger.withTask({ task_id: "t", execution_id: "e" });
    task.info(`dialing with key ${API_KEY}`, {
      header: `Bearer ${API_KEY}`,
      env: { GITHUB_TOKEN: TASK_SECRET, deep: { deeper: [{ v: `x${TASK_SECRET}y` }] } },
      list: [API_KEY],
      map: new Map([[TASK_SECRET, "value"]]),
      url: new URL(`https://h/?token=${TASK_SECRET}`),
    });
    const err = new Error(`request failed for ${TASK_SECRET}`, { cause: new Error(`cause ${API_KEY}`) });
    task.error("create failed", { err });
    task.child({ leaked_binding: TASK_SECRET }).warn("child binding");
    // A raw frame with the secret JSON-escaped or URL-encoded is caught too.
    const tricky = 'a"b\\c-MARKER';
    registry.register(tricky);
    task.debug("frame", { raw: JSON.stringify({ env_vars: { X: tricky } }), query: `?x=${encodeURIComponent(tricky)}` });

    const text = out.text();
    for (const s of [API_KEY, TASK_SECRET, tricky, JSON.stringify(tricky).slice(1, -1), encodeURIComponent(tricky)]) {
      expect(text).not.toContain(s);
    }
    expect(text).not.toContain("MARKER");
    expect(text).toContain(REDACTED);
    const lines = out.json();
    expect(lines[0]?.msg).toBe(`dialing with key ${REDACTED}`);
    expect((lines[0]?.env as Record<string, unknown>).GITHUB_TOKEN).toBe(REDACTED);
    expect(String((lines[1]?.err as Record<string, unknown>).stack)).toContain(REDACTED);
    expect(lines[2]?.leaked_binding).toBe(REDACTED);
  });

  test("a secret registered after a child was bound is still redacted", () => {
    const { out, logger, registry } = jsonLogger();
    const child = logger.child({ token: TASK_SECRET });
    registry.register(TASK_SECRET);
    child.info("later");
    expect(out.text()).not.toContain(TASK_SECRET);
  });

  test("reference counting and unregister: values reappear only when no task holds them", () => {
    const { out, logger, registry } = jsonLogger();
    const releaseA = registry.registerAll([TASK_SECRET, "x", ""]);
    const releaseB = registry.registerAll([TASK_SECRET]);
    expect(registry.size).toBe(1); // short values are not registered
    releaseA();
    releaseA(); // idempotent
    logger.info(TASK_SECRET);
    releaseB();
    expect(registry.size).toBe(0);
    logger.info(TASK_SECRET);
    expect(out.json().map((l) => l.msg)).toEqual([REDACTED, TASK_SECRET]);
  });

  test("values of megabytes (an env_var may hold up to the Secret's 1 MiB) are redacted, with their JSON form", () => {
    const { out, logger, registry } = jsonLogger();
    const big = `BEGIN-${"k".repeat(2 * 1024 * 1024)}\n-END`;
    registry.register(big);
    registry.register("END-short");
    expect(registry.contains(`x${big}y`)).toBe(true);
    expect(registry.redact(`[${big}] [END-short]`)).toBe(`[${REDACTED}] [${REDACTED}]`);
    logger.info("log", { log: `before ${big} after`, short: "kkkk" });
    const line = out.json()[0]!;
    expect(line.log).toBe(`before ${REDACTED} after`);
    expect(out.text()).not.toContain("k".repeat(2048));
    // A long value containing a short one is replaced whole.
    const outer = `${"p".repeat(2000)}END-short${"q".repeat(2000)}`;
    registry.register(outer);
    expect(registry.redact(`<${outer}>`)).toBe(`<${REDACTED}>`);
  });

  test("numbers equal to a secret are redacted", () => {
    const { out, logger, registry } = jsonLogger();
    registry.register("987654321");
    logger.info("n", { pin: 987654321, other: 5 });
    expect(out.json()[0]).toMatchObject({ pin: REDACTED, other: 5 });
  });

  test("the default logger uses the process-wide registry", () => {
    const out = sink();
    const logger = createLogger({ format: "json", stream: out.stream });
    expect(registerSecret("process-wide-MARKER-1")).toBe(true);
    try {
      logger.info("k=process-wide-MARKER-1");
      expect(out.text()).not.toContain("process-wide-MARKER-1");
      expect(globalSecrets.has("process-wide-MARKER-1")).toBe(true);
    } finally {
      unregisterSecret("process-wide-MARKER-1");
    }
    expect(globalSecrets.has("process-wide-MARKER-1")).toBe(false);
  });
});

describe("pretty format", () => {
  test("one human line per entry with key=value fields, redacted, no colours off-TTY", () => {
    const out = sink(false);
    const registry = new SecretRegistry();
    registry.register("pretty-MARKER-secret");
    const logger = createLogger({ format: "pretty", stream: out.stream, secrets: registry, clock: () => FIXED });
    logger.withTask({ task_id: "t1", execution_id: "e1" }).info("Task started", { image: "ubuntu:22.04", note: "has space", key: "pretty-MARKER-secret" });
    logger.error("boom", { err: new Error("bad pretty-MARKER-secret") });
    const text = out.text();
    expect(text).not.toContain("MARKER");
    expect(text).not.toContain("\x1b[");
    const [first] = out.lines();
    expect(first).toBe(`03:04:05.678 INFO  Task started task_id=t1 execution_id=e1 image=ubuntu:22.04 note="has space" key=${REDACTED}`);
    expect(text).toContain(`ERROR boom err="bad ${REDACTED}"`);
    expect(text).toContain("at "); // the stack follows on the next lines
  });

  test("auto resolves by stdout TTY", () => {
    expect(resolveLogFormat("auto", false)).toBe("json");
    expect(resolveLogFormat("auto", true)).toBe("pretty");
    expect(resolveLogFormat("json", true)).toBe("json");
    expect(resolveLogFormat("pretty", false)).toBe("pretty");
  });
});

// Issue 15 item 8: a string the server sent reaches a log line bounded and escaped.
describe("serverText", () => {
  test("control, line-separator and bidi characters become \\u escapes; a pretty line carries none raw", () => {
    const hostile = "exec-1\u001b]0;pwned\u0007\r\n\u009b31m\u202eevil\u2028x";
    const text = serverText(hostile);
    expect(text).toBe("exec-1\\u001b]0;pwned\\u0007\\u000d\\u000a\\u009b31m\\u202eevil\\u2028x");
    const out = sink(true);
    createLogger({ format: "pretty", stream: out.stream, secrets: new SecretRegistry() }).error("invalid message", { execution_id: text });
    // The only ESC bytes are the logger's own colour codes: none comes from the field.
    expect(out.text().replaceAll(/\u001b\[[0-9;]*m/g, "")).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u202e]/);
  });
  test("long strings are cut to the bound, whole code points, with the full length noted", () => {
    const long = `${"🙂".repeat(150)}${"x".repeat(10_000)}`;
    const text = serverText(long, 200);
    expect(text.startsWith("🙂".repeat(150) + "x".repeat(50))).toBe(true);
    expect(text).toBe(`${"🙂".repeat(150)}${"x".repeat(50)}…(10150 chars)`);
    expect(serverText("a".repeat(200), 200)).toBe("a".repeat(200));
    expect(serverText("\ud800x")).toBe("\\ud800x");
  });
  test("ordinary ids pass unchanged", () => {
    for (const id of ["b9198522-08d6-46bb-892d-1a29d7ea84b0", "Run_42", "corp/agent:1.2@sha256:abc", "ünïcödé"]) expect(serverText(id)).toBe(id);
  });
});
