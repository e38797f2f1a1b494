/**
 * Test support: a local OTLP/HTTP receiver and a minimal decoder for
 * ExportMetricsServiceRequest in both encodings (protobuf and JSON), reduced
 * to what the tests assert on: resource attributes, metric names, and data
 * points (attributes + value or histogram count).
 *
 * The protobuf side is a tiny wire-format walker that knows only the fields
 * of opentelemetry/proto/{collector/metrics,metrics,common,resource}/v1 that
 * are read here.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

export interface DecodedPoint {
  attributes: Record<string, string | number | boolean>;
  /** Sum/gauge value, or histogram count. */
  value: number;
  /** Histogram only. */
  sum?: number;
}

export interface DecodedMetric {
  name: string;
  type: "gauge" | "sum" | "histogram" | "other";
  unit: string;
  monotonic?: boolean;
  points: DecodedPoint[];
}

export interface DecodedRequest {
  resource: Record<string, string | number | boolean>;
  scopes: string[];
  metrics: DecodedMetric[];
}

// ---------------------------------------------------------------------------
// protobuf wire format
// ---------------------------------------------------------------------------

interface Field {
  no: number;
  wire: number;
  varint?: bigint;
  bytes?: Uint8Array;
  fixed64?: DataView;
  fixed32?: DataView;
}

function readVarint(buf: Uint8Array, pos: { i: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos.i++];
    if (b === undefined) throw new Error("truncated varint");
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
    shift += 7n;
  }
}

function* fields(buf: Uint8Array): Generator<Field> {
  const pos = { i: 0 };
  while (pos.i < buf.length) {
    const key = Number(readVarint(buf, pos));
    const no = key >>> 3;
    const wire = key & 7;
    switch (wire) {
      case 0:
        yield { no, wire, varint: readVarint(buf, pos) };
        break;
      case 1: {
        const view = new DataView(buf.buffer, buf.byteOffset + pos.i, 8);
        pos.i += 8;
        yield { no, wire, fixed64: view };
        break;
      }
      case 2: {
        const len = Number(readVarint(buf, pos));
        const bytes = buf.subarray(pos.i, pos.i + len);
        pos.i += len;
        yield { no, wire, bytes };
        break;
      }
      case 5: {
        const view = new DataView(buf.buffer, buf.byteOffset + pos.i, 4);
        pos.i += 4;
        yield { no, wire, fixed32: view };
        break;
      }
      default:
        throw new Error(`unsupported wire type ${wire}`);
    }
  }
}

const utf8 = new TextDecoder();

function anyValue(buf: Uint8Array): string | number | boolean {
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) return utf8.decode(f.bytes);
    if (f.no === 2 && f.varint !== undefined) return f.varint !== 0n;
    if (f.no === 3 && f.varint !== undefined) return Number(BigInt.asIntN(64, f.varint));
    if (f.no === 4 && f.fixed64) return f.fixed64.getFloat64(0, true);
  }
  return "";
}

function keyValues(list: Uint8Array[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list) {
    let key = "";
    let value: string | number | boolean = "";
    for (const f of fields(kv)) {
      if (f.no === 1 && f.bytes) key = utf8.decode(f.bytes);
      if (f.no === 2 && f.bytes) value = anyValue(f.bytes);
    }
    out[key] = value;
  }
  return out;
}

function numberPoint(buf: Uint8Array): DecodedPoint {
  const attrs: Uint8Array[] = [];
  let value = 0;
  for (const f of fields(buf)) {
    if (f.no === 7 && f.bytes) attrs.push(f.bytes);
    if (f.no === 4 && f.fixed64) value = f.fixed64.getFloat64(0, true); // as_double
    if (f.no === 6 && f.fixed64) value = Number(f.fixed64.getBigInt64(0, true)); // as_int
  }
  return { attributes: keyValues(attrs), value };
}

function histogramPoint(buf: Uint8Array): DecodedPoint {
  const attrs: Uint8Array[] = [];
  let count = 0;
  let sum: number | undefined;
  for (const f of fields(buf)) {
    if (f.no === 9 && f.bytes) attrs.push(f.bytes);
    if (f.no === 4 && f.fixed64) count = Number(f.fixed64.getBigUint64(0, true));
    if (f.no === 5 && f.fixed64) sum = f.fixed64.getFloat64(0, true);
  }
  return { attributes: keyValues(attrs), value: count, ...(sum === undefined ? {} : { sum }) };
}

function metric(buf: Uint8Array): DecodedMetric {
  const m: DecodedMetric = { name: "", type: "other", unit: "", points: [] };
  for (const f of fields(buf)) {
    if (f.no === 1 && f.bytes) m.name = utf8.decode(f.bytes);
    else if (f.no === 3 && f.bytes) m.unit = utf8.decode(f.bytes);
    else if ((f.no === 5 || f.no === 7 || f.no === 9) && f.bytes) {
      m.type = f.no === 5 ? "gauge" : f.no === 7 ? "sum" : "histogram";
      if (f.no === 7) m.monotonic = false; // proto3 omits the default
      for (const g of fields(f.bytes)) {
        if (g.no === 1 && g.bytes) m.points.push(f.no === 9 ? histogramPoint(g.bytes) : numberPoint(g.bytes));
        if (f.no === 7 && g.no === 3 && g.varint !== undefined) m.monotonic = g.varint !== 0n;
      }
    }
  }
  return m;
}

export function decodeProtobufRequest(body: Uint8Array): DecodedRequest {
  const out: DecodedRequest = { resource: {}, scopes: [], metrics: [] };
  for (const rm of fields(body)) {
    if (rm.no !== 1 || !rm.bytes) continue;
    for (const f of fields(rm.bytes)) {
      if (f.no === 1 && f.bytes) {
        const attrs: Uint8Array[] = [];
        for (const a of fields(f.bytes)) if (a.no === 1 && a.bytes) attrs.push(a.bytes);
        Object.assign(out.resource, keyValues(attrs));
      }
      if (f.no === 2 && f.bytes) {
        for (const s of fields(f.bytes)) {
          if (s.no === 1 && s.bytes) {
            for (const sf of fields(s.bytes)) if (sf.no === 1 && sf.bytes) out.scopes.push(utf8.decode(sf.bytes));
          }
          if (s.no === 2 && s.bytes) out.metrics.push(metric(s.bytes));
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// OTLP/JSON
// ---------------------------------------------------------------------------

interface JsonKeyValue {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
}

function jsonAttrs(list: JsonKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv.value;
    out[kv.key] = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.boolValue ?? "";
  }
  return out;
}

interface JsonPoint {
  attributes?: JsonKeyValue[];
  asInt?: string | number;
  asDouble?: number;
  count?: string | number;
  sum?: number;
}

export function decodeJsonRequest(text: string): DecodedRequest {
  const body = JSON.parse(text) as {
    resourceMetrics: Array<{
      resource?: { attributes?: JsonKeyValue[] };
      scopeMetrics?: Array<{
        scope?: { name?: string };
        metrics?: Array<{
          name: string;
          unit?: string;
          gauge?: { dataPoints?: JsonPoint[] };
          sum?: { dataPoints?: JsonPoint[]; isMonotonic?: boolean };
          histogram?: { dataPoints?: JsonPoint[] };
        }>;
      }>;
    }>;
  };
  const out: DecodedRequest = { resource: {}, scopes: [], metrics: [] };
  for (const rm of body.resourceMetrics ?? []) {
    Object.assign(out.resource, jsonAttrs(rm.resource?.attributes));
    for (const sm of rm.scopeMetrics ?? []) {
      if (sm.scope?.name) out.scopes.push(sm.scope.name);
      for (const m of sm.metrics ?? []) {
        const type = m.gauge ? "gauge" : m.sum ? "sum" : m.histogram ? "histogram" : "other";
        const pts = m.gauge?.dataPoints ?? m.sum?.dataPoints ?? m.histogram?.dataPoints ?? [];
        out.metrics.push({
          name: m.name,
          type,
          unit: m.unit ?? "",
          ...(m.sum ? { monotonic: Boolean(m.sum.isMonotonic) } : {}),
          points: pts.map((p) =>
            type === "histogram"
              ? { attributes: jsonAttrs(p.attributes), value: Number(p.count ?? 0), ...(p.sum === undefined ? {} : { sum: p.sum }) }
              : { attributes: jsonAttrs(p.attributes), value: Number(p.asInt ?? p.asDouble ?? 0) },
          ),
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------

export interface ReceivedRequest {
  path: string;
  contentType: string;
  headers: IncomingMessage["headers"];
  decoded: DecodedRequest;
}

export interface OtlpReceiver {
  url: string;
  requests: ReceivedRequest[];
  /** Resolves with the first request that satisfies `pred` (already received or future). */
  waitFor(pred: (r: ReceivedRequest) => boolean, timeoutMs?: number): Promise<ReceivedRequest>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: ReceivedRequest[] = [];
  const waiters: Array<{ pred: (r: ReceivedRequest) => boolean; resolve: (r: ReceivedRequest) => void }> = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body: Buffer = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const contentType = String(req.headers["content-type"] ?? "");
      try {
        const decoded = contentType.includes("json")
          ? decodeJsonRequest(body.toString("utf8"))
          : decodeProtobufRequest(new Uint8Array(body));
        const r: ReceivedRequest = { path: req.url ?? "", contentType, headers: req.headers, decoded };
        requests.push(r);
        for (const w of [...waiters]) {
          if (w.pred(r)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(r);
          }
        }
        // An empty ExportMetricsServiceResponse is valid in both encodings.
        res.writeHead(200, { "content-type": contentType.includes("json") ? "application/json" : "application/x-protobuf" });
        res.end(contentType.includes("json") ? "{}" : undefined);
      } catch (err) {
        res.writeHead(400);
        res.end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    waitFor(pred, timeoutMs = 10_000) {
      const hit = requests.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no matching OTLP request within ${timeoutMs} ms (got ${requests.length})`)), timeoutMs);
        waiters.push({
          pred,
          resolve: (r) => {
            clearTimeout(t);
            resolve(r);
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

/** Lines of `text` parsed as Prometheus exposition samples. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parsePrometheus(text: string): { samples: PromSample[]; types: Record<string, string> } {
  const samples: PromSample[] = [];
  const types: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      if (name && type) types[name] = type;
      continue;
    }
    if (line.startsWith("#") || line.trim() === "") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (const lm of (m[2] ?? "").matchAll(labelRe)) labels[lm[1] ?? ""] = (lm[2] ?? "").replace(/\\(.)/g, "$1");
    samples.push({ name: m[1] ?? "", labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
  }
  return { samples, types };
}
