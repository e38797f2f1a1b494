// One list+watch loop for one kind of object (Jobs or Pods) and its cached store: a paginated
// list, then watches resumed from the last resourceVersion (bookmarks on); a 410 Gone (HTTP or
// ERROR event) leads to a relist; errors back off. Each object is slimmed on arrival
// (./slim.ts) and handed to `onEvent`; what it feeds (the execution index) is the caller's.
import { collectGarbage } from "../runtime.ts";
import type { LogLevel } from "../telemetry/log.ts";
import { describeError } from "../util/errors.ts";
import { nextBackoff, sleep } from "../util/timers.ts";
import { KubeApiError, responseError } from "./api-errors.ts";
import type { KubeClient } from "./client.ts";
import { slimJob, slimPod, withoutManagedFields } from "./slim.ts";
import { watchStream, WatchExpiredError } from "./watch-stream.ts";

export type WatchKind = "jobs" | "pods";

export type PerKind = Record<WatchKind, number>;

/** The counters a reflector keeps, per kind (both reflectors of a TaskWatch share one set). */
export interface ReflectorCounters {
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
}

export interface KubeObject {
  metadata?: { name?: string; resourceVersion?: string; labels?: Record<string, string> };
}

/** ADDED/MODIFIED from a watch, MODIFIED for what a list changed, DELETED for what vanished. */
export type ReflectorEvent = (type: string, obj: KubeObject) => void;

export interface ReflectorOptions {
  client: KubeClient;
  namespace: string;
  kind: WatchKind;
  labelSelector: string;
  pageSize: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Server-side timeout of each watch request; undefined = a random 300–360 s. */
  watchTimeoutSeconds: number | undefined;
  watchInactivityMs: number | undefined;
  /** Ends the loop and any request in flight. */
  signal: AbortSignal;
  counters: ReflectorCounters;
  /** Each change of the store, after the store was updated. */
  onEvent: ReflectorEvent;
  /** After each complete list (the store then mirrors the cluster). */
  onListed: () => void;
  /** Each list/watch failure other than 410 Gone (before the backoff). */
  onError: (err: Error) => void;
  log: (level: LogLevel, msg: string) => void;
}

const API_PATH: Record<WatchKind, (ns: string) => string> = {
  jobs: (ns) => `/apis/batch/v1/namespaces/${encodeURIComponent(ns)}/jobs`,
  pods: (ns) => `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`,
};
/**
 * Page text read by a list after which its garbage (page texts and the full objects parsed
 * from them, dropped once slimmed) is collected. Without it a list of 10,000 kept Jobs and
 * their pods grew the heap by ~100 MB before the runtime collected, and the allocator kept most
 * of those pages afterwards.
 */
const LIST_GC_CHARS = 8 << 20;
/** What the cache keeps of each object (./slim.ts): the fields the rules and re-adoption read. */
const SLIM: Record<WatchKind, (raw: unknown) => KubeObject> = { jobs: slimJob, pods: slimPod };

export class Reflector {
  resourceVersion: string | undefined;
  /** The cached objects by name. The owner may swap an object for a smaller equivalent. */
  readonly store = new Map<string, KubeObject>();
  readonly kind: WatchKind;
  private needList = true;
  private listedOnce = false;
  private currentWatch: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private readonly o: ReflectorOptions;

  constructor(options: ReflectorOptions) {
    this.o = options;
    this.kind = options.kind;
  }

  /** Starts the loop (once); `stopped` resolves when the signal has ended it. */
  start(): void {
    this.loop ??= this.run();
  }

  get stopped(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Test hook: forget the position and continue from `rv` (e.g. a compacted one → 410 → relist). */
  restartFrom(rv: string): void {
    this.resourceVersion = rv;
    this.needList = false;
    this.currentWatch?.abort();
  }

  private async run(): Promise<void> {
    const { signal, counters, kind } = this.o;
    const backoff = { initialMs: this.o.backoffInitialMs, maxMs: this.o.backoffMaxMs, jitter: 0 };
    let attempt = 0;
    // A watch that lasted this long before the server ended it was healthy.
    const healthyAfterMs = Math.min(5_000, (this.o.watchTimeoutSeconds ?? 300) * 500);
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
        if (!signal.aborted) counters.watchResumes[kind]++;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof WatchExpiredError || (err instanceof KubeApiError && err.status === 410)) {
          counters.expired[kind]++;
          this.o.log("info", `${kind} watch: resourceVersion ${this.resourceVersion} expired (410 Gone); relisting`);
          this.needList = true;
          // Twice in a row right away: something is off; do not spin.
          if (Date.now() - lastExpired < 1_000) await sleep(nextBackoff(attempt++, backoff), signal);
          lastExpired = Date.now();
          continue;
        }
        counters.watchErrors[kind]++;
        this.o.onError(err instanceof Error ? err : new Error(String(err)));
        const delay = nextBackoff(attempt++, backoff);
        this.o.log("warn", `${kind} list/watch failed; retrying in ${Math.round(delay)} ms: ${describeError(err)}`);
        // ±20 % so that the two reflectors (and many workers) do not retry in step.
        await sleep(delay * (0.8 + Math.random() * 0.4), signal);
        continue;
      }
      // A clean end (server timeout). Reset the backoff when the round did something useful;
      // a server that closes streams at once without events still gets a pause.
      if (productive || Date.now() - started >= healthyAfterMs) attempt = 0;
      else await sleep(nextBackoff(attempt++, backoff), signal);
    }
  }

  /**
   * A paginated list. Each page is slimmed and applied before the next is read, so that what
   * the owner keeps of it (a stub, for a reported execution) replaces the slim objects at once
   * and a big list never holds all its objects at the same time; deletions once it is complete.
   */
  private async list(): Promise<void> {
    const { signal, client, namespace, kind, counters } = this.o;
    const seen = new Set<string>();
    let cont: string | undefined;
    let rv: string | undefined;
    let sinceGc = 0;
    for (;;) {
      const q = new URLSearchParams({ labelSelector: this.o.labelSelector, limit: String(this.o.pageSize) });
      if (cont) q.set("continue", cont);
      const res = await client.fetch(`${API_PATH[kind](namespace)}?${q}`, { signal, headers: { Accept: "application/json" } });
      if (res.status !== 200) {
        const err = await responseError(res, { verb: "list", resource: kind, namespace });
        // An expired continue token (the list took longer than compaction): start over.
        if (err.status === 410 && cont) {
          cont = undefined;
          seen.clear();
          continue;
        }
        throw err;
      }
      const text = await res.text();
      sinceGc += text.length;
      const body = JSON.parse(withoutManagedFields(text)) as { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown[] };
      for (const raw of body.items ?? []) {
        const obj = SLIM[kind](raw);
        const name = obj.metadata?.name;
        if (!name) continue;
        seen.add(name);
        const old = this.store.get(name);
        if (old?.metadata?.resourceVersion === obj.metadata?.resourceVersion) continue;
        this.store.set(name, obj);
        this.o.onEvent("MODIFIED", obj);
      }
      if (sinceGc >= LIST_GC_CHARS) {
        sinceGc = 0;
        collectGarbage();
      }
      cont = body.metadata?.continue || undefined;
      rv = body.metadata?.resourceVersion;
      if (!cont) break;
    }
    counters.lists[kind]++;
    if (this.listedOnce) counters.relists[kind]++;
    this.listedOnce = true;
    // What vanished since the last list or watch event.
    for (const [name, obj] of [...this.store]) {
      if (seen.has(name)) continue;
      this.store.delete(name);
      this.o.onEvent("DELETED", obj);
    }
    this.resourceVersion = rv;
    this.needList = false;
    this.o.onListed();
  }

  /** One watch request from the current resourceVersion; true when it delivered any event. */
  private async watch(): Promise<boolean> {
    const { client, namespace, kind, counters } = this.o;
    const ac = new AbortController();
    this.currentWatch = ac;
    const outer = this.o.signal;
    const onAbort = () => ac.abort();
    outer.addEventListener("abort", onAbort, { once: true });
    let opened = false;
    let delivered = false;
    counters.watchRequests[kind]++;
    try {
      const timeoutSeconds = this.o.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 60);
      const stream = watchStream(
        client,
        API_PATH[kind](namespace),
        { labelSelector: this.o.labelSelector, resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
        {
          signal: ac.signal,
          ...(this.o.watchInactivityMs ? { inactivityMs: this.o.watchInactivityMs } : {}),
          resource: kind,
          namespace,
          // A deleted object is only forgotten (store, index): its metadata says which.
          deletedMetadataOnly: true,
          onOpen: () => {
            opened = true;
            counters.watchesOpen[kind]++;
          },
        },
      );
      for await (const ev of stream) {
        const obj = ev.object as KubeObject;
        const rv = obj.metadata?.resourceVersion;
        if (ev.type === "BOOKMARK") {
          if (rv) this.resourceVersion = rv;
          counters.bookmarks[kind]++;
          continue;
        }
        const model = SLIM[kind](obj);
        const name = model.metadata?.name;
        if (name) {
          if (ev.type === "DELETED") this.store.delete(name);
          else this.store.set(name, model);
          counters.events[kind]++;
          this.o.onEvent(ev.type, model);
        }
        if (rv) this.resourceVersion = rv;
        delivered = true;
      }
    } finally {
      if (opened) counters.watchesOpen[kind]--;
      outer.removeEventListener("abort", onAbort);
      if (this.currentWatch === ac) this.currentWatch = undefined;
    }
    return delivered;
  }
}
