// Reporting a task: the message to Oz, and the outcome recorded on its Job (retried while the
// worker runs, so a restarted worker never reports an outcome Oz already has).
import type { ReportedOutcome } from "../kube/jobs.ts";
import type { Logger } from "../telemetry/log.ts";
import { errorText } from "../util/errors.ts";
import { nextBackoff, sleep } from "../util/timers.ts";

/** The way out to Oz; resolves once the message has left the process (or was queued for a reconnect). */
export type Send = (message: { type: string; data: object }) => Promise<void>;

/** Tries to record a reported outcome on its Job (pauses 0.5, 1, 2, 4, 8, 16 s: about 30 s). */
export const MARK_ATTEMPTS = 7;
/** Tries to delete a cancelled task's Job (pauses 0.5, 1 s) before stopping its pods instead. */
export const CANCEL_DELETE_ATTEMPTS = 3;
/** The first pause before retrying by default (doubles). */
export const DEFAULT_RETRY_DELAY_MS = 500;

export interface ReporterOptions {
  send: Send;
  markReported(name: string, outcome: ReportedOutcome, opts?: { stopPods?: boolean }): Promise<unknown>;
  /** First pause before a retry (doubles, no jitter). */
  retryDelayMs: number;
  /** Retries stop once the worker stops accepting (it is shutting down). */
  accepting: () => boolean;
}

/** A Job that is gone (404) has nothing to record and is not retried. */
export function isNotFound(err: unknown): boolean {
  return (err as { notFound?: unknown } | undefined)?.notFound === true;
}

/** The pause before retry `attempt` (1-based): retryDelayMs doubled per attempt; the attempt count bounds it. */
export function retryPause(attempt: number, retryDelayMs: number): number {
  return nextBackoff(attempt - 1, { initialMs: retryDelayMs, maxMs: Number.POSITIVE_INFINITY, jitter: 0 });
}

export class Reporter {
  readonly #opts: ReporterOptions;

  constructor(options: ReporterOptions) {
    this.#opts = options;
  }

  /** True once the message left the process; false when it was dropped (already logged). */
  send(message: { type: string; data: object }, log: Logger): Promise<boolean> {
    let sent: Promise<void>;
    try {
      sent = this.#opts.send(message);
    } catch (err) {
      // A throwing port must not leave the task stuck half-finished.
      sent = Promise.reject(err);
    }
    return sent.then(
      () => true,
      (err: unknown) => {
        log.error("sending to Oz failed", { type: message.type, error: errorText(err) });
        return false;
      },
    );
  }

  /**
   * Records the reported outcome on the Job, retried for about 30 s while the worker runs: an
   * outcome Oz has but the Job does not record (the API server restarting just then) would be
   * reported again by a restarted worker. A Job that is gone (404) has nothing to record.
   */
  async markReported(log: Logger, name: string, record: ReportedOutcome, opts?: { stopPods?: boolean }): Promise<void> {
    await this.retry(log, "recording the reported outcome on the Job", name, MARK_ATTEMPTS, () => this.#opts.markReported(name, record, opts));
  }

  /** markReported, with a failure only logged. */
  async markQuietly(log: Logger, name: string, record: ReportedOutcome): Promise<void> {
    try {
      await this.markReported(log, name, record);
    } catch (err) {
      log.warn("recording the reported outcome on the Job failed", { job: name, error: errorText(err) });
    }
  }

  /** Calls `call` up to `attempts` times (pauses from retryDelayMs, doubling) while the worker runs; a Job that is gone (404) is not retried. */
  async retry(log: Logger, what: string, name: string, attempts: number, call: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await call();
        return;
      } catch (err) {
        if (isNotFound(err) || attempt >= attempts || !this.#opts.accepting()) throw err;
        log.warn(`${what} failed; retrying`, { job: name, attempt, error: errorText(err) });
        await sleep(retryPause(attempt, this.#opts.retryDelayMs));
      }
    }
  }
}
