// The preflight Job's verdict as a pure function of what the watches have shown so far
// (its pods and the Warning events of the Job and its pods). Decided as soon as the outcome is
// known; `decideAtTimeout` names what was last seen when it never was.
import { parsePodSecurity, podSecurityFix } from "./pod-security.ts";

export interface ContainerStatusLike {
  name: string;
  image?: string;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: { startedAt?: unknown };
    terminated?: { exitCode?: number; signal?: number; reason?: string; message?: string };
  };
}

export interface PodLike {
  metadata?: { name?: string; deletionTimestamp?: unknown };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
    initContainerStatuses?: ContainerStatusLike[];
    containerStatuses?: ContainerStatusLike[];
  };
}

export interface EventLike {
  type?: string;
  reason?: string;
  message?: string;
  involvedObject?: { kind?: string; name?: string };
  count?: number;
}

export interface PreflightObservation {
  namespace: string;
  jobName: string;
  /** `preflight_image`. */
  image: string;
  /** Image-volume mode passes when the pod succeeds; default mode once it started. */
  useImageVolumes: boolean;
  /** Latest state of each pod of the Job (deleted ones removed). */
  pods: PodLike[];
  /** Warning events about the Job or its pods, oldest first. */
  events: EventLike[];
}

export type Verdict =
  | { state: "pending"; lastSeen: string }
  | { state: "pass" | "fail"; summary: string; details?: string[]; fix?: string };

const PULL_REASONS = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"]);
const CREATE_REASONS = new Set(["CreateContainerConfigError", "CreateContainerError", "RunContainerError"]);

const IMAGE_FIX = (image: string) =>
  `Set backend.kubernetes.preflight_image to an image the cluster's nodes can pull (e.g. a copy of "${image}" in an allowlisted ` +
  `registry or mirror); for a private registry, add its pull secret to pod_template.imagePullSecrets (they apply to the preflight Job too).`;

function containers(pod: PodLike): { kind: "init container" | "container"; status: ContainerStatusLike }[] {
  return [
    ...(pod.status?.initContainerStatuses ?? []).map((status) => ({ kind: "init container" as const, status })),
    ...(pod.status?.containerStatuses ?? []).map((status) => ({ kind: "container" as const, status })),
  ];
}

/** `FailedCreate` messages start with `Error creating: `; the rest is the API server's answer. */
export function stripErrorCreating(message: string): string {
  return message.replace(/^Error creating:\s*/, "");
}

/** The verdict so far. */
export function decidePreflight(obs: PreflightObservation): Verdict {
  const ns = obs.namespace;
  // 1. Warning events: the Job controller could not create the pod, or the pod hit trouble.
  for (const ev of obs.events) {
    if (ev.type !== "Warning") continue;
    const msg = (ev.message ?? "").trim();
    const on = `${ev.involvedObject?.kind ?? "object"} ${ev.involvedObject?.name ?? ""}`.trim();
    if (ev.reason === "FailedCreate") return failedCreate(obs, stripErrorCreating(msg));
    if (ev.reason === "FailedMount" || ev.reason === "FailedAttachVolume") {
      return {
        state: "fail",
        summary: `the preflight pod cannot mount its volumes (${ev.reason})`,
        details: [`${ev.reason} on ${on}: ${msg}`],
        fix: obs.useImageVolumes
          ? `The preflight image "${obs.image}" could not be mounted as an image volume. Check that the cluster supports image volumes ` +
            `(Kubernetes >= 1.33 with the ImageVolume feature, and a container runtime that implements it) and that the nodes can pull the image; ` +
            `or set backend.kubernetes.use_image_volumes: false. ${IMAGE_FIX(obs.image)}`
          : `Check the volumes the pod_template adds (Secrets, ConfigMaps and PVCs must exist in namespace "${ns}").`,
      };
    }
    if ((ev.reason === "Failed" || ev.reason === "ErrImagePull" || ev.reason === "BackOff") && /pull|image/i.test(msg)) {
      return {
        state: "fail",
        summary: `cannot pull the preflight image "${obs.image}" (${ev.reason})`,
        details: [`${ev.reason} on ${on}: ${msg}`],
        fix: IMAGE_FIX(obs.image),
      };
    }
  }

  const pods = obs.pods.filter((p) => !p.metadata?.deletionTimestamp);
  // 2. Pod states: image pull and container creation problems, failure.
  for (const pod of pods) {
    const name = pod.metadata?.name ?? "?";
    for (const { kind, status } of containers(pod)) {
      const waiting = status.state?.waiting;
      if (waiting?.reason && PULL_REASONS.has(waiting.reason)) {
        const image = status.image || obs.image;
        return {
          state: "fail",
          summary: `cannot pull the preflight image "${image}" (${waiting.reason})`,
          details: [`${kind} "${status.name}" of pod ${name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`],
          fix: IMAGE_FIX(image),
        };
      }
      if (waiting?.reason && CREATE_REASONS.has(waiting.reason)) {
        return {
          state: "fail",
          summary: `the preflight pod's ${kind} "${status.name}" cannot be created (${waiting.reason})`,
          details: [`pod ${name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`],
          fix: `Check the pod-level settings pod_template passes to the preflight pod (securityContext, runtimeClassName, serviceAccountName).`,
        };
      }
    }
    const crashed = containers(pod).find(({ status }) => (status.state?.terminated?.exitCode ?? 0) !== 0);
    if (pod.status?.phase === "Failed" || crashed) {
      const details = terminatedDetails(pod);
      if (pod.status?.reason || pod.status?.message) details.unshift(`pod ${name}: ${[pod.status?.reason, pod.status?.message].filter(Boolean).join(": ")}`);
      return {
        state: "fail",
        summary: `the preflight pod ${name} failed${firstFailure(pod)}`,
        details,
        fix: obs.useImageVolumes
          ? `The pod checks that the preflight image is mounted at /preflight-image; check the cluster's image volume support, or set backend.kubernetes.use_image_volumes: false.`
          : `The preflight image "${obs.image}" must provide /bin/sh; set backend.kubernetes.preflight_image to one that does (busybox works).`,
      };
    }
  }

  // 3. Passing.
  for (const pod of pods) {
    const name = pod.metadata?.name ?? "?";
    if (pod.status?.phase === "Succeeded") {
      return {
        state: "pass",
        summary: obs.useImageVolumes
          ? `pod ${name} ran with the preflight image "${obs.image}" mounted as an image volume`
          : `pod ${name} was admitted, pulled "${obs.image}" and ran its root init container`,
      };
    }
    if (obs.useImageVolumes) continue;
    const started = containers(pod).find(({ status }) => status.state?.running || status.state?.terminated);
    if (started) {
      return { state: "pass", summary: `pod ${name} was admitted and started: root init container allowed, "${obs.image}" pulled` };
    }
    const unsched = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable");
    if (unsched) {
      return {
        state: "pass",
        summary: `pod ${name} was admitted (not scheduled yet, so the image pull is not verified)`,
        details: [`pod ${name} is Unschedulable: ${unsched.message ?? ""}`.trim(), "task pods with the same scheduling constraints would wait the same way (unschedulable_timeout)"],
      };
    }
  }
  return { state: "pending", lastSeen: lastSeen(obs) };
}

function failedCreate(obs: PreflightObservation, message: string): Verdict {
  const ns = obs.namespace;
  const quote = `FailedCreate: ${message}`;
  const psa = parsePodSecurity(message);
  if (psa) {
    return {
      state: "fail",
      summary: `Pod Security "${psa.policy}" in namespace "${ns}" rejected the preflight pod: ${psa.violations.map((v) => v.rule).join(", ")}`,
      details: [quote, ...psa.violations.map((v) => `violated: ${v.rule}${v.detail ? ` (${v.detail})` : ""}`)],
      fix: podSecurityFix(ns, psa, obs.useImageVolumes),
    };
  }
  const webhook = /admission webhook "([^"]+)" denied/.exec(message);
  if (webhook) {
    return {
      state: "fail",
      summary: `the admission webhook "${webhook[1]}" rejected the preflight pod in namespace "${ns}"`,
      details: [quote],
      fix: `A policy engine (Gatekeeper, Kyverno, ...) rejects the worker's pod shape: ask for an exception for the oz-worker pods in namespace "${ns}", or adjust pod_template to satisfy the policy.`,
    };
  }
  if (/exceeded quota/i.test(message)) {
    return {
      state: "fail",
      summary: `a ResourceQuota in namespace "${ns}" rejected the preflight pod`,
      details: [quote],
      fix: `Raise the namespace's ResourceQuota, or lower backend.kubernetes.preflight_resources (and the task resources).`,
    };
  }
  if (/serviceaccount .*not found|service account .*not found/i.test(message)) {
    return {
      state: "fail",
      summary: `the pod's ServiceAccount does not exist in namespace "${ns}"`,
      details: [quote],
      fix: `Create the ServiceAccount named by pod_template.serviceAccountName in namespace "${ns}", or fix the name.`,
    };
  }
  return {
    state: "fail",
    summary: `the Job controller could not create the preflight pod in namespace "${ns}"`,
    details: [quote],
    fix: `Check the namespace's admission policies (Pod Security, Gatekeeper, Kyverno), LimitRanges and quotas against the message above.`,
  };
}

function describeTerminated(t: NonNullable<NonNullable<ContainerStatusLike["state"]>["terminated"]>): string {
  return `exited ${t.exitCode ?? "?"}${t.reason ? ` (${t.reason})` : ""}${t.message ? `: ${t.message}` : ""}`;
}

function firstFailure(pod: PodLike): string {
  for (const { kind, status } of containers(pod)) {
    const t = status.state?.terminated;
    if (t && t.exitCode !== 0) return `: ${kind} "${status.name}" ${describeTerminated(t)}`;
  }
  return pod.status?.reason ? `: ${pod.status.reason}` : "";
}

function terminatedDetails(pod: PodLike): string[] {
  const out: string[] = [];
  for (const { kind, status } of containers(pod)) {
    const t = status.state?.terminated;
    if (t) out.push(`${kind} "${status.name}" ${describeTerminated(t)}`);
  }
  return out;
}

/** One line: the most telling thing seen so far. */
export function lastSeen(obs: PreflightObservation): string {
  const pods = obs.pods.filter((p) => !p.metadata?.deletionTimestamp);
  if (pods.length === 0) {
    const last = obs.events.at(-1);
    return last
      ? `no pod created yet; last event ${last.reason ?? "?"}: ${last.message ?? ""}`.trim()
      : `no pod created yet and no event about Job ${obs.jobName} (is the Job controller running?)`;
  }
  const pod = pods[pods.length - 1]!;
  const name = pod.metadata?.name ?? "?";
  const parts = [`pod ${name} ${pod.status?.phase ?? "Pending"}`];
  const sched = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (!sched) parts.push("not scheduled yet");
  else if (sched.status !== "True") parts.push(`not scheduled: ${[sched.reason, sched.message].filter(Boolean).join(": ")}`);
  for (const { kind, status } of containers(pod)) {
    const w = status.state?.waiting;
    if (w) {
      parts.push(`${kind} "${status.name}" waiting${w.reason ? ` (${w.reason}${w.message ? `: ${w.message}` : ""})` : ""}`);
      break;
    }
    if (status.state?.running) {
      parts.push(`${kind} "${status.name}" running`);
      break;
    }
  }
  return parts.join("; ");
}

/** The verdict when the deadline passed without one. */
export function decideAtTimeout(obs: PreflightObservation, timeoutMs: number): Verdict & { state: "pass" | "fail" } {
  const v = decidePreflight(obs);
  if (v.state !== "pending") return v;
  const secs = `${+(timeoutMs / 1000).toFixed(1)} s`;
  const pod = obs.pods.find((p) => !p.metadata?.deletionTimestamp);
  if (pod && !obs.useImageVolumes) {
    // Default mode passes once a pod was created (the reference rule); its start was not seen.
    return {
      state: "pass",
      summary: `pod ${pod.metadata?.name ?? "?"} was admitted but did not start within ${secs}, so the image pull is not verified`,
      details: [`last seen: ${v.lastSeen}`],
    };
  }
  return {
    state: "fail",
    summary: `no verdict within ${secs}: ${v.lastSeen}`,
    details: [`last seen: ${v.lastSeen}`],
    fix: obs.useImageVolumes
      ? `The preflight pod must run to completion with the image volume mounted. Check the namespace's events (kubectl -n ${obs.namespace} get events), ` +
        `image volume support and node capacity, or raise --timeout.`
      : `Check the namespace's events (kubectl -n ${obs.namespace} get events) and that the cluster's Job controller is running, or raise --timeout.`,
  };
}
