// `scripts/bench --kept-jobs K`: K finished task Jobs of the worker, each with its
// Succeeded pod, as a worker with cleanup off leaves them (outcome reported and recorded
// on the Job), created before the worker starts so that its first list holds them all.
//
// Fast on the sandbox: the Jobs carry `spec.managedBy`, so the Job controller leaves them
// alone and the harness writes their Complete status itself; the pods are created bound to
// no node and held by a scheduling gate (no scheduler, node simulator or pod GC touches
// them), and get a terminal status through pods/status. Four requests per pair, many in
// flight. The objects are the worker's own (src/core/job-spec.ts), so sizes are real.
import { buildTaskObjects } from "../../src/core/job-spec.ts";
import { REPORTED_OUTCOME_ANNOTATION } from "../../src/core/naming.ts";
import { SAMPLE_ASSIGNMENT } from "../../src/core/sample-assignment.ts";
import type { WorkerConfig } from "../../src/core/types.ts";
import type { Kube } from "./kube.ts";

type Json = Record<string, unknown>;

/** The Job controller ignores Jobs managed by anyone else (JobManagedBy, on since 1.32). */
export const KEPT_MANAGED_BY = "oz-bench.warp.dev/kept-jobs";
const GATE = "oz-bench.warp.dev/kept";

export interface KeptPair {
  job: Json;
  /** Merge patch for jobs/status once the Job exists. */
  jobStatus: Json;
  /** The pod without its owner reference (the Job's uid is known once it exists). */
  pod: Json;
  /** Merge patch for pods/status once the pod exists. */
  podStatus: Json;
}

/**
 * The i-th kept pair: a Succeeded task of `config`'s worker that finished at `finishedAt`
 * (epoch ms), reported to Oz, kept because cleanup is off.
 */
export function keptPair(config: WorkerConfig, i: number, finishedAt: number, run: string): KeptPair {
  const taskId = `kept-${run}-${i}`;
  const { job } = buildTaskObjects(config, {
    ...SAMPLE_ASSIGNMENT,
    task_id: taskId,
    execution_id: `${taskId}-exec`,
    task: { ...SAMPLE_ASSIGNMENT.task, id: taskId },
    // No Secret to create: the pod never runs.
    env_vars: {},
  });
  const t = (s: number) => new Date(finishedAt - s * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const j = structuredClone(job) as unknown as Json & { metadata: Json & { annotations?: Json; name: string }; spec: Json & { template: { metadata?: Json; spec: Json } } };
  j.metadata.annotations = {
    ...(j.metadata.annotations ?? {}),
    [REPORTED_OUTCOME_ANNOTATION]: JSON.stringify({ result: "succeeded", reportedAt: t(0) }),
  };
  j.spec.managedBy = KEPT_MANAGED_BY;
  const podSpec = j.spec.template.spec as Json & { initContainers?: Json[]; containers?: Json[] };
  const templateLabels = (j.spec.template.metadata?.labels ?? {}) as Json;
  const name = j.metadata.name;
  const pod: Json = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${name}-kept0`,
      labels: { ...templateLabels, "batch.kubernetes.io/job-name": name, "job-name": name },
    },
    spec: { ...podSpec, schedulingGates: [{ name: GATE }] },
  };
  const completed = { type: "Complete", status: "True", lastProbeTime: t(0), lastTransitionTime: t(0), reason: "CompletionsReached", message: "Reached expected number of succeeded pods" };
  const jobStatus: Json = {
    status: {
      startTime: t(30),
      completionTime: t(0),
      succeeded: 1,
      ready: 0,
      terminating: 0,
      uncountedTerminatedPods: {},
      conditions: [{ ...completed, type: "SuccessCriteriaMet" }, completed],
    },
  };
  const terminated = (c: Json, from: number, to: number) => ({
    name: c.name,
    image: c.image,
    imageID: `${String(c.image)}@sha256:${"0".repeat(64)}`,
    containerID: `containerd://${"ab".repeat(32)}`,
    ready: false,
    restartCount: 0,
    started: false,
    state: { terminated: { exitCode: 0, reason: "Completed", startedAt: t(from), finishedAt: t(to), containerID: `containerd://${"ab".repeat(32)}` } },
    lastState: {},
  });
  const cond = (type: string, status: string, at: number, reason?: string) => ({ type, status, lastProbeTime: null, lastTransitionTime: t(at), ...(reason ? { reason } : {}) });
  const podStatus: Json = {
    status: {
      phase: "Succeeded",
      conditions: [
        cond("PodReadyToStartContainers", "False", 0),
        cond("Initialized", "True", 25, "PodCompleted"),
        cond("Ready", "False", 0, "PodCompleted"),
        cond("ContainersReady", "False", 0, "PodCompleted"),
        cond("PodScheduled", "True", 30),
      ],
      hostIP: "127.0.0.1",
      hostIPs: [{ ip: "127.0.0.1" }],
      startTime: t(30),
      initContainerStatuses: (podSpec.initContainers ?? []).map((c) => terminated(c, 29, 25)),
      containerStatuses: (podSpec.containers ?? []).map((c) => terminated(c, 25, 0)),
      qosClass: "BestEffort",
    },
  };
  return { job: j, jobStatus, pod, podStatus };
}

const MERGE = "application/merge-patch+json";

/** Creates `count` kept pairs in `namespace` with `parallel` pairs in flight; progress through `say`. */
export async function createKeptJobs(
  kube: Kube,
  namespace: string,
  config: WorkerConfig,
  count: number,
  opts: { parallel?: number; say?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<{ seconds: number }> {
  const started = Date.now();
  const run = crypto.randomUUID().slice(0, 6);
  const ns = encodeURIComponent(namespace);
  let next = 0;
  let done = 0;
  let lastSay = Date.now();
  const one = async (i: number) => {
    const p = keptPair(config, i, started - (count - i) * 1000, run);
    const job = await kube.json<{ metadata: { name: string; uid: string } }>("POST", `/apis/batch/v1/namespaces/${ns}/jobs`, { body: p.job });
    await kube.json("PATCH", `/apis/batch/v1/namespaces/${ns}/jobs/${job.metadata.name}/status`, { body: p.jobStatus, contentType: MERGE });
    const meta = p.pod.metadata as Json;
    meta.ownerReferences = [{ apiVersion: "batch/v1", kind: "Job", name: job.metadata.name, uid: job.metadata.uid, controller: true, blockOwnerDeletion: true }];
    (meta.labels as Json)["batch.kubernetes.io/controller-uid"] = job.metadata.uid;
    (meta.labels as Json)["controller-uid"] = job.metadata.uid;
    await kube.json("POST", `/api/v1/namespaces/${ns}/pods`, { body: p.pod });
    await kube.json("PATCH", `/api/v1/namespaces/${ns}/pods/${meta.name as string}/status`, { body: p.podStatus, contentType: MERGE });
  };
  const lane = async () => {
    while (next < count && !opts.signal?.aborted) {
      const i = next++;
      await one(i);
      done++;
      if (Date.now() - lastSay > 10_000) {
        lastSay = Date.now();
        opts.say?.(`  ${done}/${count} kept Jobs created, ${((Date.now() - started) / 1000).toFixed(0)} s`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.parallel ?? 32, count) }, lane));
  return { seconds: (Date.now() - started) / 1000 };
}
