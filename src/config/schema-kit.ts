// Small building blocks shared by the config schema (schema.ts), the PodSpec
// schema (pod-spec.ts), the loader's YAML pre-pass (load.ts) and the docs
// generators (docs.ts). Everything here works on valibot schema objects at
// runtime, so the schema stays the one description of the config.
import * as v from "valibot";

// The generic valibot schema type every walker here accepts.
export type AnySchema = v.GenericSchema<unknown, unknown, v.BaseIssue<unknown>>;

/** Documentation attached to a config key with `v.metadata(...)`. */
export type FieldDocs = {
  /** The type as the docs table shows it, e.g. "duration" or "map string → string". */
  type: string;
  /** The default as the docs show it; absent when the schema's own default reads well. */
  default?: string;
  /** The JSON Schema of this value when it cannot be derived from the valibot schema. */
  jsonSchema?: Record<string, unknown>;
};

/** A value as an error message shows it: strings quoted, containers named. */
export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") {
    const clipped = value.length > 80 ? `${value.slice(0, 77)}...` : value;
    return JSON.stringify(clipped);
  }
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

/** An issue message `expected <what>; got <the input>`. */
export function expected(what: string) {
  return (issue: v.BaseIssue<unknown>): string => `expected ${what}; got ${show(issue.input)}`;
}

// Config keys decoded like a Go `string` field by yaml.v3 (the published
// worker's decoder): any scalar is taken as its source text (`worker_id: 0123`
// is "0123", `version: 1.10` is "1.10"), and an empty value means "unset".
const GO_STRINGS = new WeakSet<object>();

export function goString<S extends AnySchema>(schema: S): S {
  GO_STRINGS.add(schema);
  return schema;
}

export function isGoString(schema: AnySchema): boolean {
  return GO_STRINGS.has(unwrap(schema));
}

// Config keys decoded like a Go `bool` field by yaml.v3, which also takes the
// YAML 1.1 spellings (yes/no/on/off/y/n).
const GO_BOOL_SCHEMAS = new WeakSet<object>();
export const GO_BOOLS: Readonly<Record<string, boolean>> = Object.fromEntries([
  ...["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"].map((s) => [s, true] as const),
  ...["n", "N", "no", "No", "NO", "off", "Off", "OFF"].map((s) => [s, false] as const),
]);

export function goBool<S extends AnySchema>(schema: S): S {
  GO_BOOL_SCHEMAS.add(schema);
  return schema;
}

export function isGoBool(schema: AnySchema): boolean {
  return GO_BOOL_SCHEMAS.has(unwrap(schema));
}

type Layered = AnySchema & { pipe?: readonly unknown[]; wrapped?: AnySchema; type: string };

/** The schema under optional/nullable/nullish wrappers and pipes. */
export function unwrap(schema: AnySchema): AnySchema {
  let s = schema as Layered;
  for (;;) {
    const first = s.pipe?.[0] as Layered | undefined;
    if (first && first !== s) s = first;
    else if (s.wrapped) s = s.wrapped as Layered;
    else return s;
  }
}

/** Entries of an object-like schema (after unwrapping), or undefined. */
export function entriesOf(schema: AnySchema): Record<string, AnySchema> | undefined {
  const s = unwrap(schema) as AnySchema & { entries?: Record<string, AnySchema> };
  return s.entries;
}

// Schemas used in several places get a name, so the JSON Schema can define them once.
const NAMES = new WeakMap<object, string>();

export function named<S extends AnySchema>(name: string, schema: S): S {
  NAMES.set(schema, name);
  return schema;
}

/** The name given with `named`, and the schema it was given to, looking through wrappers. */
export function namedLayer(schema: AnySchema): { name: string; schema: AnySchema } | undefined {
  let s = schema as Layered;
  for (;;) {
    const name = NAMES.get(s);
    if (name !== undefined) return { name, schema: s };
    const first = s.pipe?.[0] as Layered | undefined;
    if (first && first !== s) s = first;
    else if (s.wrapped) s = s.wrapped as Layered;
    else return undefined;
  }
}

/** Description attached with `v.description`, looking through wrappers. */
export function descriptionOf(schema: AnySchema): string | undefined {
  return findAction<{ description: string }>(schema, "description")?.description;
}

/** Metadata attached with `v.metadata`, looking through wrappers. */
export function docsOf(schema: AnySchema): FieldDocs | undefined {
  return findAction<{ metadata: FieldDocs }>(schema, "metadata")?.metadata;
}

/** The default value of an optional schema, looking through pipes. */
export function defaultOf(schema: AnySchema): unknown {
  let s = schema as Layered & { default?: unknown };
  for (;;) {
    if (s.default !== undefined) return typeof s.default === "function" ? (s.default as () => unknown)() : s.default;
    const first = s.pipe?.[0] as (Layered & { default?: unknown }) | undefined;
    if (first && first !== s) s = first;
    else if (s.wrapped) s = s.wrapped as Layered;
    else return undefined;
  }
}

function findAction<T>(schema: AnySchema, type: string): T | undefined {
  let s = schema as Layered;
  for (;;) {
    const found = s.pipe?.find((a) => (a as { type?: string; kind?: string }).type === type && (a as { kind?: string }).kind === "metadata");
    if (found) return found as T;
    const first = s.pipe?.[0] as Layered | undefined;
    if (first && first !== s) s = first;
    else if (s.wrapped) s = s.wrapped as Layered;
    else return undefined;
  }
}

/** A documented config key: the schema plus its description and docs metadata. */
export function documented<S extends AnySchema>(schema: S, description: string, docs: FieldDocs) {
  return v.pipe(schema, v.description(description), v.metadata(docs));
}

/** Edit distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/**
 * The known name closest to `name`, when one is close enough to be a likely
 * typo: the same name in another spelling (`imagePullPolicy` for
 * `image_pull_policy`, any case), or within a third of its length in edits.
 */
export function closest(name: string, known: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const same = known.find((k) => squash(k) === squash(name));
  if (same) return same;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = editDistance(squash(name), squash(k));
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const budget = Math.max(1, Math.floor(Math.max(name.length, 3) / 3));
  return bestDistance <= budget ? best : undefined;
}
