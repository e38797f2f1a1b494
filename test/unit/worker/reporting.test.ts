// Reporter (src/worker/reporting.ts): messages to Oz and the outcome recorded on the Job, with
// its retries (pauses doubling from the first, no jitter), which stop for a Job that is gone
// and once the worker stops accepting.
import { describe, expect, test } from "bun:test";
import type { ReportedOutcome } from "../../../src/kube/jobs.ts";
import { silentLogger } from "../../../src/telemetry/log.ts";
import { CANCEL_DELETE_ATTEMPTS, MARK_ATTEMPTS, Reporter, retryPause } from "../../../src/worker/reporting.ts";

function reporter(markFailures: Error[], opts: { accepting?: () => boolean; send?: () => Promise<void> } = {}) {
  const marks: string[] = [];
  const r = new Reporter({
    send: opts.send ?? (async () => undefined),
    markReported: async (name: string, outcome: ReportedOutcome, o?: { stopPods?: boolean }) => {
      marks.push(`${name} ${outcome.result}${o?.stopPods ? " stopPods" : ""}`);
      const err = markFailures.shift();
      if (err) throw err;
    },
    retryDelayMs: 1,
    accepting: opts.accepting ?? (() => true),
  });
  return { r, marks };
}

const unavailable = () => Object.assign(new Error("connect ECONNREFUSED"), { status: 0 });

describe("retryPause", () => {
  test("the pauses the loop always had: 0.5, 1, 2, 4, 8, 16 s for a reported outcome (about 30 s), 0.5, 1 s for a cancelled Job's delete", () => {
    const pauses = (attempts: number) => Array.from({ length: attempts - 1 }, (_, i) => retryPause(i + 1, 500));
    expect(pauses(MARK_ATTEMPTS)).toEqual([500, 1000, 2000, 4000, 8000, 16000]);
    expect(pauses(CANCEL_DELETE_ATTEMPTS)).toEqual([500, 1000]);
  });
});

describe("Reporter.markReported", () => {
  test("retried while the API server fails, up to MARK_ATTEMPTS tries", async () => {
    const ok = reporter([unavailable(), unavailable()]);
    await ok.r.markReported(silentLogger, "job-a", { result: "failed", reason: "container_exit" }, { stopPods: true });
    expect(ok.marks).toEqual(["job-a failed stopPods", "job-a failed stopPods", "job-a failed stopPods"]);

    const down = reporter(Array.from({ length: MARK_ATTEMPTS + 2 }, unavailable));
    await expect(down.r.markReported(silentLogger, "job-a", { result: "succeeded" })).rejects.toThrow("ECONNREFUSED");
    expect(down.marks).toHaveLength(MARK_ATTEMPTS);
  });

  test("a Job that is gone (404) is not retried; nor is anything once the worker stops accepting", async () => {
    const gone = reporter([Object.assign(new Error("jobs job-a not found"), { status: 404, notFound: true })]);
    await expect(gone.r.markReported(silentLogger, "job-a", { result: "succeeded" })).rejects.toThrow("not found");
    expect(gone.marks).toHaveLength(1);

    const stopping = reporter([unavailable()], { accepting: () => false });
    await expect(stopping.r.markReported(silentLogger, "job-a", { result: "succeeded" })).rejects.toThrow("ECONNREFUSED");
    expect(stopping.marks).toHaveLength(1);
  });

  test("markQuietly only logs a failure", async () => {
    const gone = reporter([Object.assign(new Error("gone"), { notFound: true })]);
    await gone.r.markQuietly(silentLogger, "job-a", { result: "succeeded" });
    expect(gone.marks).toHaveLength(1);
  });
});

describe("Reporter.send", () => {
  test("true once sent; false (not a rejection) when the port rejects or throws", async () => {
    const message = { type: "task_claimed", data: { task_id: "t" } };
    expect(await reporter([]).r.send(message, silentLogger)).toBe(true);
    expect(await reporter([], { send: () => Promise.reject(new Error("closed")) }).r.send(message, silentLogger)).toBe(false);
    const throwing = reporter([], {
      send: () => {
        throw new Error("closed");
      },
    });
    expect(await throwing.r.send(message, silentLogger)).toBe(false);
  });
});
