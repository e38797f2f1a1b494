// A bound on requests in flight: acquire waits (abortably) for a free place, in arrival order.

export class RequestSlots {
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  /** Waits for a place; the returned function gives it back (calling it again does nothing). */
  async acquire(signal: AbortSignal | undefined): Promise<() => void> {
    while (this.inFlight >= this.max) {
      signal?.throwIfAborted();
      let wake!: () => void;
      const woken = new Promise<void>((r) => (wake = r));
      this.waiting.push(wake);
      const onAbort = () => wake();
      signal?.addEventListener("abort", onAbort, { once: true });
      await woken;
      signal?.removeEventListener("abort", onAbort);
      const i = this.waiting.indexOf(wake);
      if (i >= 0) this.waiting.splice(i, 1);
      // Aborted, perhaps just after a release woke it: pass the wake-up on (a spare one only makes the next look again).
      else if (signal?.aborted) this.waiting.shift()?.();
    }
    signal?.throwIfAborted();
    this.inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight--;
      this.waiting.shift()?.();
    };
  }
}
