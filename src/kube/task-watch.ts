// The shared observer of all of this worker's tasks: ONE list+watch for Jobs and ONE for
// Pods in the namespace (label selector on the worker hash), a cache indexed by execution
// hash, subscribers per execution. Watches resume from the last resourceVersion (bookmarks
// on); a 410 Gone (HTTP or ERROR event) leads to a relist; errors back off. Events are read
// only for pods that show trouble, at most once per interval per pod. No per-task polling:
// the only timers are local re-evaluations when a time-based rule (unschedulable timeout,
// slow container start) can flip, plus the Events read for such a troubled pod.
import type { CoreV1Event, V1Job, V1Pod } from "@kubernetes/client-node";
import { PREFLIGHT_LABEL, WORKER_HASH_LABEL } from "../core/naming.ts";
import { DEFAULT_EVENTS_SLOW_AFTER_MS, nextRecheckAt, podNeedsEvents } from "../core/outcome.ts";
import { collectGarbage, releaseFreeMemory } from "../runtime.ts";
import type { Logger, LogLevel } from "../telemetry/log.ts";
import { describeError } from "../util/errors.ts";
import { responseError } from "./api-errors.ts";
import type { KubeClient } from "./client.ts";
import { ExecutionIndex, type ExecutionSnapshot } from "./execution-index.ts";
import { type KubeObject, type PerKind, Reflector, type ReflectorCounters, type WatchKind } from "./reflector.ts";
import { slimEvent } from "./slim.ts";

export type { ExecutionSnapshot } from "./execution-index.ts";

export interface TaskWatchOptions {
  client: KubeClient;
  namespace: string;
  /** The worker hash label value (16 hex chars). */
  workerHash: string;
  /** For re-evaluating when a pod's unschedulable timeout passes; 0 = rule off. Default 30 s. */
  unschedulableTimeoutMs?: number;
  /** Server-side timeout of each watch request; default a random 300–360 s (spreads reconnects). */
  watchTimeoutSeconds?: number;
  /** Abort a watch that delivered no byte for this long. Default: watch timeout + 30 s. */
  watchInactivityMs?: number;
  /** At most one Events list per pod per this interval. Default 5 s. */
  eventsMinIntervalMs?: number;
  /** A pod that started no container this long after scheduling shows trouble. Default 5 s. */
  eventsSlowAfterMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Page size of lists. Default 100. */
  pageSize?: number;
  logger?: Pick<Logger, LogLevel>;
}

export type SnapshotListener = (snapshot: ExecutionSnapshot) => void;

/** Objects in the first lists above which the garbage of reading them is collected at once. */
const BIG_LIST = 2_000;
const zero = (): PerKind => ({ jobs: 0, pods: 0 });

export interface TaskWatchCounters extends ReflectorCounters {
  /** Events lists for troubled pods. */
  eventLists: number;
}

interface PodEvents {
  lastFetch: number;
  inflight: boolean;
  events: CoreV1Event[];
  signature: string;
}

function unref(t: ReturnType<typeof setTimeout>): void {
  (t as { unref?: () => void }).unref?.();
}

export class TaskWatch {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly workerHash: string;
  readonly selector: string;
  readonly counters: TaskWatchCounters = {
    watchesOpen: zero(),
    watchRequests: zero(),
    watchResumes: zero(),
    watchErrors: zero(),
    lists: zero(),
    relists: zero(),
    expired: zero(),
    bookmarks: zero(),
    events: zero(),
    eventLists: 0,
  };
  /** Resolves once Jobs and Pods have both been listed (the cache is complete). */
  readonly synced: Promise<void>;
  private readonly abort = new AbortController();

  private readonly unschedulableTimeoutMs: number;
  private readonly eventsMinIntervalMs: number;
  private readonly eventsSlowAfterMs: number;
  private readonly logger: Pick<Logger, LogLevel> | undefined;
  private readonly reflectors: Record<WatchKind, Reflector>;
  private readonly index = new ExecutionIndex();
  private readonly listeners = new Map<string, Set<SnapshotListener>>();
  private readonly anyListeners = new Set<SnapshotListener>();
  private readonly dirty = new Set<string>();
  private flushScheduled = false;
  private readonly timers = new Map<string, { at: number; timer: ReturnType<typeof setTimeout> }>();
  private readonly podEvents = new Map<string, PodEvents>();
  private listed: Record<WatchKind, boolean> = { jobs: false, pods: false };
  private resolveSynced!: () => void;
  private started = false;
  private closed = false;
  private _synced = false;

  constructor(opts: TaskWatchOptions) {
    this.client = opts.client;
    this.namespace = opts.namespace;
    this.workerHash = opts.workerHash;
    // The worker's task objects; the preflight Job (same worker hash) is left out.
    this.selector = `${WORKER_HASH_LABEL}=${opts.workerHash},!${PREFLIGHT_LABEL}`;
    this.unschedulableTimeoutMs = opts.unschedulableTimeoutMs ?? 30_000;
    this.eventsMinIntervalMs = opts.eventsMinIntervalMs ?? 5_000;
    this.eventsSlowAfterMs = opts.eventsSlowAfterMs ?? DEFAULT_EVENTS_SLOW_AFTER_MS;
    this.logger = opts.logger;
    this.synced = new Promise((resolve) => {
      this.resolveSynced = resolve;
    });
    const reflector = (kind: WatchKind) =>
      new Reflector({
        client: this.client,
        namespace: this.namespace,
        kind,
        labelSelector: this.selector,
        // Small pages: a page is held as text and parsed objects while it is slimmed (10,000 pods in pages of
        // 500 would hold ~5 MB of text and ~15 MB of objects at once).
        pageSize: opts.pageSize ?? 100,
        backoffInitialMs: opts.backoffInitialMs ?? 500,
        backoffMaxMs: opts.backoffMaxMs ?? 30_000,
        watchTimeoutSeconds: opts.watchTimeoutSeconds,
        watchInactivityMs: opts.watchInactivityMs,
        signal: this.abort.signal,
        counters: this.counters,
        onEvent: (type, obj) => this.apply(kind, type, obj),
        onListed: () => this.markListed(kind),
        onError: (err) => {
          this.lastError = err;
        },
        log: (level, msg) => this.log(level, msg),
      });
    this.reflectors = { jobs: reflector("jobs"), pods: reflector("pods") };
  }

  /** Starts both list+watch loops (idempotent). Await `synced` for a complete cache. */
  start(): this {
    if (this.started || this.closed) return this;
    this.started = true;
    this.reflectors.jobs.start();
    this.reflectors.pods.start();
    return this;
  }

  get isSynced(): boolean {
    return this._synced;
  }

  /** The last list/watch error (cleared by nothing: read it together with the counters). */
  lastError: Error | undefined;

  /**
   * Resolves once synced; rejects after `timeoutMs` with the last list/watch error (e.g. a 403
   * from a Role without list/watch) so a caller can fail fast instead of waiting forever.
   */
  async waitForSync(timeoutMs: number): Promise<void> {
    if (this._synced) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const why = this.lastError ? `: ${this.lastError.message}` : "";
        reject(new Error(`the Job/Pod watch in namespace ${this.namespace} did not sync within ${timeoutMs} ms${why}`, { cause: this.lastError }));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.synced, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Calls `listener` on every change of this execution's Job or Pods (coalesced per tick), when
   * its troubled pods' Events change, and when a time-based rule may flip. If the execution is
   * already cached, the listener first gets the current snapshot (asynchronously).
   */
  subscribe(executionHash: string, listener: SnapshotListener): () => void {
    let set = this.listeners.get(executionHash);
    if (!set) this.listeners.set(executionHash, (set = new Set()));
    set.add(listener);
    if (this.index.has(executionHash)) {
      queueMicrotask(() => {
        if (this.listeners.get(executionHash)?.has(listener)) {
          const snap = this.snapshot(executionHash);
          if (snap) this.safeCall(listener, snap);
        }
      });
    }
    return () => {
      const s = this.listeners.get(executionHash);
      s?.delete(listener);
      if (s && s.size === 0) this.listeners.delete(executionHash);
    };
  }

  /** Calls `listener` for changes of any execution (e.g. to pick up Jobs of a previous run). */
  subscribeAll(listener: SnapshotListener): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  /** The cached state of one execution, or undefined when nothing of it is cached. */
  snapshot(executionHash: string): ExecutionSnapshot | undefined {
    return this.index.snapshot(executionHash, (podName) => this.podEvents.get(podName)?.events);
  }

  /** Execution hashes currently in the cache. */
  executionHashes(): string[] {
    return this.index.hashes();
  }

  /** All cached Jobs of this worker. */
  jobs(): V1Job[] {
    return [...this.reflectors.jobs.store.values()] as V1Job[];
  }

  /** The resourceVersion each watch resumes from. */
  resourceVersion(kind: WatchKind): string | undefined {
    return this.reflectors[kind].resourceVersion;
  }

  /** Test hook: make the `kind` watch resume from `resourceVersion` (an old one forces a 410). */
  resumeFromForTest(kind: WatchKind, resourceVersion: string): void {
    this.reflectors[kind].restartFrom(resourceVersion);
  }

  /** Stops both watches, timers and in-flight requests; resolves when the loops have ended. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    await Promise.allSettled([this.reflectors.jobs.stopped, this.reflectors.pods.stopped]);
    this.listeners.clear();
    this.anyListeners.clear();
  }

  // ---- called by the reflectors -------------------------------------------

  private log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    this.logger?.[level](msg, { namespace: this.namespace, ...fields });
  }

  private markListed(kind: WatchKind): void {
    this.listed[kind] = true;
    if (!this._synced && this.listed.jobs && this.listed.pods) {
      this._synced = true;
      this.resolveSynced();
      // A big first list (Jobs kept with cleanup off) leaves tens of MB of parsed pages behind;
      // collected once, after the cache has been compacted and the worker re-adopted its Jobs,
      // rather than whenever the idle heap next grows.
      if (this.reflectors.jobs.store.size + this.reflectors.pods.store.size >= BIG_LIST) {
        const t = setTimeout(() => {
          if (this.closed) return;
          collectGarbage();
          releaseFreeMemory();
        }, 0);
        unref(t);
      }
    }
  }

  private apply(kind: WatchKind, type: string, obj: KubeObject): void {
    const hash = this.index.apply(kind, type, obj);
    if (!hash) return;
    if (kind === "pods" && type === "DELETED") this.podEvents.delete(obj.metadata?.name ?? "");
    this.markDirty(hash);
  }

  // ---- notification, Events, timers --------------------------------------

  private markDirty(hash: string): void {
    this.dirty.add(hash);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const hashes = [...this.dirty];
    this.dirty.clear();
    for (const hash of hashes) this.notify(hash);
  }

  private notify(hash: string): void {
    if (this.closed) return;
    const snap = this.snapshot(hash);
    if (!snap) return;
    for (const l of this.listeners.get(hash) ?? []) this.safeCall(l, snap);
    for (const l of this.anyListeners) this.safeCall(l, snap);
    // Nothing left of it: forget it (its last snapshot said jobDeleted).
    if (this.index.forgetIfEmpty(hash)) {
      this.clearTimer(hash);
      return;
    }
    if (!this.listeners.has(hash) && this.index.isReported(hash)) {
      this.forgetDetails(hash);
      this.clearTimer(hash);
      return;
    }
    this.maybeReadEvents(hash, snap.pods);
    this.schedule(hash, snap.pods);
  }

  /**
   * An execution whose outcome was reported and that no task follows: no rule reads its pods'
   * states again, and re-adoption reads only a few fields of its Job. With cleanup off, or
   * failed Jobs kept for their TTL, these are most of the cache; stubs keep it small. A change
   * that arrives later (a watch event) brings the full slim object back until the next notify.
   */
  private forgetDetails(hash: string): void {
    for (const { kind, name, from, to } of this.index.compact(hash)) {
      const store = this.reflectors[kind].store;
      if (store.get(name) === from) store.set(name, to);
      if (kind === "pods") this.podEvents.delete(name);
    }
  }

  private safeCall(l: SnapshotListener, snap: ExecutionSnapshot): void {
    try {
      l(snap);
    } catch (err) {
      this.log("error", `task watch subscriber threw: ${describeError(err)}`, {
        ...this.index.taskIds(snap.executionHash),
        executionHash: snap.executionHash,
      });
    }
  }

  private maybeReadEvents(hash: string, pods: V1Pod[]): void {
    const now = Date.now();
    for (const pod of pods) {
      const name = pod.metadata?.name;
      if (!name || !podNeedsEvents(pod, now, this.eventsSlowAfterMs)) continue;
      let pe = this.podEvents.get(name);
      if (!pe) this.podEvents.set(name, (pe = { lastFetch: 0, inflight: false, events: [], signature: "" }));
      if (pe.inflight || now - pe.lastFetch < this.eventsMinIntervalMs) continue;
      pe.inflight = true;
      pe.lastFetch = now;
      void this.readEvents(hash, name, pe);
    }
  }

  private async readEvents(hash: string, podName: string, pe: PodEvents): Promise<void> {
    this.counters.eventLists++;
    try {
      const q = new URLSearchParams({ fieldSelector: `involvedObject.name=${podName},involvedObject.kind=Pod` });
      const res = await this.client.fetch(`/api/v1/namespaces/${encodeURIComponent(this.namespace)}/events?${q}`, {
        signal: this.abort.signal,
        headers: { Accept: "application/json" },
      });
      if (res.status !== 200) throw await responseError(res, { verb: "list", resource: "events", namespace: this.namespace });
      const body = JSON.parse(await res.text()) as { items?: unknown[] };
      const events = (body.items ?? []).map(slimEvent);
      const signature = events.map((e) => `${e.metadata?.name}@${e.metadata?.resourceVersion}`).join(",");
      if (signature !== pe.signature && this.podEvents.get(podName) === pe) {
        pe.signature = signature;
        pe.events = events;
        this.markDirty(hash);
      }
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.log("warn", `cannot read Events of pod ${podName}: ${describeError(err)}`, this.index.taskIds(hash));
      }
    } finally {
      pe.inflight = false;
    }
  }

  /** One timer per execution, at the next moment a time-based rule or an Events read is due. */
  private schedule(hash: string, pods: V1Pod[]): void {
    const now = Date.now();
    let at = nextRecheckAt({ pods, now, unschedulableTimeoutMs: this.unschedulableTimeoutMs, slowAfterMs: this.eventsSlowAfterMs });
    for (const pod of pods) {
      if (!podNeedsEvents(pod, now, this.eventsSlowAfterMs)) continue;
      const pe = this.podEvents.get(pod.metadata?.name ?? "");
      const due = (pe?.lastFetch ?? now) + this.eventsMinIntervalMs;
      if (at === undefined || due < at) at = due;
    }
    if (at === undefined) return this.clearTimer(hash);
    const existing = this.timers.get(hash);
    if (existing && existing.at <= at && existing.at > now) return;
    this.clearTimer(hash);
    const timer = setTimeout(() => {
      this.timers.delete(hash);
      this.notify(hash);
    }, Math.max(0, at - now) + 10);
    unref(timer);
    this.timers.set(hash, { at, timer });
  }

  private clearTimer(hash: string): void {
    const t = this.timers.get(hash);
    if (t) clearTimeout(t.timer);
    this.timers.delete(hash);
  }
}
