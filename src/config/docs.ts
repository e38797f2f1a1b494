// Documentation generated from the config schema: the README's config table
// and the JSON Schema of the config file (docs/config.schema.json). Both are
// written by scripts/gen-config-docs; a unit test fails when they are stale.
import { ConfigFileSchema } from "./schema.ts";
import { type AnySchema, defaultOf, descriptionOf, docsOf, namedLayer, unwrap } from "./schema-kit.ts";

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

function showDefault(value: unknown): string {
  if (value === undefined) return "unset";
  if (typeof value === "object" && value !== null && Object.keys(value).length === 0) return "empty";
  return `\`${typeof value === "string" ? value : JSON.stringify(value)}\``;
}

/** One row per config key; mappings documented as "mapping" are expanded into their keys. */
export function configRows(schema: AnySchema = ConfigFileSchema, prefix = ""): Row[] {
  const entries = (unwrap(schema) as { entries?: Record<string, AnySchema> }).entries ?? {};
  const rows: Row[] = [];
  for (const [key, child] of Object.entries(entries)) {
    const docs = docsOf(child);
    const description = descriptionOf(child);
    if (!docs || description === undefined) continue; // unsupported backends: not documented as keys
    const path = prefix ? `${prefix}.${key}` : key;
    if (docs.type === "mapping") {
      rows.push(...configRows(child, path));
      continue;
    }
    rows.push({ key: path, type: docs.type, default: docs.default ?? showDefault(defaultOf(child)), description });
  }
  return rows;
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The Markdown table of every config key. */
export function configTableMarkdown(): string {
  const lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"];
  for (const row of configRows()) {
    lines.push(`| \`${row.key}\` | ${cell(row.type)} | ${cell(row.default)} | ${cell(row.description)} |`);
  }
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------
// JSON Schema

type Json = Record<string, unknown>;
type Layer = AnySchema & {
  type: string;
  kind?: string;
  pipe?: readonly Layer[];
  wrapped?: AnySchema;
  entries?: Record<string, AnySchema>;
  item?: AnySchema;
  value?: AnySchema;
  options?: readonly unknown[];
  literal?: unknown;
  requirement?: unknown;
};

/** Every pipe action on the way down to the base schema. */
function actionsOf(schema: AnySchema): Layer[] {
  const actions: Layer[] = [];
  let s = schema as Layer;
  for (;;) {
    if (s.pipe) actions.push(...s.pipe.slice(1));
    const first = s.pipe?.[0];
    if (first && first !== s) s = first;
    else if (s.wrapped) s = s.wrapped as Layer;
    else return actions;
  }
}

const OPTIONAL_TYPES = new Set(["optional", "nullish", "exact_optional", "nullable"]);

function isOptional(schema: AnySchema): boolean {
  return OPTIONAL_TYPES.has((schema as Layer).type);
}

/**
 * The JSON Schema (draft 2020-12) of one valibot schema. Schemas given a name
 * with `named` are defined once in `defs` and referenced.
 */
export function toJsonSchema(schema: AnySchema, defs: Json = {}): Json {
  const named = namedLayer(schema);
  let out: Json;
  if (named) {
    if (!(named.name in defs)) {
      defs[named.name] = {}; // placeholder while the definition is built
      defs[named.name] = docsOf(named.schema)?.jsonSchema ?? baseJsonSchema(named.schema, defs);
    }
    out = { $ref: `#/$defs/${named.name}` };
  } else {
    out = docsOf(schema)?.jsonSchema ? { ...docsOf(schema)?.jsonSchema } : baseJsonSchema(schema, defs);
  }
  const description = descriptionOf(schema);
  if (description !== undefined) out.description = description;
  const dflt = defaultOf(schema);
  if (dflt !== undefined) out.default = dflt;
  return out;
}

function baseJsonSchema(schema: AnySchema, defs: Json): Json {
  const s = unwrap(schema) as Layer;
  const actions = actionsOf(schema);
  switch (s.type) {
    case "string":
      return { type: "string" };
    case "boolean":
      return { type: "boolean" };
    case "number": {
      const out: Json = { type: actions.some((a) => a.type === "integer") ? "integer" : "number" };
      for (const a of actions) {
        if (a.type === "min_value") out.minimum = a.requirement;
        if (a.type === "max_value") out.maximum = a.requirement;
      }
      return out;
    }
    case "picklist":
      return { enum: [...(s.options ?? [])] };
    case "literal":
      return { const: s.literal };
    case "array":
      return { type: "array", items: s.item ? toJsonSchema(s.item, defs) : {} };
    case "record":
      return { type: "object", additionalProperties: s.value ? toJsonSchema(s.value, defs) : {} };
    case "strict_object":
    case "object":
    case "loose_object": {
      const properties: Json = {};
      const required: string[] = [];
      for (const [key, child] of Object.entries(s.entries ?? {})) {
        if ((unwrap(child) as Layer).type === "custom" && !docsOf(child)) continue; // refused keys (unsupported backends)
        properties[key] = toJsonSchema(child, defs);
        if (!isOptional(child)) required.push(key);
      }
      return {
        type: "object",
        properties,
        ...(required.length > 0 && { required }),
        additionalProperties: s.type !== "strict_object",
      };
    }
    default:
      return {};
  }
}

/** The JSON Schema of the config file. */
export function configJsonSchema(): Json {
  const defs: Json = {};
  const root = toJsonSchema(ConfigFileSchema, defs);
  const sortedDefs = Object.fromEntries(Object.entries(defs).sort(([a], [b]) => a.localeCompare(b)));
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "oz-worker config file",
    description: "The oz-worker config file. Generated from src/config/schema.ts by scripts/gen-config-docs; do not edit.",
    ...root,
    $defs: sortedDefs,
  };
}
