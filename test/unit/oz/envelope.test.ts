import { describe, expect, test } from "bun:test";
import { parseEnvelope } from "../../../src/oz/envelope.ts";

describe("parseEnvelope", () => {
  test("accepts {type, data}", () => {
    const r = parseEnvelope(JSON.stringify({ type: "task_assignment", data: { task_id: "t1", task: { id: "t1" } } }));
    expect(r).toEqual({ ok: true, type: "task_assignment", data: { task_id: "t1", task: { id: "t1" } } });
  });

  test("accepts unknown types (filtering is the connection's job) and extra top-level fields", () => {
    expect(parseEnvelope('{"type":"something_new","data":{},"extra":1}')).toEqual({
      ok: true,
      type: "something_new",
      data: {},
    });
  });

  const malformed: Array<[string, string, string]> = [
    ["invalid JSON", "{not json", "invalid JSON"],
    ["empty frame", "", "invalid JSON"],
    ["truncated frame", '{"type":"task_assignment","data":{"task_id":"t', "invalid JSON"],
    ["JSON null", "null", "frame is null, not a JSON object"],
    ["JSON array", "[1,2]", "frame is an array, not a JSON object"],
    ["JSON string", '"task_assignment"', "frame is a string, not a JSON object"],
    ["JSON number", "42", "frame is a number, not a JSON object"],
    ["missing type", '{"data":{}}', "missing type"],
    ["numeric type", '{"type":5,"data":{}}', "type is a number, not a string"],
    ["null type", '{"type":null,"data":{}}', "type is null, not a string"],
    ["object type", '{"type":{},"data":{}}', "type is an object, not a string"],
    ["empty type", '{"type":"","data":{}}', "empty type"],
    ["missing data", '{"type":"task_cancellation"}', "missing data"],
    ["null data", '{"type":"task_cancellation","data":null}', "data is null, not an object"],
    ["array data", '{"type":"task_cancellation","data":[]}', "data is an array, not an object"],
    ["string data", '{"type":"task_cancellation","data":"t1"}', "data is a string, not an object"],
    ["number data", '{"type":"task_cancellation","data":1}', "data is a number, not an object"],
  ];
  for (const [name, frame, error] of malformed) {
    test(`rejects ${name}`, () => {
      const r = parseEnvelope(frame);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toBe(error);
    });
  }

  test("names the type of a frame whose data is bad, so the log can say which message broke", () => {
    const r = parseEnvelope('{"type":"task_assignment","data":"x"}');
    expect(r).toEqual({ ok: false, type: "task_assignment", error: "data is a string, not an object" });
  });

  test("error strings never quote the frame", () => {
    const secret = "sk-SECRET-123";
    const frames = [
      `{"type":"task_assignment","data":{"env_vars":{"K":"${secret}"}}`, // truncated JSON
      `${secret}`,
      `{"type":"task_assignment","data":"${secret}"}`,
      `["${secret}"]`,
      `{"type":["${secret}"],"data":{}}`,
      `{"${secret}":1}`,
    ];
    for (const f of frames) {
      const r = parseEnvelope(f);
      expect(r.ok).toBe(false);
      expect(JSON.stringify(r)).not.toContain(secret);
    }
  });
});
