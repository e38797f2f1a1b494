import { createHash } from "node:crypto";
import { describe, expect, test } from "bun:test";
import {
  executionHashSelector,
  preflightJobName,
  REPORTED_OUTCOME_ANNOTATION,
  sanitizeLabelValue,
  sanitizeNameFragment,
  shortHash,
  taskJobName,
  taskLabels,
  MAX_SECRET_KEY_LENGTH,
  taskSecretKeyFor,
  taskSecretNameFor,
  workerHashSelector,
  workerTaskJobsSelector,
} from "../../../src/core/naming.ts";
import { EXECUTION_ID, TASK_ID } from "./fixtures.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Small deterministic PRNG so the property test is reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const ALPHABET = "aZ09-_.!/ :Ééİ\u212A🙂\u0000-----";
function randomString(next: () => number, max: number): string {
  const len = Math.floor(next() * max);
  const chars = [...ALPHABET];
  let out = "";
  for (let i = 0; i < len; i++) out += chars[Math.floor(next() * chars.length)];
  return out;
}

describe("shortHash", () => {
  test("is the first 8 bytes of SHA-256 as hex", () => {
    expect(shortHash("")).toBe("e3b0c44298fc1c14");
    expect(shortHash("abc")).toBe("ba7816bf8f01cfea");
    expect(shortHash(TASK_ID)).toMatch(/^[0-9a-f]{16}$/);
  });
  test("hashes UTF-8 bytes", () => {
    expect(shortHash("é")).not.toBe(shortHash("e"));
  });
});

describe("taskJobName", () => {
  test("UUID run and execution ids keep the whole run id and the last 8 of the execution", () => {
    expect(taskJobName(TASK_ID, EXECUTION_ID)).toBe(`oz-task-${TASK_ID}-exec-5a4b3c21`);
  });
  const hashed = (taskId: string, executionId: string) => shortHash(JSON.stringify([taskId, executionId])).slice(0, 10);
  test("a task id that sanitizing changes: lowercased, '-' for the rest, and a hash of both ids as the execution part", () => {
    expect(taskJobName("Run_ABC.def", "EXEC/12345678")).toBe(`oz-task-run-abc-def-exec-${hashed("Run_ABC.def", "EXEC/12345678")}`);
  });
  test("execution ids shorter than 8 are used whole", () => {
    expect(taskJobName("r1", "e1")).toBe("oz-task-r1-exec-e1");
  });
  test("an execution tail with '-' or other characters is hashed, not trimmed", () => {
    expect(taskJobName("run", "abc-123-xyz!!!")).toBe(`oz-task-run-exec-${hashed("run", "abc-123-xyz!!!")}`);
    expect(taskJobName("run", "abc-1234")).toBe(`oz-task-run-exec-${hashed("run", "abc-1234")}`);
  });
  test("ids with no usable characters fall back to 'run' and a hash", () => {
    expect(taskJobName("!!!", "???")).toBe(`oz-task-run-exec-${hashed("!!!", "???")}`);
    expect(taskJobName("", "")).toBe(`oz-task-run-exec-${hashed("", "")}`);
  });
  test("a blank execution id falls back to the task id", () => {
    expect(taskJobName("run1", "")).toBe("oz-task-run1-exec-run1");
    expect(taskJobName("run1", " ")).toBe(taskJobName("run1", "run1"));
  });
  test("a long run id is cut so the name is exactly 63, with a hash as the execution part", () => {
    const name = taskJobName("a".repeat(100), "e".repeat(20));
    expect(name).toBe(`oz-task-${"a".repeat(39)}-exec-${hashed("a".repeat(100), "e".repeat(20))}`);
    expect(name.length).toBe(63);
  });
  test("a cut that ends on '-' is trimmed, never leaving '--exec'", () => {
    const id = `${"a".repeat(38)}-${"b".repeat(30)}`;
    expect(taskJobName(id, "12345678")).toBe(`oz-task-${"a".repeat(38)}-exec-${hashed(id, "12345678")}`);
  });
  test("a run id that is all separators after the cut falls back to 'run'", () => {
    expect(taskJobName(`${"-".repeat(60)}x`, "12345678")).toBe(`oz-task-x-exec-${hashed(`${"-".repeat(60)}x`, "12345678")}`);
    expect(taskJobName("___", "12345678")).toBe(`oz-task-run-exec-${hashed("___", "12345678")}`);
  });
  // Issue 15 item 5: sanitising and cutting must not give two executions one Job name.
  test("ids that sanitise alike (Run_42 vs run-42, no execution id) get different Job names", () => {
    const a = taskJobName("Run_42", "Run_42");
    const b = taskJobName("run-42", "run-42");
    expect(a).not.toBe(b);
    expect(a).toMatch(DNS_LABEL);
    expect(b).toMatch(DNS_LABEL);
    // Long task ids that differ only past the cut, and execution ids that differ only in case.
    const long = "t".repeat(60);
    expect(taskJobName(`${long}-1`, "e1")).not.toBe(taskJobName(`${long}-2`, "e1"));
    expect(taskJobName("run", "Exec-A")).not.toBe(taskJobName("run", "exec-a"));
    expect(taskJobName("run", "a/b")).not.toBe(taskJobName("run", "a.b"));
  });
  test("property: distinct (task id, execution id) pairs get distinct Job names", () => {
    const next = rng(15);
    const seen = new Map<string, string>();
    for (let i = 0; i < 5000; i++) {
      // A small alphabet so that sanitised forms collide often.
      const pick = (n: number) => Array.from({ length: 1 + Math.floor(next() * n) }, () => "aA_-./"[Math.floor(next() * 6)]).join("");
      const t = pick(6);
      const e = next() < 0.3 ? t : pick(4);
      const key = JSON.stringify([t, e]);
      const name = taskJobName(t, e);
      const other = seen.get(name);
      if (other !== undefined && other !== key) throw new Error(`${key} and ${other} both give ${name}`);
      seen.set(name, key);
    }
  });
  test("property: always a DNS-1123 label of at most 63 characters", () => {
    const next = rng(42);
    for (let i = 0; i < 2000; i++) {
      const name = taskJobName(randomString(next, 120), randomString(next, 40));
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(DNS_LABEL);
      expect(name.startsWith("oz-task-")).toBe(true);
    }
  });
});

describe("sanitizeNameFragment", () => {
  test("maps like Go's per-rune lowercase", () => {
    expect(sanitizeNameFragment("İD")).toBe("id"); // İ lowercases to i (+ dot dropped)
    expect(sanitizeNameFragment("\u212Aey")).toBe("key"); // Kelvin sign
    expect(sanitizeNameFragment("🙂ab")).toBe("ab"); // one '-' per code point, trimmed
    expect(sanitizeNameFragment("a🙂b")).toBe("a-b");
  });
});

describe("sanitizeLabelValue", () => {
  test("keeps [a-z0-9._-], lowercases, trims separators", () => {
    expect(sanitizeLabelValue("Worker_One.Prod")).toBe("worker_one.prod");
    expect(sanitizeLabelValue("--x--")).toBe("x");
    expect(sanitizeLabelValue("._a b_.")).toBe("a-b");
    expect(sanitizeLabelValue("café")).toBe("caf");
  });
  test("empty or unusable input becomes 'unknown'", () => {
    expect(sanitizeLabelValue("")).toBe("unknown");
    expect(sanitizeLabelValue("!!!")).toBe("unknown");
    expect(sanitizeLabelValue("._-")).toBe("unknown");
  });
  test("long values are cut to 63 and trimmed again", () => {
    expect(sanitizeLabelValue("a".repeat(80))).toBe("a".repeat(63));
    expect(sanitizeLabelValue(`${"a".repeat(62)}.bcd`)).toBe("a".repeat(62));
  });
  test("property: always a valid label value of at most 63", () => {
    const next = rng(7);
    for (let i = 0; i < 2000; i++) {
      const value = sanitizeLabelValue(randomString(next, 100));
      expect(value.length).toBeGreaterThan(0);
      expect(value.length).toBeLessThanOrEqual(63);
      expect(value).toMatch(LABEL_VALUE);
    }
  });
});

describe("sanitizing: ids already in the kept alphabet", () => {
  // The mapping spelled out per code point (Go's per-rune lowercase, the rest '-', separators trimmed).
  const perCodePoint = (value: string, keep: RegExp, trim: string): string => {
    let out = "";
    for (const ch of value) {
      const c = String.fromCodePoint(ch.toLowerCase().codePointAt(0)!);
      out += keep.test(c) ? c : "-";
    }
    let start = 0;
    let end = out.length;
    while (start < end && trim.includes(out[start]!)) start++;
    while (end > start && trim.includes(out[end - 1]!)) end--;
    return out.slice(start, end);
  };
  test("property: the same result as the per-code-point mapping, inside and outside [a-z0-9._-]", () => {
    const next = rng(11);
    const kept = "ab09-_.";
    for (let i = 0; i < 3000; i++) {
      // Half the inputs only from the kept alphabet (the shortcut), half with anything.
      const value = i % 2 === 0 ? Array.from({ length: Math.floor(next() * 70) }, () => kept[Math.floor(next() * kept.length)]).join("") : randomString(next, 70);
      expect(sanitizeNameFragment(value)).toBe(perCodePoint(value, /^[a-z0-9]$/, "-"));
      const label = perCodePoint(value, /^[a-z0-9._-]$/, "-_.");
      const cut = label.length > 63 ? perCodePoint(label.slice(0, 63), /^[a-z0-9._-]$/, "-_.") : label;
      expect(sanitizeLabelValue(value)).toBe(cut === "" ? "unknown" : cut);
    }
  });
  test("a lowercase UUID is its own name fragment and label value", () => {
    expect(sanitizeNameFragment(TASK_ID)).toBe(TASK_ID);
    expect(sanitizeLabelValue(EXECUTION_ID)).toBe(EXECUTION_ID);
  });
});

describe("labels and selectors", () => {
  test("taskLabels hashes each worker id it is given (the worker's hash is computed once per id)", () => {
    expect(taskLabels("w-a", "t", "e")["oz-worker-hash"]).toBe(shortHash("w-a"));
    expect(taskLabels("w-b", "t", "e")["oz-worker-hash"]).toBe(shortHash("w-b"));
    expect(taskLabels("w-a", "t", "e")["oz-worker-hash"]).toBe(shortHash("w-a"));
  });
  test("taskLabels carries sanitized ids and hashes of the raw ids", () => {
    expect(taskLabels("My Worker", "Task/1", "Exec/1")).toEqual({
      "oz-worker-id": "my-worker",
      "oz-worker-hash": shortHash("My Worker"),
      "oz-task-id": "task-1",
      "oz-task-hash": shortHash("Task/1"),
      "oz-execution-id": "exec-1",
      "oz-execution-hash": shortHash("Exec/1"),
    });
  });
  test("taskLabels falls back to the task id for a blank execution id", () => {
    const labels = taskLabels("w", "task-9", "  ");
    expect(labels["oz-execution-id"]).toBe("task-9");
    expect(labels["oz-execution-hash"]).toBe(shortHash("task-9"));
  });
  test("selectors", () => {
    expect(workerHashSelector("w1")).toBe(`oz-worker-hash=${shortHash("w1")}`);
    expect(executionHashSelector("e1")).toBe(`oz-execution-hash=${shortHash("e1")}`);
    expect(workerTaskJobsSelector("w1")).toBe(`oz-worker-hash=${shortHash("w1")},!oz-preflight`);
  });
  test("annotation key for reported outcomes", () => {
    expect(REPORTED_OUTCOME_ANNOTATION).toBe("oz.warp.dev/reported-outcome");
  });
});

describe("other names", () => {
  test("preflight Job name", () => {
    expect(preflightJobName("w1", 1717171717171717171n)).toBe(
      `oz-preflight-${shortHash("w1")}-1717171717171717171`,
    );
    expect(preflightJobName("w1", 12345)).toBe(`oz-preflight-${shortHash("w1")}-12345`);
    const long = preflightJobName("w1", 10n ** 60n);
    expect(long.length).toBe(63);
    expect(long).toMatch(DNS_LABEL);
  });
  test("task Secret name", () => {
    expect(taskSecretNameFor("oz-task-r-exec-e")).toBe("oz-task-r-exec-e-env");
  });
});

/** The API server's rule for Secret and ConfigMap data keys (IsConfigMapKey). */
function isSecretKey(key: string): boolean {
  return key.length > 0 && key.length <= MAX_SECRET_KEY_LENGTH && /^[-._a-zA-Z0-9]+$/.test(key) && key !== "." && !key.startsWith("..");
}

describe("taskSecretKeyFor", () => {
  test("names Secret keys allow are their own key (so earlier Jobs' keys stay the same)", () => {
    for (const name of ["GITHUB_TOKEN", "_UNDERSCORE", "MY-TOKEN", "1START", "a"]) expect(taskSecretKeyFor(name)).toBe(name);
  });
  test("every other byte becomes .XX, '.' included", () => {
    expect(taskSecretKeyFor("my.dotted")).toBe("my.2edotted");
    expect(taskSecretKeyFor("with space")).toBe("with.20space");
    expect(taskSecretKeyFor("A=B")).toBe("A.3dB");
    expect(taskSecretKeyFor("É")).toBe(".c3.89");
    expect(taskSecretKeyFor("..")).toBe(".2e.2e");
  });
  test("names past 253 characters: a 150-character prefix, '..' and the SHA-256 of the name", () => {
    const long = "A".repeat(300);
    const key = taskSecretKeyFor(long);
    expect(key).toBe(`${"A".repeat(150)}..${createHash("sha256").update(long).digest("hex")}`);
    expect(taskSecretKeyFor("A".repeat(253))).toBe("A".repeat(253));
    expect(taskSecretKeyFor(".".repeat(100))).toHaveLength(150 + 2 + 64);
  });
  test("property: always a valid Secret key, and distinct names never share one", () => {
    const next = rng(18);
    const seen = new Map<string, string>();
    const names = [...Array.from({ length: 5000 }, () => randomString(next, 120)), "A".repeat(300), `${"A".repeat(300)}B`, "A..", "A.2e", "A-2e"];
    for (const name of names) {
      if (name === "") continue;
      const key = taskSecretKeyFor(name);
      expect(isSecretKey(key)).toBe(true);
      const other = seen.get(key);
      if (other !== undefined) expect(other).toBe(name);
      seen.set(key, name);
    }
    expect(seen.size).toBeGreaterThan(4000);
  });
});
