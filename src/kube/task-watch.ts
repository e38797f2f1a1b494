// The shared observer of all of this worker's tasks: ONE list+watch for Jobs and ONE for
// Pods in the namespace (label selector on the worker hash), a cache indexed by execution
// hash, subscribers per execution. Watches resume from the last resourceVersion (bookmarks
// on); a 410 Gone (HTTP or ERROR event) leads to a relist; errors back off. Events are read
// only for pods that show trouble, at most once per interval per pod. No per-task polling:
// the only timers are local re-evaluations when a time-based rule (unschedulable timeout,
// slow container start) can flip, plus the Events read for such a troubled pod.
import type { CoreV1Event, V1Job, V1Pod } from "@kubernetes/client-node";
import { EXECUTION_HASH_LABEL, EXECUTION_ID_ANNOTATION, PREFLIGHT_LABEL, TASK_ID_ANNOTATION, WORKER_HASH_LABEL } from "../core/naming.ts";
import { DEFAULT_EVENTS_SLOW_AFTER_MS, nextRecheckAt, podNeedsEvents } from "../core/outcome.ts";
import { type KubeClient, KubeApiError, responseError } from "./client.ts";
import { isReported, reportedJobStub, reportedPodStub, slimEvent, slimJob, slimPod } from "./slim.ts";
import { watchStream, WatchExpiredError } from "./watch-stream.ts";
import { collectGarbage } from "../runtime.ts";
import { describeError } from "../util/errors.ts";
import { sleep } from "../util/timers.ts";

export type WatchKind = "jobs" | "pods";

export interface WatchLogger {
  debug?(msg: string, fields?: Record<string, unknown>): void;
  info?(msg: string, fields?: Record<string, unknown>): void;
  warn?(msg: string, fields?: Record<string, unknown>): void;
  error?(msg: string, fields?: Record<string, unknown>): void;
}

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
  logger?: WatchLogger;
}

export interface ExecutionSnapshot {
  executionHash: string;
  job?: V1Job;
  /** Oldest first. */
  pods: V1Pod[];
  /** The last Events read for this execution's troubled pods (empty when none was needed). */
  events: CoreV1Event[];
  /** The Job was in the cache and has been deleted. */
  jobDeleted: boolean;
}

export type SnapshotListener = (snapshot: ExecutionSnapshot) => void;

type PerKind = Record<WatchKind, number>;

/** Objects in the first lists above which the garbage of reading them is collected at once. */
const BIG_LIST = 2_000;
const zero = (): PerKind => ({ jobs: 0, pods: 0 });

export interface TaskWatchCounters {
  /** Watch connections currently open (accepted by the API server). */
  watchesOpen: PerKind;
  /** Watch requests started (each reconnect counts). */
  watchRequests: PerKind;
  /** Watch streams the server ended cleanly (timeoutSeconds) and that were resumed. */
  watchResumes: PerKind;
  watchErrors: PerKind;
  /** Full lists (a paginated list counts once); the first one included. */
  lists: PerKind;
  /** Lists after the first one (410 Gone, lost resourceVersion). */
  relists: PerKind;
  /** 410 Gone answers seen. */
  expired: PerKind;
  bookmarks: PerKind;
  /** ADDED/MODIFIED/DELETED events applied. */
  events: PerKind;
  /** Events lists for troubled pods. */
  eventLists: number;
}

const API_PATH: Record<WatchKind, (ns: string) => string> = {
  jobs: (ns) => `/apis/batch/v1/namespaces/${encodeURIComponent(ns)}/jobs`,
  pods: (ns) => `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`,
};
/** What the cache keeps of each object (./slim.ts): the fields the rules and re-adoption read. */
const SLIM: Record<WatchKind, (raw: unknown) => KubeObject> = { jobs: slimJob, pods: slimPod };

interface Entry {
  job?: V1Job;
  pods: Map<string, V1Pod>;
  jobSeen: boolean;
  jobDeleted: boolean;
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

interface KubeObject {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
}

/** One list+watch loop for one kind, feeding the TaskWatch cache. */
class Reflector {
  resourceVersion: string | undefined;
  private needList = true;
  private listedOnce = false;
  readonly store = new Map<string, KubeObject>();
  private currentWatch: AbortController | undefined;
  loop: Promise<void> | undefined;

  private readonly tw: TaskWatch;
  readonly kind: WatchKind;
  constructor(
    tw: TaskWatch,
    kind: WatchKind,
  ) {
    this.tw = tw;
    this.kind = kind;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Test hook: forget the position and continue from `rv` (e.g. a compacted one → 410 → relist). */
  restartFrom(rv: string): void {
    this.resourceVersion = rv;
    this.needList = false;
    this.currentWatch?.abort();
  }

  private async run(): Promise<void> {
    const { signal } = this.tw.abort;
    let delay = this.tw.backoffInitialMs;
    // A watch that lasted this long before the server ended it was healthy.
    const healthyAfterMs = Math.min(5_000, (this.tw.watchTimeoutSeconds ?? 300) * 500);
    let lastExpired = 0;
    while (!signal.aborted) {
      const started = Date.now();
      let productive = false;
      try {
        if (this.needList || !this.resourceVersion) {
          await this.list();
          productive = true;
        }
        productive = (await this.watch()) || productive;
        if (!signal.aborted) this.tw.counters.watchResumes[this.kind]++;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof WatchExpiredError || (err instanceof KubeApiError && err.status === 410)) {
          this.tw.counters.expired[this.kind]++;
          this.tw.log("info", `${this.kind} watch: resourceVersion ${this.resourceVersion} expired (410 Gone); relisting`);
          this.needList = true;
          // Twice in a row right away: something is off; do not spin.
          if (Date.now() - lastExpired < 1_000) {
            await sleep(delay, signal);
            delay = Math.min(delay * 2, this.tw.backoffMaxMs);
          }
          lastExpired = Date.now();
          continue;
        }
        this.tw.counters.watchErrors[this.kind]++;
        this.tw.lastError = err instanceof Error ? err : new Error(String(err));
        this.tw.log("warn", `${this.kind} list/watch failed; retrying in ${Math.round(delay)} ms: ${describeError(err)}`);
        await sleep(delay * (0.8 + Math.random() * 0.4), signal);
        delay = Math.min(delay * 2, this.tw.backoffMaxMs);
        continue;
      }
      // A clean end (server timeout). Reset the backoff when the round did something useful;
      // a server that closes streams at once without events still gets a pause.
      if (productive || Date.now() - started >= healthyAfterMs) delay = this.tw.backoffInitialMs;
      else {
        await sleep(delay, signal);
        delay = Math.min(delay * 2, this.tw.backoffMaxMs);
      }
    }
  }

  private async list(): Promise<void> {
    const { signal } = this.tw.abort;
    const items: KubeObject[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    for (;;) {
      const q = new URLSearchParams({ labelSelector: this.tw.selector, limit: String(this.tw.pageSize) });
      if (cont) q.set("continue", cont);
      const res = await this.tw.client.fetch(`${API_PATH[this.kind](this.tw.namespace)}?${q}`, { signal, headers: { Accept: "application/json" } });
      if (res.status !== 200) {
        const err = await responseError(res, { verb: "list", resource: this.kind, namespace: this.tw.namespace });
        // An expired continue token (the list took longer than compaction): start over.
        if (err.status === 410 && cont) {
          cont = undefined;
          items.length = 0;
          continue;
        }
        throw err;
      }
      const body = JSON.parse(await res.text()) as { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown[] };
      for (const raw of body.items ?? []) items.push(this.deserialize(raw));
      cont = body.metadata?.continue || undefined;
      rv = body.metadata?.resourceVersion;
      if (!cont) break;
    }
    this.tw.counters.lists[this.kind]++;
    if (this.listedOnce) this.tw.counters.relists[this.kind]++;
    this.listedOnce = true;
    // Replace the store: updates for what changed, deletions for what vanished.
    const seen = new Set<string>();
    for (const obj of items) {
      const name = obj.metadata?.name;
      if (!name) continue;
      seen.add(name);
      const old = this.store.get(name);
      if (old?.metadata?.resourceVersion === obj.metadata?.resourceVersion) continue;
      this.store.set(name, obj);
      this.tw.apply(this.kind, "MODIFIED", obj);
    }
    for (const [name, obj] of [...this.store]) {
      if (seen.has(name)) continue;
      this.store.delete(name);
      this.tw.apply(this.kind, "DELETED", obj);
    }
    this.resourceVersion = rv;
    this.needList = false;
    this.tw.markListed(this.kind);
  }

  /** One watch request from the current resourceVersion; true when it delivered any event. */
  private async watch(): Promise<boolean> {
    const ac = new AbortController();
    this.currentWatch = ac;
    const outer = this.tw.abort.signal;
    const onAbort = () => ac.abort();
    outer.addEventListener("abort", onAbort, { once: true });
    let opened = false;
    let delivered = false;
    this.tw.counters.watchRequests[this.kind]++;
    try {
      const timeoutSeconds = this.tw.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 60);
      const stream = watchStream(
        this.tw.client,
        API_PATH[this.kind](this.tw.namespace),
        { labelSelector: this.tw.selector, resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
        {
          signal: ac.signal,
          ...(this.tw.watchInactivityMs ? { inactivityMs: this.tw.watchInactivityMs } : {}),
          resource: this.kind,
          namespace: this.tw.namespace,
          onOpen: () => {
            opened = true;
            this.tw.counters.watchesOpen[this.kind]++;
          },
        },
      );
      for await (const ev of stream) {
        const obj = ev.object as KubeObject;
        const rv = obj.metadata?.resourceVersion;
        if (ev.type === "BOOKMARK") {
          if (rv) this.resourceVersion = rv;
          this.tw.counters.bookmarks[this.kind]++;
          continue;
        }
        const model = this.deserialize(obj);
        const name = model.metadata?.name;
        if (name) {
          if (ev.type === "DELETED") this.store.delete(name);
          else this.store.set(name, model);
          this.tw.counters.events[this.kind]++;
          this.tw.apply(this.kind, ev.type, model);
        }
        if (rv) this.resourceVersion = rv;
        delivered = true;
      }
    } finally {
      if (opened) this.tw.counters.watchesOpen[this.kind]--;
      outer.removeEventListener("abort", onAbort);
      if (this.currentWatch === ac) this.currentWatch = undefined;
    }
    return delivered;
  }

  private deserialize(raw: unknown): KubeObject {
    return SLIM[this.kind](raw);
  }
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
  readonly abort = new AbortController();
  readonly pageSize: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly watchTimeoutSeconds: number | undefined;
  readonly watchInactivityMs: number | undefined;

  private readonly unschedulableTimeoutMs: number;
  private readonly eventsMinIntervalMs: number;
  private readonly eventsSlowAfterMs: number;
  private readonly logger: WatchLogger | undefined;
  private readonly reflectors: Record<WatchKind, Reflector>;
  private readonly entries = new Map<string, Entry>();
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
    this.watchTimeoutSeconds = opts.watchTimeoutSeconds;
    this.watchInactivityMs = opts.watchInactivityMs;
    this.eventsMinIntervalMs = opts.eventsMinIntervalMs ?? 5_000;
    this.eventsSlowAfterMs = opts.eventsSlowAfterMs ?? DEFAULT_EVENTS_SLOW_AFTER_MS;
    this.backoffInitialMs = opts.backoffInitialMs ?? 500;
    this.backoffMaxMs = opts.backoffMaxMs ?? 30_000;
    // Small pages: a page is held as text and parsed objects while it is slimmed (10,000 pods in pages of
    // 500 would hold ~5 MB of text and ~15 MB of objects at once).
    this.pageSize = opts.pageSize ?? 100;
    this.logger = opts.logger;
    this.synced = new Promise((resolve) => {
      this.resolveSynced = resolve;
    });
    this.reflectors = { jobs: new Reflector(this, "jobs"), pods: new Reflector(this, "pods") };
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
    if (this.entries.has(executionHash)) {
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
    const e = this.entries.get(executionHash);
    if (!e) return undefined;
    const pods = [...e.pods.values()].sort((a, b) => time(a.metadata?.creationTimestamp) - time(b.metadata?.creationTimestamp));
    const events: CoreV1Event[] = [];
    for (const p of pods) {
      const pe = this.podEvents.get(p.metadata?.name ?? "");
      if (pe) events.push(...pe.events);
    }
    return { executionHash, ...(e.job ? { job: e.job } : {}), pods, events, jobDeleted: e.jobDeleted };
  }

  /** Execution hashes currently in the cache. */
  executionHashes(): string[] {
    return [...this.entries.keys()];
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
    await Promise.allSettled([this.reflectors.jobs.loop, this.reflectors.pods.loop].filter(Boolean));
    this.listeners.clear();
    this.anyListeners.clear();
  }

  // ---- called by the reflectors -------------------------------------------

  /** @internal */
  log(level: keyof WatchLogger, msg: string, fields?: Record<string, unknown>): void {
    this.logger?.[level]?.(msg, { namespace: this.namespace, ...fields });
  }

  /** @internal */
  markListed(kind: WatchKind): void {
    this.listed[kind] = true;
    if (!this._synced && this.listed.jobs && this.listed.pods) {
      this._synced = true;
      this.resolveSynced();
      // A big first list (Jobs kept with cleanup off) leaves tens of MB of parsed pages behind;
      // collected once, after the cache has been compacted and the worker re-adopted its Jobs,
      // rather than whenever the idle heap next grows.
      if (this.reflectors.jobs.store.size + this.reflectors.pods.store.size >= BIG_LIST) {
        const t = setTimeout(() => {
          if (!this.closed) collectGarbage();
        }, 0);
        unref(t);
      }
    }
  }

  /** @internal */
  apply(kind: WatchKind, type: string, obj: KubeObject): void {
    const hash = obj.metadata?.labels?.[EXECUTION_HASH_LABEL];
    if (!hash) return;
    let e = this.entries.get(hash);
    if (!e) {
      if (type === "DELETED") return;
      this.entries.set(hash, (e = { pods: new Map(), jobSeen: false, jobDeleted: false }));
    }
    const name = obj.metadata?.name ?? "";
    if (kind === "jobs") {
      if (type === "DELETED") {
        if (e.job?.metadata?.name === name || !e.job) {
          e.job = undefined;
          e.jobDeleted = e.jobSeen;
        }
      } else {
        e.job = obj as V1Job;
        e.jobSeen = true;
        e.jobDeleted = false;
      }
    } else if (type === "DELETED") {
      e.pods.delete(name);
      this.podEvents.delete(name);
    } else {
      e.pods.set(name, obj as V1Pod);
    }
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
    const e = this.entries.get(hash);
    if (e && !e.job && e.pods.size === 0) {
      // Nothing left of it: forget it (its last snapshot said jobDeleted).
      this.entries.delete(hash);
      this.clearTimer(hash);
      return;
    }
    if (e?.job && !this.listeners.has(hash) && isReported(e.job)) {
      this.forgetDetails(hash, e);
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
  private forgetDetails(hash: string, e: Entry): void {
    const job = e.job!;
    const name = job.metadata?.name ?? "";
    // One copy of the hash string for the Job, its pods and the index key.
    const labels = { [EXECUTION_HASH_LABEL]: hash };
    const stub = reportedJobStub(job);
    stub.metadata!.labels = labels;
    e.job = stub;
    if (this.reflectors.jobs.store.get(name) === job) this.reflectors.jobs.store.set(name, stub);
    for (const [podName, pod] of e.pods) {
      const podStub = reportedPodStub(pod);
      podStub.metadata!.labels = labels;
      e.pods.set(podName, podStub);
      if (this.reflectors.pods.store.get(podName) === pod) this.reflectors.pods.store.set(podName, podStub);
      this.podEvents.delete(podName);
    }
  }

  private safeCall(l: SnapshotListener, snap: ExecutionSnapshot): void {
    try {
      l(snap);
    } catch (err) {
      this.log("error", `task watch subscriber threw: ${describeError(err)}`, {
        ...this.taskIds(snap.executionHash),
        executionHash: snap.executionHash,
      });
    }
  }

  /** task_id and execution_id of an execution, for log lines about it: the Job's exact annotations. */
  private taskIds(hash: string): { task_id?: string; execution_id?: string } {
    const ann = this.entries.get(hash)?.job?.metadata?.annotations;
    const taskId = ann?.[TASK_ID_ANNOTATION];
    if (!taskId) return {};
    return { task_id: taskId, execution_id: ann?.[EXECUTION_ID_ANNOTATION] || taskId };
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
        this.log("warn", `cannot read Events of pod ${podName}: ${describeError(err)}`, this.taskIds(hash));
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

function time(v: Date | string | undefined): number {
  if (!v) return 0;
  return v instanceof Date ? v.getTime() : Date.parse(v) || 0;
}
