// What the task watch keeps of a Job, a Pod or an Event: only the fields something reads —
// the outcome rules (src/core/outcome.ts), re-adoption and cleanup after a restart
// (src/worker/recovery.ts, referencedTaskSecret in src/kube/jobs.ts) and the cache itself
// (name, resourceVersion, execution hash). Like a client-go informer's transform: a task Job
// with its pod template, or a pod with managedFields and its full spec, takes 10-20 KB as
// objects; what the rules read takes a few hundred bytes. Pure functions of the raw JSON the
// API server sends; timestamps stay its RFC 3339 strings (toMillis reads both).
//
// A field that a rule starts to read must be added here too: test/unit/kube/slim.test.ts runs
// the rules on full and slimmed objects side by side.
import type { CoreV1Event, V1Job, V1Pod } from "@kubernetes/client-node";
import { EXECUTION_HASH_LABEL, EXECUTION_ID_ANNOTATION, REPORTED_OUTCOME_ANNOTATION, TASK_ID_ANNOTATION, taskSecretNameFor } from "../core/naming.ts";

type Json = Record<string, unknown>;

const KEPT_ANNOTATIONS = [TASK_ID_ANNOTATION, EXECUTION_ID_ANNOTATION, REPORTED_OUTCOME_ANNOTATION] as const;

// Values that repeat in every object (condition types, phases, reasons, namespace, images):
// one string instead of one per object. Bounded so odd values cannot grow it without end.
const interned = new Map<string, string>();
const INTERN_MAX = 4096;
function intern(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const have = interned.get(v);
  if (have !== undefined) return have;
  if (interned.size < INTERN_MAX && v.length <= 128) interned.set(v, v);
  return v;
}

function obj(v: unknown): Json | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : undefined;
}

const NONE: readonly never[] = Object.freeze([]);

/** The objects of an array (the array itself when it holds nothing else, as the API server's always do). */
function arr(v: unknown): readonly Json[] {
  if (!Array.isArray(v)) return NONE;
  for (const x of v) if (!obj(x)) return v.filter((y) => obj(y)) as Json[];
  return v as Json[];
}

/** Copies the listed keys that are set (not undefined/null); strings interned when asked. */
function pick(src: Json | undefined, keys: readonly string[], internKeys: readonly string[] = NONE): Json | undefined {
  if (!src) return undefined;
  let out: Json | undefined;
  for (const k of keys) {
    const v = src[k];
    if (v === undefined || v === null) continue;
    (out ??= {})[k] = internKeys.includes(k) ? intern(v) : v;
  }
  return out;
}

function set(target: Json, key: string, value: unknown): void {
  if (value !== undefined && !(Array.isArray(value) && value.length === 0)) target[key] = value;
}

function meta(raw: Json, annotations: readonly string[]): Json {
  const m = obj(raw.metadata) ?? {};
  const out: Json = pick(m, META_KEYS) ?? {};
  set(out, "namespace", intern(m.namespace));
  const hash = obj(m.labels)?.[EXECUTION_HASH_LABEL];
  if (typeof hash === "string") out.labels = { [EXECUTION_HASH_LABEL]: hash };
  const ann = obj(m.annotations);
  if (ann) {
    const kept = pick(ann, annotations);
    if (kept) out.annotations = kept;
  }
  return out;
}

const META_KEYS = ["name", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"];
const CONDITION_INTERN = ["type", "status", "reason"];
const JOB_CONDITION_KEYS = ["type", "status", "reason", "message"];
const POD_CONDITION_KEYS = ["type", "status", "reason", "message", "lastTransitionTime"];

/** Every Job condition (terminal, FailureTarget, SuccessCriteriaMet), without its timestamps. */
function jobConditions(v: unknown): Json[] {
  return arr(v).map((c) => pick(c, JOB_CONDITION_KEYS, CONDITION_INTERN) ?? {});
}

// The pod conditions the rules read: scheduling (since when unschedulable or stuck) and eviction.
const POD_CONDITIONS = new Set(["PodScheduled", "DisruptionTarget"]);

function podConditions(v: unknown): Json[] {
  return arr(v)
    .filter((c) => POD_CONDITIONS.has(c.type as string))
    .map((c) => pick(c, POD_CONDITION_KEYS, CONDITION_INTERN) ?? {});
}

/**
 * The JSON text of one object, or of a list or watch event holding objects, without the
 * objects' `metadata.managedFields` (a third of a task pod's or Job's bytes, and never read),
 * so that JSON.parse builds nothing for them. The API server writes ObjectMeta's fields in its
 * Go struct order, managedFields last, and `spec` follows metadata: each cut runs from the
 * comma before `"managedFields":[` to the `]` that precedes `},"spec":{`. Only structural JSON
 * can match that pattern (inside a string a quote is escaped), and managedFields entries hold no
 * arrays, so the cut removes exactly the array. Text in any other shape is returned as it is.
 */
export function withoutManagedFields(text: string): string {
  let at = text.indexOf(MANAGED_FIELDS);
  if (at < 0) return text;
  let out = "";
  let from = 0;
  while (at >= 0) {
    const end = text.indexOf(MANAGED_FIELDS_END, at);
    if (end < 0 || text.charCodeAt(at - 1) !== 44 /* , */) break;
    const next = text.indexOf(MANAGED_FIELDS, at + MANAGED_FIELDS.length);
    // The end found belongs to a later object: this one has no spec after its metadata; keep it.
    if (next >= 0 && next < end) {
      at = next;
      continue;
    }
    out += text.slice(from, at - 1);
    from = end + 1;
    at = next;
  }
  return from === 0 ? text : out + text.slice(from);
}

const MANAGED_FIELDS = '"managedFields":[';
const SPEC_AFTER_METADATA = '},"spec":{';
const MANAGED_FIELDS_END = `]${SPEC_AFTER_METADATA}`;
const DELETED_PREFIX = '{"type":"DELETED","object":{';
/** managedFields as the metadata's last key, from the comma before it. */
const MANAGED_FIELDS_ENTRY = `,${MANAGED_FIELDS}`;

/**
 * A DELETED watch event up to the end of its object's metadata, closed: `{"type":"DELETED","object":
 * {…,"metadata":{…}}}`. The metadata (first in the object, as the API server writes it) holds
 * no structural `"spec"` key, so the first `},"spec":{` closes it. Undefined when it is not there.
 */
export function deletedMetadataText(line: string): string | undefined {
  if (!line.startsWith(DELETED_PREFIX)) return undefined;
  let end = line.indexOf(SPEC_AFTER_METADATA);
  if (end < 0) return undefined;
  // managedFields, last in the metadata, ends right there: left out too (as withoutManagedFields does).
  const managed = line.lastIndexOf(MANAGED_FIELDS_ENTRY, end);
  if (managed > 0 && line.charCodeAt(end - 1) === 93 /* ] */) end = managed;
  return `${line.slice(0, end)}}}}`;
}

/** A task Job: identity, the annotations re-adoption reads, suspend/deadline, the reference to its Secret, conditions. */
export function slimJob(raw: unknown): V1Job {
  const r = obj(raw) ?? {};
  const out: Json = { metadata: meta(r, KEPT_ANNOTATIONS) };
  const spec = obj(r.spec);
  if (spec) {
    const s: Json = pick(spec, JOB_SPEC_KEYS) ?? {};
    const secretRefs = taskSecretContainers(spec, (obj(r.metadata) ?? {}).name);
    if (secretRefs.length) s.template = { spec: { containers: secretRefs } };
    out.spec = s;
  }
  const status = obj(r.status);
  if (status) out.status = { conditions: jobConditions(status.conditions) };
  return out as V1Job;
}

/**
 * Of the pod template, only one reference to the task's Secret (what referencedTaskSecret
 * looks for, to read its values back for redaction or resume a held Job): the rest of the
 * template is never read from the cache, and env values are not kept.
 */
function taskSecretContainers(spec: Json, jobName: unknown): Json[] {
  if (typeof jobName !== "string") return [];
  const secretName = taskSecretNameFor(jobName);
  const podSpec = obj(obj(obj(spec.template)?.spec) ?? {}) ?? {};
  for (const c of [...arr(podSpec.initContainers), ...arr(podSpec.containers)]) {
    for (const e of arr(c.env)) {
      const ref = obj(obj(e.valueFrom)?.secretKeyRef);
      if (ref?.name === secretName) return [{ name: c.name, env: [{ name: e.name, valueFrom: { secretKeyRef: { name: secretName, key: ref.key } } }] }];
    }
    for (const e of arr(c.envFrom)) {
      if (obj(e.secretRef)?.name === secretName) return [{ name: c.name, envFrom: [{ secretRef: { name: secretName } }] }];
    }
  }
  return [];
}

const JOB_SPEC_KEYS = ["suspend", "activeDeadlineSeconds"];
const TERMINATED_KEYS = ["exitCode", "signal", "reason"];
const REASON = ["reason"];
const WAITING_KEYS = ["reason", "message"];
const RUNNING_KEYS = ["startedAt"];
const INIT_CONTAINER_KEYS = ["name", "image", "restartPolicy"];
const CONTAINER_KEYS = ["name", "image"];
const POD_STATUS_KEYS = ["phase", "reason", "message"];
const POD_STATUS_INTERN = ["phase", "reason"];

function containerState(v: unknown): Json | undefined {
  const s = obj(v);
  if (!s) return undefined;
  const out: Json = {};
  const waiting = obj(s.waiting);
  if (waiting) out.waiting = pick(waiting, WAITING_KEYS, REASON) ?? {};
  const running = obj(s.running);
  if (running) out.running = pick(running, RUNNING_KEYS) ?? {};
  const term = obj(s.terminated);
  if (term) out.terminated = pick(term, TERMINATED_KEYS, REASON) ?? {};
  return Object.keys(out).length ? out : undefined;
}

function containerStatuses(v: unknown): Json[] {
  return arr(v).map((st) => {
    const out: Json = { name: intern(st.name) };
    set(out, "image", intern(st.image));
    set(out, "state", containerState(st.state));
    const last = containerState(st.lastState);
    if (last?.terminated) out.lastState = { terminated: last.terminated };
    return out;
  });
}

function containers(v: unknown, keys: readonly string[]): Json[] {
  return arr(v).map((c) => pick(c, keys, keys) ?? {});
}

/** A pod: identity, node, container names/images/restart policy, phase, conditions and container states. */
export function slimPod(raw: unknown): V1Pod {
  const r = obj(raw) ?? {};
  const out: Json = { metadata: meta(r, []) };
  const spec = obj(r.spec);
  if (spec) {
    const s: Json = {};
    set(s, "nodeName", intern(spec.nodeName));
    set(s, "initContainers", containers(spec.initContainers, INIT_CONTAINER_KEYS));
    set(s, "containers", containers(spec.containers, CONTAINER_KEYS));
    out.spec = s;
  }
  const status = obj(r.status);
  if (status) {
    const s: Json = pick(status, POD_STATUS_KEYS, POD_STATUS_INTERN) ?? {};
    set(s, "conditions", podConditions(status.conditions));
    set(s, "initContainerStatuses", containerStatuses(status.initContainerStatuses));
    set(s, "containerStatuses", containerStatuses(status.containerStatuses));
    out.status = s;
  }
  return out as V1Pod;
}

/** An Event of a troubled pod: what FailedMount and its later progress are read from. */
export function slimEvent(raw: unknown): CoreV1Event {
  const r = obj(raw) ?? {};
  const out: Json = pick(r, ["type", "reason", "message", "lastTimestamp", "eventTime", "firstTimestamp"], ["type", "reason"]) ?? {};
  out.metadata = pick(obj(r.metadata), ["name", "resourceVersion", "creationTimestamp"]) ?? {};
  set(out, "involvedObject", pick(obj(r.involvedObject), ["kind", "name", "uid"], ["kind"]));
  const last = obj(r.series)?.lastObservedTime;
  if (typeof last === "string") out.series = { lastObservedTime: last };
  return out as unknown as CoreV1Event;
}

// Parts of stubs that are the same for most kept executions ({suspend: false}, the Complete
// conditions, {phase: "Succeeded"}): one frozen object each instead of one per stub.
const sharedParts = new Map<string, Json>();
function shared(part: Json): Json {
  const key = JSON.stringify(part);
  const have = sharedParts.get(key);
  if (have) return have;
  if (sharedParts.size < INTERN_MAX) sharedParts.set(key, deepFreeze(part));
  return part;
}

function deepFreeze(v: Json): Json {
  for (const x of Object.values(v)) if (x && typeof x === "object") deepFreeze(x as Json);
  return Object.freeze(v);
}

/**
 * A reported Job nobody watches any more: what re-adoption after a restart still reads (name,
 * the task-id and reported-outcome annotations, Complete/suspend for the cleanup of a reported
 * Job, deletion) and what the cache needs (resourceVersion, execution hash). Its Secret
 * reference, messages, creation time and the execution id go, and of the reported outcome only
 * its result stays. With 10,000 kept Jobs every string counts: about 60 bytes each.
 */
export function reportedJobStub(job: V1Job): V1Job {
  const m = job.metadata ?? {};
  const ann = m.annotations ?? {};
  const metadata: Json = pick(m as Json, ["name", "namespace", "resourceVersion", "deletionTimestamp", "labels"]) ?? {};
  const kept = pick(ann, [TASK_ID_ANNOTATION, REPORTED_OUTCOME_ANNOTATION]);
  if (kept && typeof kept[REPORTED_OUTCOME_ANNOTATION] === "string") kept[REPORTED_OUTCOME_ANNOTATION] = reportedResult(kept[REPORTED_OUTCOME_ANNOTATION]);
  metadata.annotations = kept;
  const out: Json = { metadata };
  if (job.spec?.suspend !== undefined) out.spec = shared({ suspend: job.spec.suspend });
  const conds = (job.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status }));
  if (conds.length) out.status = shared({ conditions: conds });
  return out as V1Job;
}

/**
 * A reported-outcome annotation as a stub keeps it: `{"result":…}` alone, one string for every
 * Job with that result (the time and details of the report are about 70 bytes a Job, and nothing
 * reads them from the cache). A value of another shape is kept as it is.
 */
function reportedResult(value: string): string {
  try {
    const result = (JSON.parse(value) as { result?: unknown } | null)?.result;
    if (typeof result === "string") return intern(JSON.stringify({ result })) ?? value;
  } catch {
    // not JSON: kept
  }
  return value;
}

/** A pod of a reported execution nobody watches: identity for the cache, and its phase. */
export function reportedPodStub(pod: V1Pod): V1Pod {
  const metadata = pick((pod.metadata ?? {}) as Json, ["name", "namespace", "resourceVersion", "deletionTimestamp", "labels"]) ?? {};
  return (pod.status?.phase ? { metadata, status: shared({ phase: pod.status.phase }) } : { metadata }) as V1Pod;
}
