// The worker's outgoing messages between send() and the OS: the ordered, bounded
// outbox, and the in-flight accounting of one socket. No I/O: the connection
// hands entries to its socket and reports the socket's bufferedAmount here.
//
// Outbox policy. Messages sent while disconnected (or faster than the socket
// drains) wait in the outbox and are written in order once connected. A
// message leaves the outbox when it is handed to the socket; if the connection
// then dies while its bytes are still in the socket's send buffer (they never
// reached the OS, so the server cannot have read them), it goes back to the
// front of the outbox. Bytes already handed to the OS when a connection dies
// cannot be accounted for (the protocol has no acknowledgements).
// When the outbox holds `limit` messages, the OLDEST message that is not
// a terminal outcome (task_completed / task_failed; see `protectedTypes`) is
// dropped, else the oldest message. Claims and rejections matter less: a
// lost claim leaves a task the server re-assigns or that its outcome settles,
// a lost outcome leaves a task that never ends. The connection logs every drop
// and counts it in its stats.

/** Why sendAndWait() rejected: the message will never be sent. */
export class OzMessageDropped extends Error {
  override readonly name = "OzMessageDropped";
  readonly reason: "outbox_full" | "stopped" | "unserialisable";
  readonly type: string;
  readonly taskId: string | undefined;
  constructor(
    reason: "outbox_full" | "stopped" | "unserialisable",
    type: string,
    taskId: string | undefined,
  ) {
    super(
      reason === "outbox_full"
        ? `the ${type} message was dropped: the outbox is full`
        : reason === "stopped"
          ? `the ${type} message was not sent: the connection is stopped`
          : `the ${type} message cannot be serialised`,
    );
    this.reason = reason;
    this.type = type;
    this.taskId = taskId;
  }
}

export interface OutboxEntry {
  type: string;
  taskId?: string;
  /** The serialised frame. */
  text: string;
  /** sendAndWait()'s promise. */
  waiter?: { resolve(): void; reject(err: Error): void };
}

/** Ordered, bounded queue of messages waiting for a socket. */
export class Outbox {
  readonly limit: number;
  readonly #protected: ReadonlySet<string>;
  #entries: OutboxEntry[] = [];

  /** `limit` >= 1; `protectedTypes` are evicted only when nothing else is queued. */
  constructor(limit: number, protectedTypes: Iterable<string>) {
    this.limit = limit;
    this.#protected = new Set(protectedTypes);
  }

  get length(): number {
    return this.#entries.length;
  }

  /** The queued entries, oldest first. */
  get entries(): readonly OutboxEntry[] {
    return this.#entries;
  }

  /** The oldest entry: the next one to write. */
  peek(): OutboxEntry | undefined {
    return this.#entries[0];
  }

  /** Remove the oldest entry: it was handed to the socket. */
  shift(): OutboxEntry | undefined {
    return this.#entries.shift();
  }

  /** Queue at the back. Returns the entries the bound evicted (their sendAndWait() already rejected). */
  push(entry: OutboxEntry): OutboxEntry[] {
    this.#entries.push(entry);
    return this.#enforceBound();
  }

  /** Put entries back at the front, in their order. Returns the entries the bound evicted. */
  requeue(entries: readonly OutboxEntry[]): OutboxEntry[] {
    this.#entries.unshift(...entries);
    return this.#enforceBound();
  }

  /** The connection stopped: reject every queued sendAndWait() (the entries stay, as unsent). */
  abandon(): void {
    for (const e of this.#entries) {
      e.waiter?.reject(new OzMessageDropped("stopped", e.type, e.taskId));
      delete e.waiter;
    }
  }

  #enforceBound(): OutboxEntry[] {
    const evicted: OutboxEntry[] = [];
    while (this.#entries.length > this.limit) {
      let i = this.#entries.findIndex((e) => !this.#protected.has(e.type));
      if (i < 0) i = 0;
      const victim = this.#entries.splice(i, 1)[0]!;
      victim.waiter?.reject(new OzMessageDropped("outbox_full", victim.type, victim.taskId));
      evicted.push(victim);
    }
    return evicted;
  }
}

interface InflightEntry {
  entry: OutboxEntry;
  /** Value of `written` once this message's bytes were counted. */
  end: number;
  deadline: number;
}

/**
 * In-flight accounting for one socket: the messages handed to it whose bytes
 * may still sit in its send buffer. Bytes are counted as the socket counts them
 * into bufferedAmount, so `written - bufferedAmount` bytes have left the process.
 */
export class InFlight {
  /** Bytes counted into the socket's bufferedAmount so far. */
  #written = 0;
  #entries: InflightEntry[] = [];

  get length(): number {
    return this.#entries.length;
  }

  /** Deadline of the oldest message still in the socket's buffer. */
  get oldestDeadline(): number | undefined {
    return this.#entries[0]?.deadline;
  }

  /** Bytes that share the socket's buffer but carry no message (pings on some runtimes). */
  countBytes(bytes: number): void {
    this.#written += bytes;
  }

  /** `entry` was handed to the socket, costing `bytes` of its buffer; it must leave by `deadline`. */
  add(entry: OutboxEntry, bytes: number, deadline: number): void {
    this.#written += bytes;
    this.#entries.push({ entry, end: this.#written, deadline });
  }

  /** The socket holds `buffered` unsent bytes: settle the messages that left the process. */
  settle(buffered: number): void {
    if (buffered <= 0) {
      retire(this.#entries.splice(0));
      return;
    }
    const flushed = this.#written - buffered;
    let n = 0;
    while (n < this.#entries.length && this.#entries[n]!.end <= flushed) n++;
    if (n > 0) retire(this.#entries.splice(0, n));
  }

  /**
   * The socket died holding `buffered` unsent bytes: settle the messages that
   * left the process and return, oldest first, those that never did. Empties the tracker.
   */
  takeUnsent(buffered: number): OutboxEntry[] {
    this.settle(buffered);
    return this.#entries.splice(0).map((i) => i.entry);
  }
}

/** These messages left the process: settle their sendAndWait() promises. */
function retire(done: InflightEntry[]): void {
  for (const i of done) {
    i.entry.waiter?.resolve();
    delete i.entry.waiter;
  }
}
