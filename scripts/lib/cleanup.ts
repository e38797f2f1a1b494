// Undo what a script started, in reverse order, once: at the end, on an error,
// or on Ctrl-C / SIGTERM (a second Ctrl-C exits at once).

export class Cleanup {
  private readonly steps: { what: string; fn: () => Promise<void> | void }[] = [];
  private running: Promise<void> | undefined;
  private signals = 0;

  private readonly say: (line: string) => void;
  constructor(say: (line: string) => void) {
    this.say = say;
  }

  add(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop()!;
        try {
          await step.fn();
        } catch (err) {
          this.say(`cleanup: ${step.what} failed: ${(err as Error).message}`);
        }
      }
    })();
    return this.running;
  }

  /** On SIGINT/SIGTERM: run the steps, then exit 130 (SIGINT) or 143. */
  onSignals(onFirst?: () => void): void {
    const handler = (signal: NodeJS.Signals) => {
      this.signals++;
      if (this.signals > 1) process.exit(signal === "SIGINT" ? 130 : 143);
      this.say(`${signal}: stopping what was started (again to exit at once)`);
      onFirst?.();
      void this.run().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  }
}

/** Races `promise` against a deadline, rejecting with `what` when it passes. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
