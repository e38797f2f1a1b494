import { describe, expect, test } from "bun:test";
import { describeError, errorText } from "../../../src/util/errors.ts";
import { sleep, untilAborted } from "../../../src/util/timers.ts";
import { redactUrl, safeDecode } from "../../../src/util/url.ts";

describe("redactUrl", () => {
  test("drops user info and keeps the query unless asked", () => {
    expect(redactUrl("wss://u:p@oz.example/ws?a=1")).toBe("wss://oz.example/ws?a=1");
    expect(redactUrl("https://u:p@otel.example/v1?token=x", { dropQuery: true })).toBe("https://otel.example/v1");
  });
  test("an unparseable URL becomes the given placeholder", () => {
    expect(redactUrl("not a url")).toBe("<invalid url>");
    expect(redactUrl("not a url", { invalid: "<unparseable>" })).toBe("<unparseable>");
  });
});

describe("safeDecode", () => {
  test("decodes percent-encoding, and + only in form encoding", () => {
    expect(safeDecode("a%20b+c")).toBe("a b+c");
    expect(safeDecode("a%20b+c", { plusAsSpace: true })).toBe("a b c");
  });
  test("returns invalid encoding unchanged", () => {
    expect(safeDecode("100%")).toBe("100%");
  });
});

describe("error text", () => {
  test("errorText is the message, or the value as text", () => {
    expect(errorText(new Error("boom"))).toBe("boom");
    expect(errorText(42)).toBe("42");
  });
  test("describeError names the code and the causes' codes", () => {
    const cause = Object.assign(new Error("connect refused"), { code: "ECONNREFUSED" });
    expect(describeError(new Error("fetch failed", { cause }))).toBe("fetch failed: connect refused (ECONNREFUSED)");
  });
});

describe("sleep", () => {
  test("an abort ends it at once and leaves no listener", async () => {
    const ctl = new AbortController();
    let listeners = 0;
    const signal = ctl.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...a: Parameters<typeof add>) => (listeners++, add(...a))) as typeof add;
    signal.removeEventListener = ((...a: Parameters<typeof remove>) => (listeners--, remove(...a))) as typeof remove;
    const started = performance.now();
    const slept = sleep(60_000, signal);
    ctl.abort();
    await slept;
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(listeners).toBe(0);
  });
});

describe("untilAborted", () => {
  test("settles as the promise does, or rejects with the signal's reason once it aborts", async () => {
    expect(await untilAborted(Promise.resolve(1), undefined)).toBe(1);
    expect(await untilAborted(Promise.resolve(2), new AbortController().signal)).toBe(2);
    await expect(untilAborted(Promise.reject(new Error("work failed")), new AbortController().signal)).rejects.toThrow("work failed");
    const ctl = new AbortController();
    const pending = untilAborted(new Promise<never>(() => {}), ctl.signal);
    ctl.abort(new Error("deadline"));
    await expect(pending).rejects.toThrow("deadline");
    await expect(untilAborted(Promise.resolve(3), AbortSignal.abort(new Error("already")))).rejects.toThrow("already");
  });
});
