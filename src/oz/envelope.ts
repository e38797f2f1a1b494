// The protocol envelope (oz-protocol.md, "Envelope"): every frame is the JSON text
// `{"type": string, "data": object}`. Parsing of untrusted server frames only; which
// types the worker acts on is the connection's choice. Pure: no I/O.

export type EnvelopeResult =
  | { ok: true; type: string; data: Record<string, unknown> }
  | { ok: false; error: string; type?: string };

/**
 * Parse one text frame into the envelope `{"type": string, "data": object}`.
 * Error strings never quote the frame (it may carry secrets such as env_vars).
 */
export function parseEnvelope(text: string): EnvelopeResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The engine's message can quote the frame; keep it out of the logs.
    return { ok: false, error: "invalid JSON" };
  }
  if (!isPlainObject(value)) return { ok: false, error: `frame is ${describe(value)}, not a JSON object` };
  const type = value.type;
  if (typeof type !== "string") {
    return { ok: false, error: type === undefined ? "missing type" : `type is ${describe(type)}, not a string` };
  }
  if (type.length === 0) return { ok: false, error: "empty type" };
  const data = value.data;
  if (!isPlainObject(data)) {
    return {
      ok: false,
      type,
      error: data === undefined ? "missing data" : `data is ${describe(data)}, not an object`,
    };
  }
  return { ok: true, type, data };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const t = typeof v;
  return t === "object" ? "an object" : `a ${t}`;
}
