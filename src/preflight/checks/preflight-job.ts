// Check 4: the real preflight Job. Watches for its pods and events are opened first, then the
// Job is created, and the verdict is taken the moment the watches show it (decide.ts). The Job
// is deleted in every case (propagationPolicy Background, so its pod goes too): pass, fail,
// timeout, error, and the caller's abort (Ctrl-C) alike.
import type { V1Job } from "@kubernetes/client-node";
import { buildPreflightJob } from "../../core/preflight-spec.ts";
import { deadlineSignal } from "../../kube/client.ts";
import { kubeRequest, type RawResult } from "../../kube/raw.ts";
import { type RawWatchEvent, watchStream } from "../../kube/watch-stream.ts";
import type { CheckContext } from "../context.ts";
import { decideAtTimeout, decidePreflight, type EventLike, type PodLike, type PreflightObservation, type Verdict } from "../decide.ts";
import type { CheckResult } from "../types.ts";
import { explainCreateError } from "./api-errors.ts";
import { errorText } from "../../util/errors.ts";
import { sleep } from "../../util/timers.ts";

export type PreflightJobResult = Omit<CheckResult, "name" | "durationMs"> & { interrupted?: boolean };

/** How long opening the watches may take before the Job is created anyway (then events are listed). */
const WATCH_OPEN_TIMEOUT_MS = 5_000;
/** Deleting the Job gets its own deadline: it must happen even after a timeout or Ctrl-C. */
const DELETE_TIMEOUT_MS = 10_000;
const DELETE_ATTEMPTS = 3;
/** Event listing when watching events is forbidden (the reference Role grants only list). */
const EVENT_LIST_FIRST_MS = 150;
const EVENT_LIST_MAX_MS = 1_000;

/** A clock reading in nanoseconds since the epoch, for a unique Job name. */
export function nowNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}

interface RunState {
  /** The create request was sent: there may be a Job to delete. */
  mayExist: boolean;
  /** The API server confirmed the Job. */
  created: boolean;
  notes: string[];
}

export async function checkPreflightJob(ctx: CheckContext): Promise<PreflightJobResult> {
  const job = buildPreflightJob(ctx.config, { nanos: nowNanos() });
  const name = job.metadata?.name as string;
  const state: RunState = { mayExist: false, created: false, notes: [] };
  let result: PreflightJobResult;
  try {
    result = await observe(ctx, job, name, state);
  } catch (err) {
    result = { status: "fail", summary: `the preflight Job check failed: ${errorText(err)}` };
  }
  // Cleanup: whatever happened above, including a timeout and the caller's abort.
  if (state.mayExist) {
    const problem = await deleteJob(ctx.kube, ctx.namespace, name);
    if (problem) {
      state.notes.push(
        `could not delete the preflight Job ${name}${state.created ? "" : " (if it exists)"}: ${problem}; ` +
          `delete it with: kubectl -n ${ctx.namespace} delete job ${name}`,
      );
    }
  }
  if (state.notes.length) result = { ...result, details: [...(result.details ?? []), ...state.notes] };
  return result;
}

async function observe(ctx: CheckContext, job: V1Job, name: string, state: RunState): Promise<PreflightJobResult> {
  const { kube, namespace: ns } = ctx;
  const k8s = ctx.config.kubernetes;
  const nsPath = `/api/v1/namespaces/${encodeURIComponent(ns)}`;
  const mode = k8s.useImageVolumes ? "image-volume mode" : "default mode";

  const obs: PreflightObservation = { namespace: ns, jobName: name, image: k8s.preflightImage, useImageVolumes: k8s.useImageVolumes, pods: [], events: [] };
  const pods = new Map<string, PodLike>();
  const events = new Map<string, EventLike>();
  const stop = new AbortController();

  let settle!: (v: Verdict) => void;
  const verdict = new Promise<Verdict>((resolve) => (settle = resolve));
  let settled = false;
  const update = () => {
    if (settled) return;
    obs.pods = [...pods.values()];
    obs.events = [...events.values()];
    const v = decidePreflight(obs);
    if (v.state !== "pending") {
      settled = true;
      settle(v);
    }
  };

  // --- events: a watch per object (the Job, then each pod); a list loop when watch is forbidden.
  const watchedEventsOf = new Set<string>();
  const eventKey = (e: Record<string, unknown>) => {
    const md = (e.metadata ?? {}) as { uid?: string; name?: string };
    return md.uid ?? md.name ?? JSON.stringify(e);
  };
  const addEvent = (type: RawWatchEvent["type"], object: Record<string, unknown>) => {
    if (type === "DELETED") return;
    events.set(eventKey(object), object as EventLike);
    update();
  };
  let listEventsInstead = false;
  const listEventsLoop = async () => {
    let wait = EVENT_LIST_FIRST_MS;
    while (!stop.signal.aborted && !settled) {
      await sleep(wait, stop.signal);
      wait = Math.min(EVENT_LIST_MAX_MS, wait * 2);
      for (const involved of [...watchedEventsOf]) {
        if (stop.signal.aborted) return;
        const res = await kubeRequest<{ items?: Record<string, unknown>[] }>(kube, {
          path: `${nsPath}/events`,
          query: { fieldSelector: `involvedObject.name=${involved}` },
          signal: stop.signal,
        }).catch(() => undefined);
        for (const item of res?.ok ? (res.body?.items ?? []) : []) addEvent("ADDED", item);
      }
    }
  };
  const watchEventsOf = (involved: string): Promise<void> => {
    if (watchedEventsOf.has(involved)) return Promise.resolve();
    watchedEventsOf.add(involved);
    if (listEventsInstead) return Promise.resolve();
    const w = startWatch(kube, `${nsPath}/events`, { fieldSelector: `involvedObject.name=${involved}` }, stop.signal, addEvent, "events", ns);
    return w.opened.catch((err: unknown) => {
      if (stop.signal.aborted || listEventsInstead) return;
      listEventsInstead = true;
      state.notes.push(`events were listed, not watched (${errorText(err)}); granting "watch" on events lets this check react at once`);
      void listEventsLoop();
    });
  };

  // --- pods of the Job.
  const podsWatch = startWatch(
    kube,
    `${nsPath}/pods`,
    { labelSelector: `job-name=${name}` },
    stop.signal,
    (type, object) => {
      const pod = object as PodLike;
      const podName = pod.metadata?.name;
      if (!podName) return;
      if (type === "DELETED") pods.delete(podName);
      else {
        pods.set(podName, pod);
        void watchEventsOf(podName);
      }
      update();
    },
    "pods",
    ns,
  );

  let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => settle({ state: "pending", lastSeen: "interrupted" });
  try {
    const opened = await withTimeout(Promise.all([podsWatch.opened, watchEventsOf(name)]), WATCH_OPEN_TIMEOUT_MS).catch((err: unknown) => err);
    if (opened instanceof Error && !(opened instanceof TimeoutError)) {
      return {
        status: "fail",
        summary: `cannot watch pods in namespace "${ns}": ${errorText(opened)}`,
        fix: `The worker needs "watch" on pods (see the permissions check).`,
      };
    }
    if (ctx.signal.aborted) return interrupted(name, false);

    // --- create the Job (not cut short by Ctrl-C: its answer says whether there is a Job to delete).
    state.mayExist = true;
    let res: RawResult;
    try {
      res = await kubeRequest(kube, {
        method: "POST",
        path: `/apis/batch/v1/namespaces/${encodeURIComponent(ns)}/jobs`,
        body: job,
        signal: deadlineSignal(ctx.timeoutMs),
      });
    } catch (err) {
      return {
        status: "fail",
        summary: `creating the preflight Job ${name} failed: ${errorText(err)}`,
        fix: "Check the API server's health and the network path to it, then retry.",
      };
    }
    if (!res.ok) {
      state.mayExist = false;
      return explainCreateError(ctx, "preflight Job", "jobs", name, res);
    }
    state.created = true;
    const started = Date.now();

    // --- wait for the verdict, the deadline or the caller's abort.
    deadlineTimer = setTimeout(() => settle({ state: "pending", lastSeen: "timeout" }), ctx.timeoutMs);
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    update();
    const v = await verdict;
    settled = true;
    let result: PreflightJobResult;
    if (ctx.signal.aborted) {
      result = interrupted(name, true);
    } else if (v.state === "pending") {
      obs.pods = [...pods.values()];
      obs.events = [...events.values()];
      result = toResult(decideAtTimeout(obs, ctx.timeoutMs));
    } else {
      result = toResult(v);
    }
    const took = ((Date.now() - started) / 1000).toFixed(2);
    if (result.status === "pass") result = { ...result, summary: `${result.summary} (${mode}, ${took} s after create)` };
    return result;
  } finally {
    if (deadlineTimer !== undefined) clearTimeout(deadlineTimer);
    ctx.signal.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

function toResult(v: Verdict & { state: "pass" | "fail" }): PreflightJobResult {
  const { state, ...rest } = v;
  return { status: state, ...rest };
}

function interrupted(name: string, created: boolean): PreflightJobResult {
  return {
    status: "fail",
    interrupted: true,
    summary: created ? `interrupted; the preflight Job ${name} was deleted` : "interrupted before the preflight Job was created",
  };
}

/** Deletes the Job with background propagation; undefined when it is gone, else the problem. */
export async function deleteJob(kube: CheckContext["kube"], ns: string, name: string): Promise<string | undefined> {
  let problem = "";
  for (let attempt = 1; attempt <= DELETE_ATTEMPTS; attempt++) {
    try {
      const res = await kubeRequest(kube, {
        method: "DELETE",
        path: `/apis/batch/v1/namespaces/${encodeURIComponent(ns)}/jobs/${encodeURIComponent(name)}`,
        query: { propagationPolicy: "Background" },
        signal: deadlineSignal(DELETE_TIMEOUT_MS),
      });
      if (res.ok || res.status === 404) return undefined;
      problem = `HTTP ${res.status}: ${res.error?.message ?? ""}`;
      if (res.status === 403 || res.status === 401) return problem;
    } catch (err) {
      problem = errorText(err);
    }
    await sleep(200 * attempt);
  }
  return problem;
}

// ---------------------------------------------------------------------------

class TimeoutError extends Error {
  override name = "TimeoutError";
}

interface StartedWatch {
  /** Resolves once the API server accepted the watch; rejects if it never did. */
  opened: Promise<void>;
}

/** A watch kept open until `signal` aborts; reopened (from the current state) if the server ends it. */
function startWatch(
  kube: CheckContext["kube"],
  path: string,
  params: { labelSelector?: string; fieldSelector?: string },
  signal: AbortSignal,
  onEvent: (type: RawWatchEvent["type"], object: Record<string, unknown>) => void,
  resource: string,
  namespace: string,
): StartedWatch {
  let open!: () => void;
  let fail!: (err: unknown) => void;
  let isOpen = false;
  const opened = new Promise<void>((resolve, reject) => {
    open = () => {
      isOpen = true;
      resolve();
    };
    fail = reject;
  });
  opened.catch(() => undefined);
  void (async () => {
    let failures = 0;
    while (!signal.aborted) {
      try {
        for await (const ev of watchStream(kube as Parameters<typeof watchStream>[0], path, { ...params, allowWatchBookmarks: false }, { signal, onOpen: open, resource, namespace })) {
          if (ev.type === "BOOKMARK") continue;
          onEvent(ev.type, ev.object);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (!isOpen) return fail(err);
        if (++failures > 3) return;
        await sleep(100 * failures, signal);
      }
    }
  })();
  return { opened };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new TimeoutError(`not open within ${ms} ms`)), ms);
    const done = () => clearTimeout(t);
    p.then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
  });
}
