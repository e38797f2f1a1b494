import { describe, expect, test } from "bun:test";
import { RequestSlots } from "../../../src/kube/request-slots.ts";

describe("RequestSlots", () => {
  test("a request beyond the bound waits until a place is given back, and a double release frees only one", async () => {
    const slots = new RequestSlots(2);
    const a = await slots.acquire(undefined);
    await slots.acquire(undefined);
    let thirdIn = false;
    const third = slots.acquire(undefined).then((release) => {
      thirdIn = true;
      return release;
    });
    await Promise.resolve();
    expect(thirdIn).toBe(false);
    a();
    a();
    await third;
    expect(thirdIn).toBe(true);
    let fourthIn = false;
    void slots.acquire(undefined).then(() => (fourthIn = true));
    await new Promise((r) => setImmediate(r));
    expect(fourthIn).toBe(false);
  });

  test("an abort while waiting rejects with the signal's reason and leaves the place to the next", async () => {
    const slots = new RequestSlots(1);
    const release = await slots.acquire(undefined);
    const controller = new AbortController();
    const aborted = slots.acquire(controller.signal);
    const next = slots.acquire(undefined);
    controller.abort(new Error("gave up"));
    await expect(aborted).rejects.toThrow("gave up");
    release();
    expect(typeof (await next)).toBe("function");
  });
});
