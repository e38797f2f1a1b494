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

  // With no other values registered, a search runs as an indexOf per form; with 60 others, as
  // one pass over the text with the index of starts.
  test.each([0, 60])("property: the same text as trying every registered form, longest first, at each position from the left, while values come and go (%d other values)", (others) => {
    // A small alphabet makes overlaps, shared starts and secrets inside secrets common.
    let seed = 20261206;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const word = (min: number, max: number) => Array.from({ length: min + Math.floor(next() * (max - min + 1)) }, () => "ab\"c%é"[Math.floor(next() * 6)]).join("");
    const reference = (text: string, values: Set<string>) => {
      const forms = [...values].flatMap((v) => [v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v)]).sort((a, b) => b.length - a.length);
      let out = "";
      for (let at = 0; at < text.length; ) {
        const form = forms.find((f) => text.startsWith(f, at));
        if (form) {
          out += REDACTED;
          at += form.length;
        } else out += text[at++];
      }
      return out;
    };
    const r = new SecretRegistry();
    // Of letters the texts never hold.
    r.registerAll(Array.from({ length: others }, (_, i) => `xyz${i}`));
    const live = new Map<string, () => void>();
    for (let round = 0; round < 300; round++) {
      // Often a live value extended, so one registered value starts another.
      const base = [...live.keys()][Math.floor(next() * live.size)];
      const value = base && next() < 0.4 ? base + word(1, 3) : word(MIN_SECRET_LENGTH, 9);
      if (live.has(value)) {
        live.get(value)!();
        live.delete(value);
      } else live.set(value, r.registerAll([value]));
      const text = word(0, 60);
      const expected = reference(text, new Set(live.keys()));
      expect(r.redact(text)).toBe(expected);
      expect(r.contains(text)).toBe(expected !== text);
    }
    expect(live.size).toBeGreaterThan(20);
  });
});
