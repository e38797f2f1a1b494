// Parsing of worker → server frames. Frames come from the worker under test, so
// they are untrusted: anything that does not match the protocol is reported as
// malformed (the server logs and ignores it) instead of being half-applied.

import * as v from "valibot";
import { FAILURE_REASONS as FAILURE_REASON_CATALOG } from "../../src/oz/failure-reasons.ts";
import { describeIssues } from "./validation.ts";
import type { JsonObject } from "./types.ts";

/** The failure_reason values of the protocol (the worker's own catalog); other values are a worker bug. */
export const FAILURE_REASONS: ReadonlySet<string> = new Set(FAILURE_REASON_CATALOG);

const TaskId = v.pipe(v.string(), v.nonEmpty("task_id must be a non-empty string"));
// Optional fields may arrive as null from encoders that serialise absent
// pointers that way; null means the same as absent.
const OptionalText = v.nullish(v.string());

const Envelope = v.object({
  type: v.pipe(v.string(), v.nonEmpty("type must be a non-empty string")),
  data: v.looseObject({}),
});

const DATA_SCHEMAS = {
  task_claimed: v.looseObject({ task_id: TaskId, worker_id: OptionalText }),
  task_rejected: v.looseObject({ task_id: TaskId, reason: OptionalText }),
  task_completed: v.looseObject({ task_id: TaskId, message: OptionalText, task_state: OptionalText }),
  task_failed: v.looseObject({
    task_id: TaskId,
    message: OptionalText,
    failure_reason: OptionalText,
    exit_code: v.nullish(v.pipe(v.number(), v.integer("exit_code must be an integer"))),
  }),
} as const;

type DataSchemas = typeof DATA_SCHEMAS;
export type WorkerMessageType = keyof DataSchemas;

export type WorkerMessage = {
  [K in WorkerMessageType]: { type: K; data: v.InferOutput<DataSchemas[K]> & JsonObject };
}[WorkerMessageType];

export type ParsedFrame =
  | { kind: "message"; message: WorkerMessage }
  | { kind: "unknown_type"; type: string }
  | { kind: "malformed"; error: string };

function isWorkerMessageType(type: string): type is WorkerMessageType {
  return Object.hasOwn(DATA_SCHEMAS, type);
}

export function parseWorkerFrame(frame: string | Uint8Array): ParsedFrame {
  if (typeof frame !== "string") {
    return { kind: "malformed", error: "binary frame (the protocol uses text frames)" };
  }
  let json: unknown;
  try {
    json = JSON.parse(frame);
  } catch (error) {
    return { kind: "malformed", error: `not JSON: ${(error as Error).message}` };
  }
  const envelope = v.safeParse(Envelope, json);
  if (!envelope.success) {
    return { kind: "malformed", error: `bad envelope: ${describeIssues(envelope.issues)}` };
  }
  const { type, data } = envelope.output;
  if (!isWorkerMessageType(type)) return { kind: "unknown_type", type };
  const parsed = v.safeParse(DATA_SCHEMAS[type], data);
  if (!parsed.success) {
    return { kind: "malformed", error: `bad ${type} data: ${describeIssues(parsed.issues)}` };
  }
  // The cast pairs `type` with its own schema's output, which TypeScript
  // cannot correlate through the indexed schema lookup above.
  return { kind: "message", message: { type, data: parsed.output } as WorkerMessage };
}
