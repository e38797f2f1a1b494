/** Resolves after `ms`, or at once when `signal` aborts (never rejects); leaves no listener behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Fraction of the delay taken off at random (0..1); default 0.2. 0 = no jitter. */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (0-based): `initialMs` doubled per attempt up to
 * `maxMs`, less up to `jitter` of it at random, so many workers do not retry in step.
 */
export function nextBackoff(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const n = Number.isFinite(attempt) ? Math.max(0, Math.floor(attempt)) : 0;
  const initial = Math.max(0, options.initialMs);
  const max = Math.max(initial, options.maxMs);
  const base = Math.min(max, initial * 2 ** Math.min(n, 60));
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.2));
  let r = random();
  if (!(r >= 0)) r = 0;
  if (r >= 1) r = 1;
  return Math.max(0, Math.round(base * (1 - jitter * r)));
}

/**
 * `promise`, or a rejection with the signal's reason once it aborts (the promise itself keeps
 * running: the caller stops waiting, not the work). Without a signal, `promise` as it is.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
