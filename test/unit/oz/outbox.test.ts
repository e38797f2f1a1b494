// The outbox and the in-flight accounting without sockets: the connection's
// socket is replaced by the numbers it would report (bytes per send, bufferedAmount).
import { describe, expect, test } from "bun:test";
import { InFlight, Outbox, type OutboxEntry, OzMessageDropped } from "../../../src/oz/outbox.ts";
import { TERMINAL_MESSAGE_TYPES } from "../../../src/oz/connection.ts";

interface Settled {
  resolved: boolean;
  rejected?: OzMessageDropped;
}

/** An entry whose sendAndWait() outcome is recorded synchronously. */
function entry(type: string, taskId?: string): OutboxEntry & { settled: Settled[] } {
  const settled: Settled[] = [];
  const e: OutboxEntry & { settled: Settled[] } = {
    type,
    text: JSON.stringify({ type, data: taskId === undefined ? {} : { task_id: taskId } }),
    settled,
    waiter: {
      resolve: () => settled.push({ resolved: true }),
      reject: (err) => settled.push({ resolved: false, rejected: err as OzMessageDropped }),
    },
  };
  if (taskId !== undefined) e.taskId = taskId;
  return e;
}

function drain(box: Outbox): string[] {
  const out: string[] = [];
  for (let e = box.shift(); e; e = box.shift()) out.push(e.taskId ?? e.type);
  return out;
}

describe("Outbox", () => {
  test("keeps messages in the order they were queued", () => {
    const box = new Outbox(10, TERMINAL_MESSAGE_TYPES);
    for (const id of ["a", "b", "c"]) expect(box.push(entry("task_claimed", id))).toEqual([]);
    expect(box.length).toBe(3);
    expect(box.peek()?.taskId).toBe("a");
    expect(box.entries.map((e) => e.taskId)).toEqual(["a", "b", "c"]);
    expect(drain(box)).toEqual(["a", "b", "c"]);
    expect(box.length).toBe(0);
    expect(box.peek()).toBeUndefined();
  });

  test("over the bound the oldest message is evicted and its sendAndWait() rejected as outbox_full", () => {
    const box = new Outbox(2, TERMINAL_MESSAGE_TYPES);
    const a = entry("task_claimed", "a");
    box.push(a);
    box.push(entry("task_claimed", "b"));
    const evicted = box.push(entry("task_claimed", "c"));
    expect(evicted).toEqual([a]);
    expect(a.settled).toHaveLength(1);
    const err = a.settled[0]!.rejected;
    expect(err).toBeInstanceOf(OzMessageDropped);
    expect(err?.reason).toBe("outbox_full");
    expect(err?.type).toBe("task_claimed");
    expect(err?.taskId).toBe("a");
    expect(drain(box)).toEqual(["b", "c"]);
  });

  test("terminal outcomes are evicted last: the oldest other message goes first", () => {
    const box = new Outbox(3, TERMINAL_MESSAGE_TYPES);
    box.push(entry("task_completed", "done"));
    box.push(entry("task_claimed", "claim1"));
    box.push(entry("task_failed", "failed"));
    const evicted = box.push(entry("task_claimed", "claim2"));
    expect(evicted.map((e) => e.taskId)).toEqual(["claim1"]);
    const evicted2 = box.push(entry("task_rejected", "rej"));
    expect(evicted2.map((e) => e.taskId)).toEqual(["claim2"]);
    expect(drain(box)).toEqual(["done", "failed", "rej"]);
  });

  test("when only protected messages are queued, the oldest of them is evicted", () => {
    const box = new Outbox(2, TERMINAL_MESSAGE_TYPES);
    box.push(entry("task_completed", "x"));
    box.push(entry("task_failed", "y"));
    const evicted = box.push(entry("task_completed", "z"));
    expect(evicted.map((e) => e.taskId)).toEqual(["x"]);
    expect(drain(box)).toEqual(["y", "z"]);
  });

  test("protectedTypes replaces the default set", () => {
    const box = new Outbox(1, ["task_claimed"]);
    box.push(entry("task_claimed", "keep"));
    const evicted = box.push(entry("task_completed", "lose"));
    expect(evicted.map((e) => e.taskId)).toEqual(["lose"]);
    expect(drain(box)).toEqual(["keep"]);
  });

  test("requeue puts messages back at the front in their order, then applies the bound", () => {
    const box = new Outbox(3, TERMINAL_MESSAGE_TYPES);
    box.push(entry("task_claimed", "later"));
    expect(box.requeue([entry("task_claimed", "first"), entry("task_claimed", "second")])).toEqual([]);
    expect(box.entries.map((e) => e.taskId)).toEqual(["first", "second", "later"]);
    // Requeued messages are the oldest, so the bound takes them first (unless protected).
    const evicted = box.requeue([entry("task_completed", "outcome"), entry("task_claimed", "claim")]);
    expect(evicted.map((e) => e.taskId)).toEqual(["claim", "first"]);
    expect(drain(box)).toEqual(["outcome", "second", "later"]);
  });

  test("abandon rejects every queued sendAndWait() as stopped once; the messages stay counted", () => {
    const box = new Outbox(10, TERMINAL_MESSAGE_TYPES);
    const a = entry("task_claimed", "a");
    const b = entry("task_completed", "b");
    box.push(a);
    box.push(b);
    box.abandon();
    box.abandon();
    expect(box.length).toBe(2);
    for (const e of [a, b]) {
      expect(e.settled).toHaveLength(1);
      expect(e.settled[0]!.rejected?.reason).toBe("stopped");
      expect(e.settled[0]!.rejected?.taskId).toBe(e.taskId);
      expect(e.waiter).toBeUndefined();
    }
  });

  test("OzMessageDropped names the message type and why", () => {
    expect(new OzMessageDropped("outbox_full", "task_claimed", "t").message).toBe(
      "the task_claimed message was dropped: the outbox is full",
    );
    expect(new OzMessageDropped("stopped", "task_failed", undefined).message).toBe(
      "the task_failed message was not sent: the connection is stopped",
    );
    expect(new OzMessageDropped("unserialisable", "x", undefined).message).toBe("the x message cannot be serialised");
    expect(new OzMessageDropped("stopped", "x", undefined).name).toBe("OzMessageDropped");
  });
});

describe("InFlight", () => {
  test("settles messages, oldest first, as their bytes leave the socket's buffer", () => {
    const f = new InFlight();
    const a = entry("task_claimed", "a");
    const b = entry("task_claimed", "b");
    const c = entry("task_claimed", "c");
    f.add(a, 10, 1_000);
    f.add(b, 20, 2_000);
    f.add(c, 5, 3_000);
    expect(f.length).toBe(3);
    expect(f.oldestDeadline).toBe(1_000);

    f.settle(35); // nothing has left yet
    expect(f.length).toBe(3);
    expect(a.settled).toEqual([]);

    f.settle(25); // 10 bytes left: exactly a
    expect(a.settled).toEqual([{ resolved: true }]);
    expect(a.waiter).toBeUndefined();
    expect(b.settled).toEqual([]);
    expect(f.length).toBe(2);
    expect(f.oldestDeadline).toBe(2_000);

    f.settle(6); // one byte of b is still buffered
    expect(b.settled).toEqual([]);
    f.settle(5); // b's last byte left, none of c's did
    expect(b.settled).toEqual([{ resolved: true }]);
    expect(c.settled).toEqual([]);
    expect(f.length).toBe(1);

    f.settle(0); // an empty buffer settles everything
    expect(c.settled).toEqual([{ resolved: true }]);
    expect(f.length).toBe(0);
    expect(f.oldestDeadline).toBeUndefined();
  });

  test("bytes that are not messages (pings) count toward the buffer", () => {
    const f = new InFlight();
    const a = entry("task_claimed", "a");
    const b = entry("task_claimed", "b");
    f.add(a, 10, 1);
    f.countBytes(4);
    f.add(b, 10, 2);
    // 24 written; 10 buffered means 14 left: a and the ping, not b.
    f.settle(10);
    expect(a.settled).toEqual([{ resolved: true }]);
    expect(b.settled).toEqual([]);
    f.settle(1);
    expect(b.settled).toEqual([]);
  });

  test("takeUnsent settles what left and returns, in order, what never did", () => {
    const f = new InFlight();
    const [a, b, c] = [entry("task_claimed", "a"), entry("task_completed", "b"), entry("task_failed", "c")];
    f.add(a, 10, 1);
    f.add(b, 10, 2);
    f.add(c, 10, 3);
    const back = f.takeUnsent(15); // 15 of 30 bytes left: a whole, b partly
    expect(back.map((e) => e.taskId)).toEqual(["b", "c"]);
    expect(a.settled).toEqual([{ resolved: true }]);
    expect(b.settled).toEqual([]);
    expect(c.settled).toEqual([]);
    expect(b.waiter).toBeDefined();
    expect(f.length).toBe(0);
  });

  test("takeUnsent with an empty buffer settles everything and returns nothing", () => {
    const f = new InFlight();
    const a = entry("task_claimed", "a");
    f.add(a, 10, 1);
    expect(f.takeUnsent(0)).toEqual([]);
    expect(a.settled).toEqual([{ resolved: true }]);
    expect(f.length).toBe(0);
  });

  test("a message taken back and requeued keeps its waiter for the next connection", () => {
    const box = new Outbox(10, TERMINAL_MESSAGE_TYPES);
    const f1 = new InFlight();
    const a = entry("task_completed", "a");
    box.push(a);
    f1.add(box.shift()!, 10, 1);
    box.requeue(f1.takeUnsent(10));
    expect(box.peek()).toBe(a);
    const f2 = new InFlight();
    f2.add(box.shift()!, 10, 1);
    f2.settle(0);
    expect(a.settled).toEqual([{ resolved: true }]);
  });
});
