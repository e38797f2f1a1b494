// The harness's own view of the worker's Jobs and Pods: one list+watch per
// kind, recording when each task's Job first appeared and when its pod first
// showed a terminal phase, by the time the watch event arrived here.
//
// The watches are cluster-scoped with a namespace field selector on purpose:
// the benchmark counts only namespaced requests as the worker's, so the
// harness's own requests can never be mistaken for the worker's.
import { Kube, type KubeObject, type WatchEventType } from "./kube.ts";

export const TASK_ID_LABEL = "oz-task-id";
export const TASK_ID_ANNOTATION = "oz.warp.dev/task-id";

export function taskIdOf(obj: KubeObject): string | undefined {
  return obj.metadata.annotations?.[TASK_ID_ANNOTATION] ?? obj.metadata.labels?.[TASK_ID_LABEL];
}

export class TaskObserver {
  /** First time a task's Job was seen by a watch event (not in the initial list). */
  readonly jobSeenAt = new Map<string, number>();
  /** First time a task's pod was seen Succeeded or Failed. */
  readonly podTerminalAt = new Map<string, number>();
  /** First time a task's Job was seen with a Complete or Failed condition (set by the Job controller). */
  readonly jobTerminalAt = new Map<string, number>();
  /** Latest pod phase per task. */
  readonly podPhase = new Map<string, string>();
  private readonly jobTask = new Map<string, string>();
  private readonly abort = new AbortController();
  private informers: ReturnType<Kube["informer"]>[] = [];

  private readonly kube: Kube;
  private readonly namespace: string;
  constructor(
    kube: Kube,
    namespace: string,
  ) {
    this.kube = kube;
    this.namespace = namespace;
  }

  async start(): Promise<void> {
    const query = { fieldSelector: `metadata.namespace=${this.namespace}` };
    this.informers = [
      this.kube.informer("/apis/batch/v1/jobs", (t, o, at, listed) => this.onJob(t, o, at, listed), this.abort.signal, query),
      this.kube.informer("/api/v1/pods", (t, o, at) => this.onPod(t, o, at), this.abort.signal, query),
    ];
    await Promise.all(this.informers.map((i) => i.synced));
  }

  /** Watch connections this observer holds open right now. */
  openWatches(): number {
    return this.informers.reduce((n, i) => n + i.openWatches(), 0);
  }

  stop(): void {
    this.abort.abort();
  }

  private onJob(type: WatchEventType, job: KubeObject, at: number, listed: boolean): void {
    const taskId = taskIdOf(job);
    if (taskId === undefined) return;
    this.jobTask.set(job.metadata.name, taskId);
    if (type === "ADDED" && !listed && !this.jobSeenAt.has(taskId)) this.jobSeenAt.set(taskId, at);
    const conditions = (job.status?.conditions ?? []) as { type?: string; status?: string }[];
    const terminal = conditions.some((c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True");
    if (terminal && !this.jobTerminalAt.has(taskId)) this.jobTerminalAt.set(taskId, at);
  }

  private onPod(type: WatchEventType, pod: KubeObject, at: number): void {
    const labels = pod.metadata.labels ?? {};
    const taskId = taskIdOf(pod) ?? this.jobTask.get(labels["batch.kubernetes.io/job-name"] ?? labels["job-name"] ?? "");
    if (taskId === undefined || type === "DELETED") return;
    const phase = String(pod.status?.phase ?? "");
    this.podPhase.set(taskId, phase);
    if ((phase === "Succeeded" || phase === "Failed") && !this.podTerminalAt.has(taskId)) this.podTerminalAt.set(taskId, at);
  }
}
