// The newline-delimited JSON of a watch response: split into lines from byte chunks cut anywhere,
// and parsed (a DELETED object only as far as its metadata when asked).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { LineSplitter, parseWatchLine } from "../../../src/kube/watch-stream.ts";

function split(chunks: Uint8Array[]): string[] {
  const s = new LineSplitter();
  const out: string[] = [];
  for (const c of chunks) for (let l = s.push(c); l !== undefined; l = s.next()) out.push(l);
  const rest = s.end();
  if (rest !== undefined) out.push(rest);
  return out;
}

describe("LineSplitter", () => {
  const events = [
    JSON.stringify({ type: "ADDED", object: { metadata: { name: "pod-ä-✓", resourceVersion: "1" } } }),
    JSON.stringify({ type: "MODIFIED", object: { metadata: { name: "pod-🙂", resourceVersion: "2" } } }),
    JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: "3" } } }),
  ];
  const bytes = new TextEncoder().encode(`${events.join("\n")}\n`);

  test("gives every line whole whatever the chunk size, multi-byte characters split across chunks included", () => {
    for (const size of [1, 2, 3, 7, 64, bytes.length]) {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
      expect(split(chunks)).toEqual(events);
    }
  });

  test("blank lines are skipped and a last line without newline is given at the end", () => {
    const enc = new TextEncoder();
    expect(split([enc.encode("\n\r\n  \na"), enc.encode("b\n\nc")])).toEqual(["a" + "b", "c"]);
  });

  test("a chunk whose memory the reader reuses afterwards does not change a pending line", () => {
    const chunk = new TextEncoder().encode("abc");
    const s = new LineSplitter();
    expect(s.push(chunk)).toBeUndefined();
    chunk.fill(0x7a);
    expect(s.push(new TextEncoder().encode("d\n"))).toBe("abcd");
  });
});

describe("a DELETED event is read for its metadata only", () => {
  const { pod, job } = JSON.parse(readFileSync(join(import.meta.dir, "../../fixtures/kube/succeeded.json"), "utf8"));
  const metadataOnly = (o: Record<string, any>) => {
    const { managedFields: _, ...metadata } = o.metadata;
    return { kind: o.kind, apiVersion: o.apiVersion, metadata };
  };

  test.each([
    ["pod", pod],
    ["job", job],
  ])("%s: the metadata as sent, without managedFields, spec or status; other events whole", (_, o) => {
    const line = JSON.stringify({ type: "DELETED", object: o });
    expect(parseWatchLine(line, "x", "ns", true)).toEqual({ type: "DELETED", object: metadataOnly(o) });
    // Without the option, or for another type, the object comes whole (managedFields aside).
    expect(parseWatchLine(line, "x", "ns").object.spec).toEqual(o.spec);
    const modified = parseWatchLine(JSON.stringify({ type: "MODIFIED", object: o }), "x", "ns", true);
    expect(modified.object.status).toEqual(o.status);
  });

  test("an object without spec after its metadata is parsed whole", () => {
    const o = { metadata: { name: "n", resourceVersion: "7" }, status: { phase: "Failed" } };
    expect(parseWatchLine(JSON.stringify({ type: "DELETED", object: o }), "x", "ns", true).object).toEqual(o);
  });
});
