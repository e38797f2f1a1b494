// Task Jobs in the cluster: create (or adopt), the per-task Secret owned by the Job, delete,
// the reported-outcome annotation, and listing this worker's Jobs. Every failure becomes a
// KubeApiError with the HTTP status and a readable message.
//
// Plain JSON requests through the client's HTTP path rather than the generated BatchV1Api /
// CoreV1Api: those serialize every body and deserialize every answer through model classes
// (a full Job twice per request, in a burst of hundreds), and they pull the generated models
// of every API group into the binary.
import { Buffer } from "node:buffer";
import type { V1Job, V1JobList, V1Secret } from "@kubernetes/client-node";
import {
  EXECUTION_HASH_LABEL,
  PREFLIGHT_LABEL,
  REPORTED_OUTCOME_ANNOTATION,
  WORKER_HASH_LABEL,
  taskSecretNameFor,
} from "../core/naming.ts";
import { withOwner } from "../core/job-spec.ts";
import { type KubeErrorContext, KubeApiError, responseError, toKubeApiError } from "./api-errors.ts";
import type { KubeClient, KubeResponse } from "./client.ts";

export type PropagationPolicy = "Background" | "Foreground" | "Orphan";

export interface CreateTaskJobResult {
  /**
   * The Job as the API server has it, when it was read: adopted (the existing one), or
   * created with a Secret (whose owner reference needs its uid). A plain create's answer is
   * not parsed: nothing reads it, and a burst of creates would parse hundreds of full Jobs.
   */
  job?: V1Job;
  /** True when the Job already existed (a duplicate assignment or a restart) and was adopted. */
  adopted: boolean;
  /** The Secret as created, when one was given. */
  secret?: V1Secret;
  /** True when the Secret already existed. */
  secretAdopted?: boolean;
}

/** What `markReported` records; stored as JSON in the annotation. */
export interface ReportedOutcome {
  result: "succeeded" | "failed" | "cancelled";
  reason?: string;
  exitCode?: number;
  /** RFC 3339; defaults to now. */
  reportedAt?: string;
}

const MERGE_PATCH = "application/merge-patch+json";

const jobsPath = (ns: string) => `/apis/batch/v1/namespaces/${encodeURIComponent(ns)}/jobs`;
const secretsPath = (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets`;

export class TaskJobs {
  readonly client: KubeClient;
  readonly namespace: string;
  constructor(client: KubeClient, namespace: string) {
    this.client = client;
    this.namespace = namespace;
  }

  /**
   * One request; a non-2xx answer or a network failure becomes a KubeApiError naming `ctx`.
   * `discard`: the answer (a whole Job, for a patch or a delete) is read off the connection
   * but neither decoded nor parsed, and undefined is returned.
   */
  private async request<T>(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    path: string,
    ctx: KubeErrorContext,
    opts: { body?: unknown; contentType?: string; query?: Record<string, string | undefined>; discard?: boolean } = {},
  ): Promise<T> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) q.set(k, v);
    const qs = q.toString();
    const headers: Record<string, string> = { Accept: "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = opts.contentType ?? "application/json";
    let res: KubeResponse;
    let text: string;
    try {
      res = await this.client.fetch(`${path}${qs ? `?${qs}` : ""}`, {
        method,
        headers,
        ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
      });
      if (res.status < 200 || res.status >= 300) throw await responseError(res, ctx);
      if (opts.discard) {
        await res.arrayBuffer();
        return undefined as T;
      }
      text = await res.text();
    } catch (err) {
      throw toKubeApiError(err, ctx);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Creates the task Job; when it already exists (AlreadyExists), adopts it instead — never
   * two Jobs for one execution. With a Secret: the Job is created suspended, the Secret is
   * created owned by the Job (so Kubernetes deletes it with the Job; AlreadyExists is fine),
   * then the Job is resumed. Creating the pod only once its Secret exists avoids a spurious
   * CreateContainerConfigError (`secret not found`), which would fail the task.
   */
  async createTaskJob(job: V1Job, secret?: V1Secret): Promise<CreateTaskJobResult> {
    const name = job.metadata?.name;
    if (!name) throw new Error("createTaskJob: the Job has no metadata.name");
    const ns = job.metadata?.namespace ?? this.namespace;
    const callerSuspended = job.spec?.suspend === true;
    const holdForSecret = secret !== undefined && !callerSuspended;
    const body: V1Job = holdForSecret ? { ...job, spec: { ...job.spec!, suspend: true } } : job;

    let created: V1Job | undefined;
    let adopted = false;
    try {
      // Only a Secret needs the created Job (its uid).
      created = await this.request<V1Job | undefined>("POST", jobsPath(ns), { verb: "create", resource: "jobs", namespace: ns, name }, { body, discard: !secret });
    } catch (err) {
      const e = toKubeApiError(err, { verb: "create", resource: "jobs", namespace: ns, name });
      if (!e.alreadyExists) throw e;
      created = await this.readJob(name, ns);
      const want = job.metadata?.labels?.[EXECUTION_HASH_LABEL];
      const have = created.metadata?.labels?.[EXECUTION_HASH_LABEL];
      if (want && have !== want) {
        throw new KubeApiError(
          `cannot create jobs ${name} in namespace ${ns}: a Job of that name exists for another execution ` +
            `(${EXECUTION_HASH_LABEL}=${have ?? "unset"}, expected ${want})`,
          409,
          "AlreadyExists",
          "create",
          "jobs",
          ns,
          name,
        );
      }
      adopted = true;
    }

    const result: CreateTaskJobResult = created ? { job: created, adopted } : { adopted };
    if (!secret) return result;
    try {
      const uid = created?.metadata?.uid;
      if (!uid) throw new Error(`createTaskJob: Job ${name} has no uid`);
      const owned = withOwner(secret, { name, uid });
      const secretName = owned.metadata?.name ?? "";
      try {
        result.secret = await this.request<V1Secret>("POST", secretsPath(ns), { verb: "create", resource: "secrets", namespace: ns, name: secretName }, { body: owned });
        result.secretAdopted = false;
      } catch (err) {
        const e = toKubeApiError(err, { verb: "create", resource: "secrets", namespace: ns, name: secretName });
        if (!e.alreadyExists) throw e;
        result.secretAdopted = true;
      }
      // Resume a Job we hold (or one a previous worker left suspended before its Secret existed).
      if (!callerSuspended && created?.spec?.suspend === true) {
        result.job = await this.patchJob(name, { spec: { suspend: false } }, ns);
      }
    } catch (err) {
      // A suspended Job never finishes, so its TTL never removes it: take back what we created.
      if (!adopted) await this.deleteJobIn(name, ns, "Background").catch(() => undefined);
      throw err;
    }
    return result;
  }

  /**
   * A task Job a stopped worker left suspended: createTaskJob holds the Job suspended until its
   * Secret exists, so a worker killed in between leaves a Job that never runs. Resumes it when
   * the Secret it references exists (or it references none); "secret_missing" when the Secret
   * was never created, and the task's env_vars (which only the assignment carried) are gone.
   */
  async resumeHeldJob(job: V1Job): Promise<"resumed" | "secret_missing"> {
    const name = job.metadata?.name;
    if (!name) throw new Error("resumeHeldJob: the Job has no metadata.name");
    const ns = job.metadata?.namespace ?? this.namespace;
    const secretName = referencedTaskSecret(job);
    if (secretName) {
      try {
        await this.readSecret(secretName, ns);
      } catch (err) {
        const e = toKubeApiError(err, { verb: "get", resource: "secrets", namespace: ns, name: secretName });
        if (e.notFound) return "secret_missing";
        throw e;
      }
    }
    await this.patchJob(name, { spec: { suspend: false } }, ns, { discard: true });
    return "resumed";
  }

  /**
   * The values of the task Secret a Job references (none when it references none or the
   * Secret is gone): a restarted worker registers them for log redaction, as it did for the
   * assignment's env_vars before the restart.
   */
  async readTaskSecretValues(job: V1Job): Promise<string[]> {
    const secretName = referencedTaskSecret(job);
    if (!secretName) return [];
    const ns = job.metadata?.namespace ?? this.namespace;
    try {
      const secret = await this.readSecret(secretName, ns);
      return Object.values(secret.data ?? {}).map((b64) => Buffer.from(b64, "base64").toString("utf8"));
    } catch (err) {
      const e = toKubeApiError(err, { verb: "get", resource: "secrets", namespace: ns, name: secretName });
      if (e.notFound) return [];
      throw e;
    }
  }

  /** The Job, or undefined when it does not exist. */
  async getJob(name: string): Promise<V1Job | undefined> {
    try {
      return await this.readJob(name, this.namespace);
    } catch (err) {
      if (err instanceof KubeApiError && err.notFound) return undefined;
      throw err;
    }
  }

  /** Deletes the Job with the given propagation (default Background). False when it was already gone. */
  async deleteJob(name: string, opts: { propagation?: PropagationPolicy; gracePeriodSeconds?: number } = {}): Promise<boolean> {
    return this.deleteJobIn(name, this.namespace, opts.propagation ?? "Background", opts.gracePeriodSeconds);
  }

  private async deleteJobIn(name: string, ns: string, propagation: PropagationPolicy, gracePeriodSeconds?: number): Promise<boolean> {
    try {
      await this.request("DELETE", `${jobsPath(ns)}/${encodeURIComponent(name)}`, { verb: "delete", resource: "jobs", namespace: ns, name }, {
        query: { propagationPolicy: propagation, gracePeriodSeconds: gracePeriodSeconds === undefined ? undefined : String(gracePeriodSeconds) },
        discard: true,
      });
      return true;
    } catch (err) {
      const e = toKubeApiError(err, { verb: "delete", resource: "jobs", namespace: ns, name });
      if (e.notFound) return false;
      throw e;
    }
  }

  /** Records on the Job that its outcome was reported (JSON merge patch of one annotation). */
  async markReported(name: string, outcome: ReportedOutcome | string, opts: { stopPods?: boolean } = {}): Promise<void> {
    const patch: { metadata: object; spec?: { activeDeadlineSeconds: number } } = {
      metadata: { annotations: { [REPORTED_OUTCOME_ANNOTATION]: reportedValue(outcome) } },
    };
    // A task failed by the worker while its Job is still active (image pull, unschedulable,
    // …): an already-passed deadline makes the Job controller fail the Job and delete its
    // pods, so nothing runs on after Oz was told the task failed, and the TTL then applies.
    if (opts.stopPods) patch.spec = { activeDeadlineSeconds: 1 };
    await this.patchJob(name, patch, this.namespace, { discard: true });
  }

  /**
   * Stops a Job's pods but keeps the Job: `spec.suspend: true` makes the Job controller delete
   * its active pods. With an outcome, the reported-outcome annotation goes into the same patch.
   */
  async suspendJob(name: string, outcome?: ReportedOutcome | string): Promise<void> {
    const patch: { spec: { suspend: true }; metadata?: object } = { spec: { suspend: true } };
    if (outcome !== undefined) patch.metadata = { annotations: { [REPORTED_OUTCOME_ANNOTATION]: reportedValue(outcome) } };
    await this.patchJob(name, patch, this.namespace, { discard: true });
  }

  /** All task Jobs of a worker (label oz-worker-hash, preflight Jobs excluded), every page. */
  async listWorkerJobs(workerHash: string): Promise<V1Job[]> {
    const out: V1Job[] = [];
    let cont: string | undefined;
    do {
      const page = await this.request<V1JobList & { metadata?: { continue?: string } }>("GET", jobsPath(this.namespace), { verb: "list", resource: "jobs", namespace: this.namespace }, {
        query: { labelSelector: `${WORKER_HASH_LABEL}=${workerHash},!${PREFLIGHT_LABEL}`, limit: "500", continue: cont },
      });
      out.push(...(page.items ?? []));
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return out;
  }

  private readJob(name: string, ns: string): Promise<V1Job> {
    return this.request<V1Job>("GET", `${jobsPath(ns)}/${encodeURIComponent(name)}`, { verb: "get", resource: "jobs", namespace: ns, name });
  }

  private readSecret(name: string, ns: string): Promise<V1Secret> {
    return this.request<V1Secret>("GET", `${secretsPath(ns)}/${encodeURIComponent(name)}`, { verb: "get", resource: "secrets", namespace: ns, name });
  }

  private patchJob(name: string, patch: object, ns: string, opts: { discard?: boolean } = {}): Promise<V1Job> {
    return this.request<V1Job>("PATCH", `${jobsPath(ns)}/${encodeURIComponent(name)}`, { verb: "patch", resource: "jobs", namespace: ns, name }, {
      body: patch,
      contentType: MERGE_PATCH,
      discard: opts.discard,
    });
  }
}

/** The per-task Secret (`<job>-env`) the Job's pod template references, if any. */
export function referencedTaskSecret(job: V1Job): string | undefined {
  const name = job.metadata?.name;
  if (!name) return undefined;
  const secretName = taskSecretNameFor(name);
  const spec = job.spec?.template?.spec;
  for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
    if ((c.env ?? []).some((e) => e.valueFrom?.secretKeyRef?.name === secretName)) return secretName;
    if ((c.envFrom ?? []).some((e) => e.secretRef?.name === secretName)) return secretName;
  }
  return undefined;
}

function reportedValue(outcome: ReportedOutcome | string): string {
  return typeof outcome === "string" ? outcome : JSON.stringify({ ...outcome, reportedAt: outcome.reportedAt ?? new Date().toISOString() });
}

/** The reported outcome recorded on a Job, if any (parsed JSON, or the raw string). */
export function readReportedOutcome(job: V1Job): ReportedOutcome | string | undefined {
  const raw = job.metadata?.annotations?.[REPORTED_OUTCOME_ANNOTATION];
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    if (v && typeof v === "object" && typeof (v as { result?: unknown }).result === "string") return v as ReportedOutcome;
  } catch {
    // not JSON: a plain value
  }
  return raw;
}
