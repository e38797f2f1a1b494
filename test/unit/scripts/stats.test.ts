import { describe, expect, test } from "bun:test";
import { percentile, round, summarize } from "../../../scripts/lib/stats.ts";

describe("percentile (nearest rank)", () => {
  test("is an observed value", () => {
    const v = [15, 20, 35, 40, 50];
    expect(percentile(v, 5)).toBe(15);
    expect(percentile(v, 30)).toBe(20);
    expect(percentile(v, 40)).toBe(20);
    expect(percentile(v, 50)).toBe(35);
    expect(percentile(v, 100)).toBe(50);
  });

  test("does not need sorted input and ignores non-finite values", () => {
    expect(percentile([3, NaN, 1, Infinity, 2], 50)).toBe(2);
  });

  test("p99 of 100 samples is the 99th smallest", () => {
    const v = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
    expect(percentile(v, 99)).toBe(99);
    expect(percentile(v, 95)).toBe(95);
  });

  test("p99 of few samples is the largest", () => {
    expect(percentile([1, 2, 3], 99)).toBe(3);
  });

  test("one sample is every percentile; none is undefined", () => {
    expect(percentile([7], 1)).toBe(7);
    expect(percentile([], 50)).toBeUndefined();
  });

  test("rejects percentiles outside (0, 100]", () => {
    expect(() => percentile([1], 0)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });
});

describe("summarize", () => {
  test("rounds and keeps negative latencies", () => {
    expect(summarize([-1.26, 2.04, 3.15])).toEqual({ p50: 2, p95: 3.2, p99: 3.2 });
  });

  test("null without samples", () => {
    expect(summarize([])).toEqual({ p50: null, p95: null, p99: null });
  });

  test("round", () => {
    expect(round(1.005, 1)).toBe(1);
    expect(round(2.345, 2)).toBe(2.35);
    expect(round(12.5)).toBe(13);
  });
});
