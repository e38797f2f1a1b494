import { describe, expect, test } from "bun:test";
import { MIN_SECRET_LENGTH, REDACTED, SecretRegistry } from "../../../src/telemetry/secrets.ts";

describe("redaction", () => {
  test("short or blank values are not registered", () => {
    const r = new SecretRegistry();
    expect(r.register("abc")).toBe(false);
    expect(r.register("    ")).toBe(false);
    expect(r.register(undefined)).toBe(false);
    expect(r.register("a".repeat(MIN_SECRET_LENGTH))).toBe(true);
    expect(r.redact("xx aaaa yy abc")).toBe(`xx ${REDACTED} yy abc`);
  });

  test("overlapping secrets: the longer one is replaced whole", () => {
    const r = new SecretRegistry();
    r.register("secret");
    r.register("secret-and-more");
    expect(r.redact("[secret-and-more] [secret]")).toBe(`[${REDACTED}] [${REDACTED}]`);
  });

  test("tens of thousands of values (a task may have any number of env_vars) are all redacted", () => {
    const r = new SecretRegistry();
    const values = Array.from({ length: 30_000 }, (_, i) => `value-${i}-${i * 7919}-0123456789abcdef0123456789abcdef`);
    r.registerAll(values);
    for (const i of [0, 999, 1000, 15_000, 29_999]) expect(r.redact(`a ${values[i]} b`)).toBe(`a ${REDACTED} b`);
    expect(r.contains("value-30000-0")).toBe(false);
  });

  test("regex metacharacters in secrets are literal", () => {
    const r = new SecretRegistry();
    r.register("a.b*c(d)[e]$");
    expect(r.redact("xa.b*c(d)[e]$y aXbbbc")).toBe(`x${REDACTED}y aXbbbc`);
  });
});
