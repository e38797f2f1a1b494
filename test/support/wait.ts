// The one poll-until-deadline helper of the tests: waits on a condition instead
// of sleeping in place of one. test/support/dispatch.ts and test/support/sandbox.ts
// re-export it, so `waitFor` from either of them is this function.
//
// Two call forms, both in use:
//
//   await waitFor("the pod to run", () => (running ? pod : undefined), { timeoutMs: 20_000 });
//     Described form. `undefined` means "not yet"; any other value (false and null
//     included) is the result. An error thrown by the probe fails the wait at once.
//     Defaults: 10 s deadline, 20 ms interval. `detail()` is appended to the
//     timeout message.
//
//   await waitFor(async () => (await getJson("job", "j")) ?? false, { what: "job j" });
//     Options form. `false`, `null` and `undefined` mean "not yet". An error thrown
//     by the probe also counts as "not yet"; the last one is reported if the
//     deadline passes (else the last value). Defaults: 30 s deadline, 200 ms interval.

export interface WaitOptions {
  /** Deadline (default 10 s in the described form, 30 s in the options form). */
  timeoutMs?: number;
  /** Poll interval (default 20 ms in the described form, 200 ms in the options form). */
  intervalMs?: number;
}

/** Options of the described form. */
export interface DescribedWaitOptions extends WaitOptions {
  /** More context for the timeout message (e.g. the last state seen), on its own line. */
  detail?: () => string;
}

/** Options of the options form. */
export interface WaitForOptions extends DescribedWaitOptions {
  /** What is awaited, for the timeout message. */
  what?: string;
}

/** Polls `probe` until it returns something other than undefined; its errors fail the wait at once. */
export function waitFor<T>(
  description: string,
  probe: () => T | undefined | Promise<T | undefined>,
  options?: DescribedWaitOptions,
): Promise<T>;
/** Polls `fn` until it returns something other than false, null or undefined; its errors count as "not yet". */
export function waitFor<T>(fn: () => T | Promise<T>, options?: WaitForOptions): Promise<Exclude<T, false | null | undefined>>;
export async function waitFor(
  first: string | (() => unknown),
  second?: (() => unknown) | WaitForOptions,
  third?: DescribedWaitOptions,
): Promise<unknown> {
  const described = typeof first === "string";
  const probe = (described ? second : first) as () => unknown;
  const options: WaitForOptions = (described ? third : (second as WaitForOptions | undefined)) ?? {};
  const what = described ? first : (options.what ?? "a condition");
  const timeoutMs = options.timeoutMs ?? (described ? 10_000 : 30_000);
  const intervalMs = options.intervalMs ?? (described ? 20 : 200);
  const notYet = (value: unknown) => value === undefined || (!described && (value === false || value === null));

  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  let lastValue: unknown;
  for (;;) {
    try {
      const value = await probe();
      lastValue = value;
      if (!notYet(value)) return value;
    } catch (error) {
      if (described) throw error;
      lastError = error;
    }
    if (performance.now() >= deadline) {
      const last = described ? "" : lastError ? `; last error: ${String(lastError)}` : `; last value: ${JSON.stringify(lastValue)}`;
      const detail = options.detail?.();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}${detail ? `\n${detail}` : ""}`);
    }
    await Bun.sleep(intervalMs);
  }
}
