// The outcome of a task as a pure function of what the cluster shows:
// (Job, its Pods, the Pods' Events, now) → running | succeeded | failed.
// No I/O, no clock reads except through the `now` argument.
import type {
  CoreV1Event,
  V1Container,
  V1ContainerStatus,
  V1Job,
  V1JobCondition,
  V1Pod,
  V1PodCondition,
} from "@kubernetes/client-node";
import { type FailurePhase, type FailureReason, failurePhase } from "../oz/failure-reasons.ts";

export interface OutcomeInput {
  /** The task Job; absent when it is not (or no longer) in the cache. Pods alone can still reveal a failure. */
  job?: V1Job;
  pods: readonly V1Pod[];
  /** Events of the pods (involvedObject.kind=Pod); only needed when `needsEvents` said so. */
  events?: readonly CoreV1Event[];
  now: Date | number;
  /** How long a pod may stay `PodScheduled=False/Unschedulable`; 0 turns the rule off. */
  unschedulableTimeoutMs: number;
}

export interface RunningOutcome {
  state: "running";
}
export interface SucceededOutcome {
  state: "succeeded";
  message: string;
}
export interface FailedOutcome {
  state: "failed";
  reason: FailureReason;
  /** The failing process's status (128+signal for a signal); absent when unknown. */
  exitCode?: number;
  /** For humans: what failed, where (pod, container, namespace), what to check. */
  message: string;
  podName?: string;
  containerName?: string;
}
export type Outcome = RunningOutcome | SucceededOutcome | FailedOutcome;

export { failurePhase, type FailurePhase };

/** A pod counts as "slow to start" (worth reading its Events) after this long. */
export const DEFAULT_EVENTS_SLOW_AFTER_MS = 5_000;

// Waiting reasons that are part of a normal start.
const NORMAL_WAITING = new Set(["ContainerCreating", "PodInitializing"]);
const IMAGE_PULL_WAITING = new Set(["ErrImagePull", "ImagePullBackOff"]);
const CREATE_WAITING = new Set(["CreateContainerConfigError", "CreateContainerError"]);
// Waiting reasons that decide the outcome on their own (no Events needed).
const DECISIVE_WAITING = new Set([...IMAGE_PULL_WAITING, "InvalidImageName", ...CREATE_WAITING]);
// Kubelet events that show a pod got past mounting its volumes.
const PROGRESS_EVENTS = new Set(["Pulling", "Pulled", "Created", "Started", "Killing"]);

export function decideOutcome(input: OutcomeInput): Outcome {
  const now = toMillis(input.now) ?? Date.now();
  const { job } = input;
  const pods = sortPods(input.pods);
  const events = input.events ?? [];
  const ns = job?.metadata?.namespace ?? pods[0]?.metadata?.namespace ?? "default";
  const jobName = job?.metadata?.name ?? "(unknown)";

  if (job) {
    if (hasCondition(job, "Complete")) {
      return { state: "succeeded", message: `Job ${jobName} (namespace ${ns}) completed successfully` };
    }
    const failed = trueCondition(job, "Failed") ?? trueCondition(job, "FailureTarget");
    if (failed) {
      if (failed.reason === "DeadlineExceeded") {
        const secs = job.spec?.activeDeadlineSeconds;
        const limit = secs !== undefined ? ` of ${secs}s` : "";
        const pod = pods[pods.length - 1];
        const podName = pod?.metadata?.name;
        return {
          state: "failed",
          reason: "active_deadline",
          message:
            `Job ${jobName} (namespace ${ns}) ran past its active deadline${limit} and was stopped` +
            `${podName ? ` together with its pod ${podName}` : ""}; ` +
            `raise active_deadline_seconds in the worker config if tasks need longer`,
          ...(pod?.metadata?.name ? { podName: pod.metadata.name } : {}),
        };
      }
      // BackoffLimitExceeded, PodFailurePolicy, …: the pods know the real cause.
      for (const pod of pods) {
        const f = podFailure(pod, ns, events, now, input.unschedulableTimeoutMs, true);
        if (f) return f;
      }
      const why = [failed.reason, failed.message].filter(Boolean).join(": ");
      return {
        state: "failed",
        reason: "job_failed",
        message:
          `Job ${jobName} (namespace ${ns}) failed${why ? ` (${why})` : ""}; ` +
          `check kubectl describe job -n ${ns} ${jobName}`,
      };
    }
  }

  // No terminal Job condition yet: fail fast on what the pods show.
  for (const pod of pods) {
    const f = podFailure(pod, ns, events, now, input.unschedulableTimeoutMs, false);
    if (f) return f;
  }
  // A task Job has one completion and backoffLimit 0, so its pod's success IS the Job's
  // success; the Job controller's Complete condition follows seconds later under load.
  const succeeded = pods.find((p) => p.status?.phase === "Succeeded" && !p.metadata?.deletionTimestamp);
  if (succeeded) {
    return {
      state: "succeeded",
      message: `pod ${succeeded.metadata?.name} of Job ${jobName} (namespace ${ns}) completed successfully`,
    };
  }
  return { state: "running" };
}

/**
 * True when a pod shows trouble that only its Events can explain (e.g. stuck creating
 * containers: a volume that cannot be mounted). The watcher reads Events only then.
 */
export function needsEvents(
  pods: readonly V1Pod[],
  now: Date | number = Date.now(),
  slowAfterMs: number = DEFAULT_EVENTS_SLOW_AFTER_MS,
): boolean {
  const t = toMillis(now) ?? Date.now();
  return pods.some((p) => podNeedsEvents(p, t, slowAfterMs));
}

export function podNeedsEvents(pod: V1Pod, now: Date | number, slowAfterMs = DEFAULT_EVENTS_SLOW_AFTER_MS): boolean {
  if (isTerminal(pod) || pod.metadata?.deletionTimestamp) return false;
  const statuses = allStatuses(pod);
  // An unusual waiting reason that is not decisive on its own (RunContainerError, CrashLoopBackOff, …).
  if (statuses.some((s) => isOddWaiting(s))) return true;
  const stuckSince = stuckCreatingSince(pod);
  if (stuckSince === undefined) return false;
  const t = toMillis(now) ?? Date.now();
  return t - stuckSince >= slowAfterMs;
}

/**
 * When a time-based rule could next change the outcome of these pods (epoch ms), or undefined.
 * Nothing in the cluster changes when the unschedulable timeout passes, so the watcher uses
 * this to re-evaluate (and to start reading Events once a pod has been stuck long enough).
 */
export function nextRecheckAt(input: {
  pods: readonly V1Pod[];
  now: Date | number;
  unschedulableTimeoutMs: number;
  slowAfterMs?: number;
}): number | undefined {
  const now = toMillis(input.now) ?? Date.now();
  const slowAfter = input.slowAfterMs ?? DEFAULT_EVENTS_SLOW_AFTER_MS;
  let next: number | undefined;
  const consider = (t: number | undefined) => {
    if (t !== undefined && t > now && (next === undefined || t < next)) next = t;
  };
  for (const pod of input.pods) {
    if (isTerminal(pod) || pod.metadata?.deletionTimestamp) continue;
    if (input.unschedulableTimeoutMs > 0) {
      const since = unschedulableSince(pod);
      if (since !== undefined) consider(since + input.unschedulableTimeoutMs);
    }
    const stuck = stuckCreatingSince(pod);
    if (stuck !== undefined) consider(stuck + slowAfter);
  }
  return next;
}

// ---------------------------------------------------------------------------
// Per-pod rules

function podFailure(
  pod: V1Pod,
  ns: string,
  events: readonly CoreV1Event[],
  now: number,
  unschedulableTimeoutMs: number,
  jobFailed: boolean,
): FailedOutcome | undefined {
  const podName = pod.metadata?.name ?? "(unnamed pod)";
  const podNs = pod.metadata?.namespace ?? ns;
  const where = `pod ${podName} (namespace ${podNs})`;
  const base = { state: "failed" as const, podName };

  // Eviction (node pressure, preemption, the Eviction API, taint manager).
  const disruption = trueCondition(pod, "DisruptionTarget");
  if (pod.status?.reason === "Evicted" || disruption) {
    const detail = pod.status?.message ?? disruption?.message ?? disruption?.reason;
    const node = pod.spec?.nodeName;
    return {
      ...base,
      reason: "evicted",
      message:
        `${where} was evicted${detail ? `: ${detail}` : ""}; check the node's pressure and the task's ` +
        `resource requests${node ? ` (kubectl describe node ${node})` : ""}`,
    };
  }

  // A pod being deleted for another reason (job deadline, cancellation, manual delete): its
  // containers die from the deletion, which is not the cause; wait for the Job's condition.
  if (pod.metadata?.deletionTimestamp && !jobFailed) return undefined;

  // Init containers in order; native sidecars (restartPolicy Always) never fail by their exit code.
  const initSpecs = pod.spec?.initContainers ?? [];
  const initStatuses = pod.status?.initContainerStatuses ?? [];
  for (const spec of initSpecs) {
    const st = initStatuses.find((s) => s.name === spec.name);
    if (!st) continue;
    const sidecar = spec.restartPolicy === "Always";
    const waiting = waitingFailure(st, spec, where, podNs, podName, true);
    if (waiting) return { ...base, containerName: spec.name, ...waiting };
    const term = st.state?.terminated;
    if (term && !sidecar) {
      const code = exitCodeOf(term.exitCode, term.signal);
      if (code !== 0) {
        const oom = term.reason === "OOMKilled" ? " (OOMKilled: it ran out of memory)" : "";
        return {
          ...base,
          reason: "init_container",
          exitCode: code,
          containerName: spec.name,
          message:
            `init container ${spec.name} in ${where} exited with code ${code}${oom}` +
            `${spec.name === "setup" ? " (the worker's setup_command)" : ""}; ` +
            `check its logs: kubectl logs -n ${podNs} ${podName} -c ${spec.name}`,
        };
      }
    }
  }

  // Regular containers.
  const specs = pod.spec?.containers ?? [];
  for (const st of pod.status?.containerStatuses ?? []) {
    const spec = specs.find((c) => c.name === st.name);
    const waiting = waitingFailure(st, spec, where, podNs, podName, false);
    if (waiting) return { ...base, containerName: st.name, ...waiting };
    const term = st.state?.terminated;
    if (!term) continue;
    const code = exitCodeOf(term.exitCode, term.signal);
    if (code === 0) continue;
    if (term.reason === "OOMKilled") {
      return {
        ...base,
        reason: "container_oom",
        exitCode: code,
        containerName: st.name,
        message:
          `container ${st.name} in ${where} was killed for running out of memory (OOMKilled, exit code ${code}); ` +
          `raise its memory limit (the task's instance shape or pod_template resources)`,
      };
    }
    const sig = term.signal ? ` (signal ${term.signal})` : code > 128 && code < 160 ? ` (signal ${code - 128})` : "";
    return {
      ...base,
      reason: "container_exit",
      exitCode: code,
      containerName: st.name,
      message:
        `container ${st.name} in ${where} exited with code ${code}${sig}; ` +
        `check the task's logs: kubectl logs -n ${podNs} ${podName} -c ${st.name}`,
    };
  }

  // Scheduling.
  if (unschedulableTimeoutMs > 0) {
    const since = unschedulableSince(pod);
    if (since !== undefined && now - since >= unschedulableTimeoutMs) {
      const cond = podCondition(pod, "PodScheduled");
      const secs = Math.round((now - since) / 1000);
      return {
        ...base,
        reason: "unschedulable",
        message:
          `${where} could not be scheduled for ${secs}s${cond?.message ? `: ${cond.message}` : ""}; ` +
          `check node selectors, affinity, tolerations and resource requests (pod_template, instance shape) ` +
          `against the cluster's nodes (kubectl describe pod -n ${podNs} ${podName})`,
      };
    }
  }

  // Volumes that cannot be mounted (only Events tell).
  const mount = failedMount(pod, events);
  if (mount) {
    return {
      ...base,
      reason: "volume_mount",
      message:
        `${where} cannot mount its volumes${mount.message ? `: ${mount.message}` : ""}; ` +
        `check the volumes of pod_template, referenced Secrets/ConfigMaps/PVCs and workspace_size_limit ` +
        `(kubectl describe pod -n ${podNs} ${podName})`,
    };
  }

  // A failed pod that nothing above explains.
  if (pod.status?.phase === "Failed" && jobFailed) {
    const why = [pod.status.reason, pod.status.message].filter(Boolean).join(": ");
    if (pod.status.reason === "DeadlineExceeded") {
      return {
        ...base,
        reason: "active_deadline",
        message: `${where} ran past its active deadline${why ? ` (${why})` : ""}; raise active_deadline_seconds if tasks need longer`,
      };
    }
    return {
      ...base,
      reason: "job_failed",
      message: `${where} failed${why ? ` (${why})` : ""}; check kubectl describe pod -n ${podNs} ${podName}`,
    };
  }
  return undefined;
}

type WaitingFailure = Pick<FailedOutcome, "reason" | "message">;

function waitingFailure(
  st: V1ContainerStatus,
  spec: V1Container | undefined,
  where: string,
  ns: string,
  podName: string,
  init: boolean,
): WaitingFailure | undefined {
  const w = st.state?.waiting;
  if (!w?.reason || !DECISIVE_WAITING.has(w.reason)) return undefined;
  const kind = init ? "init container" : "container";
  const image = spec?.image ?? st.image;
  const detail = w.message ? `: ${w.message}` : "";
  if (IMAGE_PULL_WAITING.has(w.reason)) {
    return {
      reason: "image_pull",
      message:
        `${kind} ${st.name} in ${where} cannot pull image ${image ?? "(unknown)"} (${w.reason}${detail}); ` +
        `check the image name and tag, that the registry is reachable from the nodes, and imagePullSecrets in pod_template`,
    };
  }
  if (w.reason === "InvalidImageName") {
    return {
      reason: "invalid_image",
      message:
        `${kind} ${st.name} in ${where} has an invalid image reference ${JSON.stringify(image ?? "")}${detail}; ` +
        `check the environment's docker image or default_image`,
    };
  }
  // CreateContainerConfigError / CreateContainerError
  return {
    reason: init ? "init_container" : "container_create",
    message:
      `${kind} ${st.name} in ${where} could not be created (${w.reason}${detail}); ` +
      `check the Secrets and ConfigMaps it references and its pod_template settings ` +
      `(kubectl describe pod -n ${ns} ${podName})`,
  };
}

function failedMount(pod: V1Pod, events: readonly CoreV1Event[]): CoreV1Event | undefined {
  if (isTerminal(pod) || stuckCreatingSince(pod) === undefined) return undefined;
  const name = pod.metadata?.name;
  const uid = pod.metadata?.uid;
  const mine = events.filter(
    (e) =>
      e.involvedObject?.name === name &&
      (e.involvedObject?.kind ?? "Pod") === "Pod" &&
      (!uid || !e.involvedObject?.uid || e.involvedObject.uid === uid),
  );
  let latest: CoreV1Event | undefined;
  let latestAt = -Infinity;
  for (const e of mine) {
    if (e.type !== "Warning" || e.reason !== "FailedMount") continue;
    const at = eventTime(e) ?? 0;
    if (at >= latestAt) {
      latest = e;
      latestAt = at;
    }
  }
  if (!latest) return undefined;
  // A later sign of progress means the mount went through after all (transient errors happen).
  const progressed = mine.some((e) => PROGRESS_EVENTS.has(e.reason ?? "") && (eventTime(e) ?? 0) > latestAt);
  return progressed ? undefined : latest;
}

// ---------------------------------------------------------------------------
// Helpers

/** k8s reports 128+n for a signal already; when it says 0 but names a signal, make it 128+signal. */
function exitCodeOf(exitCode: number | undefined, signal: number | undefined): number {
  const code = exitCode ?? 0;
  if (code === 0 && signal) return 128 + signal;
  return code;
}

function isOddWaiting(s: V1ContainerStatus): boolean {
  const r = s.state?.waiting?.reason;
  return !!r && !NORMAL_WAITING.has(r) && !DECISIVE_WAITING.has(r);
}

/** Since when (epoch ms) a scheduled, pending pod has started none of its containers; else undefined. */
function stuckCreatingSince(pod: V1Pod): number | undefined {
  if ((pod.status?.phase ?? "Pending") !== "Pending") return undefined;
  const scheduled = podCondition(pod, "PodScheduled");
  if (scheduled?.status !== "True") return undefined;
  const statuses = allStatuses(pod);
  // Started, or waiting for a reason other than a normal start: not "stuck creating".
  const started = statuses.some((s) => s.state?.running || s.state?.terminated);
  const unusual = statuses.some((s) => s.state?.waiting?.reason && !NORMAL_WAITING.has(s.state.waiting.reason));
  if (started || unusual) return undefined;
  return toMillis(scheduled.lastTransitionTime) ?? toMillis(pod.metadata?.creationTimestamp);
}

function unschedulableSince(pod: V1Pod): number | undefined {
  if (isTerminal(pod)) return undefined;
  const c = podCondition(pod, "PodScheduled");
  if (!c || c.status !== "False" || c.reason !== "Unschedulable") return undefined;
  const t = toMillis(c.lastTransitionTime) ?? toMillis(pod.metadata?.creationTimestamp);
  // Kubernetes timestamps have whole seconds: the transition happened somewhere in that second.
  // Counting from its end means the timeout never fires early.
  return t === undefined ? undefined : t % 1000 === 0 ? t + 999 : t;
}

function allStatuses(pod: V1Pod): V1ContainerStatus[] {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
}

function isTerminal(pod: V1Pod): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

function podCondition(pod: V1Pod, type: string): V1PodCondition | undefined {
  return pod.status?.conditions?.find((c) => c.type === type);
}

function trueCondition(obj: V1Job | V1Pod, type: string): V1JobCondition | V1PodCondition | undefined {
  const conds: Array<V1JobCondition | V1PodCondition> = obj.status?.conditions ?? [];
  return conds.find((c) => c.type === type && c.status === "True");
}

function hasCondition(job: V1Job, type: string): boolean {
  return trueCondition(job, type) !== undefined;
}

/** Oldest first, so the first failure found is the earliest pod's. */
function sortPods(pods: readonly V1Pod[]): V1Pod[] {
  return [...pods].sort(
    (a, b) => (toMillis(a.metadata?.creationTimestamp) ?? 0) - (toMillis(b.metadata?.creationTimestamp) ?? 0),
  );
}

function eventTime(e: CoreV1Event): number | undefined {
  return (
    toMillis(e.series?.lastObservedTime) ??
    toMillis(e.lastTimestamp) ??
    toMillis(e.eventTime) ??
    toMillis(e.firstTimestamp) ??
    toMillis(e.metadata?.creationTimestamp)
  );
}

/** Accepts Date objects (deserialized models) and RFC 3339 strings (raw JSON). */
export function toMillis(v: Date | string | number | null | undefined): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  const t = v instanceof Date ? v.getTime() : Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}
