import { describe, expect, test } from "bun:test";
import { isNonNegativeQuantity, isQuantity, parseGoDuration } from "../../../src/config/units.ts";

describe("parseGoDuration (Go time.ParseDuration grammar)", () => {
  test.each([
    ["0", 0],
    ["0s", 0],
    ["30s", 30_000],
    ["2m", 120_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    [".5s", 500],
    ["5.s", 5_000],
    ["300ms", 300],
    ["1us", 0.001],
    ["1µs", 0.001],
    ["1μs", 0.001],
    ["1000ns", 0.001],
    ["1m30s500ms", 90_500],
    ["+2m", 120_000],
    ["-5s", -5_000],
  ])("%s → %p ms", (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  test.each(["", "30", "30 s", " 30s", "30s ", "1d", "s", ".s", ".", "1h1", "1.2.3s", "30S", "1e3s", "9999999999h", "--1s"])(
    "rejects %p",
    (text) => {
      expect(parseGoDuration(text)).toBeUndefined();
    },
  );
});

describe("Kubernetes quantities", () => {
  test.each(["2", "500m", "4Gi", "1e3", "1E3", "1e+3", "1e-3", "1.5", ".5", "5.", "0", "1Ki", "1Mi", "1Ti", "1Pi", "1Ei", "1k", "1M", "1G", "1T", "1P", "1E", "+1"])(
    "accepts %p",
    (q) => {
      expect(isQuantity(q)).toBe(true);
      expect(isNonNegativeQuantity(q)).toBe(true);
    },
  );

  test.each(["", "Gi", "1 Gi", "1gi", "1KB", "lots", "1e", "1e3m", "1.5.5", "0x10", "1Gib"])("rejects %p", (q) => {
    expect(isQuantity(q)).toBe(false);
  });

  test("numbers are quantities; negative ones are not allowed for resources", () => {
    expect(isNonNegativeQuantity(2)).toBe(true);
    expect(isNonNegativeQuantity(0.5)).toBe(true);
    expect(isNonNegativeQuantity(-1)).toBe(false);
    expect(isQuantity("-1")).toBe(true);
    expect(isNonNegativeQuantity("-1")).toBe(false);
    expect(isNonNegativeQuantity(Number.NaN)).toBe(false);
  });
});
