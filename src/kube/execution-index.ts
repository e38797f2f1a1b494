// The watch cache indexed by execution hash: each execution's Job and pods as the reflectors
// deliver them, and the snapshots the task loop decides on. Pure (no I/O, no timers): the
// TaskWatch owns the notification, the Events reads and the timers around it.
import type { CoreV1Event, V1Job, V1Pod } from "@kubernetes/client-node";
import { isReported } from "../core/job-predicates.ts";
import { EXECUTION_HASH_LABEL, EXECUTION_ID_ANNOTATION, TASK_ID_ANNOTATION } from "../core/naming.ts";
import type { KubeObject, WatchKind } from "./reflector.ts";
import { reportedJobStub, reportedPodStub } from "./slim.ts";

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

interface Entry {
  job?: V1Job;
  /** Usually one; an array costs a fraction of a Map, and there are as many entries as executions kept. */
  pods: V1Pod[];
  jobSeen: boolean;
  jobDeleted: boolean;
}

/** An object of the index swapped for its stub (the reflector's store holds the same object). */
export interface Replacement {
  kind: WatchKind;
  name: string;
  from: KubeObject;
  to: KubeObject;
}

export class ExecutionIndex {
  private readonly entries = new Map<string, Entry>();

  /**
   * Applies one reflector change (ADDED, MODIFIED or DELETED). Returns the execution hash it
   * changed, or undefined when the object carries none or deletes something never indexed.
   */
  apply(kind: WatchKind, type: string, obj: KubeObject): string | undefined {
    const hash = obj.metadata?.labels?.[EXECUTION_HASH_LABEL];
    if (!hash) return undefined;
    let e = this.entries.get(hash);
    if (!e) {
      if (type === "DELETED") return undefined;
      this.entries.set(hash, (e = { pods: [], jobSeen: false, jobDeleted: false }));
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
      const i = podIndex(e.pods, name);
      if (i >= 0) e.pods.splice(i, 1);
    } else {
      const i = podIndex(e.pods, name);
      if (i >= 0) e.pods[i] = obj as V1Pod;
      else e.pods.push(obj as V1Pod);
    }
    return hash;
  }

  has(hash: string): boolean {
    return this.entries.has(hash);
  }

  /** Execution hashes currently indexed. */
  hashes(): string[] {
    return [...this.entries.keys()];
  }

  /** The indexed state of one execution; `eventsOf` gives the Events kept for a pod. */
  snapshot(hash: string, eventsOf: (podName: string) => readonly CoreV1Event[] | undefined = () => undefined): ExecutionSnapshot | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    const pods = e.pods.length < 2 ? e.pods.slice() : e.pods.slice().sort((a, b) => time(a.metadata?.creationTimestamp) - time(b.metadata?.creationTimestamp));
    const events: CoreV1Event[] = [];
    for (const p of pods) {
      const pe = eventsOf(p.metadata?.name ?? "");
      if (pe) events.push(...pe);
    }
    return { executionHash: hash, ...(e.job ? { job: e.job } : {}), pods, events, jobDeleted: e.jobDeleted };
  }

  /** Forgets an execution with neither Job nor pods left (its last snapshot said so); true if it did. */
  forgetIfEmpty(hash: string): boolean {
    const e = this.entries.get(hash);
    if (!e || e.job || e.pods.length > 0) return false;
    this.entries.delete(hash);
    return true;
  }

  /** True when the execution's Job records a reported outcome. */
  isReported(hash: string): boolean {
    const job = this.entries.get(hash)?.job;
    return job !== undefined && isReported(job);
  }

  /**
   * Swaps a reported execution's Job and pods for stubs (./slim.ts): what re-adoption still
   * reads. With cleanup off, or failed Jobs kept for their TTL, these are most of the cache.
   * Returns what was swapped, so the caller can swap the same objects in the reflectors' stores.
   */
  compact(hash: string): Replacement[] {
    const e = this.entries.get(hash);
    if (!e?.job) return [];
    const job = e.job;
    // One copy of the hash string for the Job, its pods and the index key.
    const labels = { [EXECUTION_HASH_LABEL]: hash };
    const stub = reportedJobStub(job);
    stub.metadata!.labels = labels;
    e.job = stub;
    const out: Replacement[] = [{ kind: "jobs", name: job.metadata?.name ?? "", from: job, to: stub }];
    for (const [i, pod] of e.pods.entries()) {
      const podName = pod.metadata?.name ?? "";
      const podStub = reportedPodStub(pod);
      podStub.metadata!.labels = labels;
      e.pods[i] = podStub;
      out.push({ kind: "pods", name: podName, from: pod, to: podStub });
    }
    return out;
  }

  /** task_id and execution_id of an execution, for log lines about it: the Job's exact annotations. */
  taskIds(hash: string): { task_id?: string; execution_id?: string } {
    const ann = this.entries.get(hash)?.job?.metadata?.annotations;
    const taskId = ann?.[TASK_ID_ANNOTATION];
    if (!taskId) return {};
    return { task_id: taskId, execution_id: ann?.[EXECUTION_ID_ANNOTATION] || taskId };
  }
}

function podIndex(pods: readonly V1Pod[], name: string): number {
  for (let i = 0; i < pods.length; i++) if (pods[i]!.metadata?.name === name) return i;
  return -1;
}

function time(v: Date | string | undefined): number {
  if (!v) return 0;
  return v instanceof Date ? v.getTime() : Date.parse(v) || 0;
}
