/**
 * The OTEL_* environment variables that configure metrics export (see
 * docs/observability.md). Problems are warned about and replaced by
 * defaults; nothing here throws.
 */
import type { Logger } from "./log.ts";
import { redactUrl, safeDecode, type RedactUrlOptions } from "../util/url.ts";

export type MetricsExporterKind = "prometheus" | "otlp" | "console" | "none";
/** For log lines: no credentials, no query. */
export const LOG_URL: RedactUrlOptions = { dropQuery: true, invalid: "<unparseable>" };

export type Env = Record<string, string | undefined>;

export type OtlpProtocol = "http/protobuf" | "http/json";

export interface OtlpConfig {
  url: string;
  protocol: OtlpProtocol;
  headers: Record<string, string>;
  timeoutMillis: number;
  compression: "gzip" | "none";
  temporality: "cumulative" | "delta";
}

export interface MetricsConfig {
  exporters: MetricsExporterKind[];
  /** True when OTEL_METRICS_EXPORTER was unset and otlp was chosen by default. */
  exportersDefaulted: boolean;
  prometheus: { host: string; port: number };
  otlp: OtlpConfig;
  exportIntervalMillis: number;
  exportTimeoutMillis: number;
  resourceAttributes: Record<string, string>;
}

const DEFAULT_OTLP_BASE = "http://localhost:4318";

/**
 * Reads the OTEL_* variables. Problems are warned about and replaced by
 * defaults; this never throws.
 */
export function resolveMetricsConfig(env: Env, logger: Logger): MetricsConfig {
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };

  // Exporters. Unset means otlp (the OTel default, and the contract's).
  let exporters: MetricsExporterKind[] = [];
  const exportersDefaulted = get("OTEL_METRICS_EXPORTER") === undefined;
  if (get("OTEL_SDK_DISABLED")?.toLowerCase() === "true") {
    exporters = ["none"];
  } else {
    const raw = get("OTEL_METRICS_EXPORTER") ?? "otlp";
    for (const part of raw.split(",")) {
      const name = part.trim().toLowerCase();
      if (name === "") continue;
      if (name === "prometheus" || name === "otlp" || name === "console" || name === "none") {
        if (!exporters.includes(name)) exporters.push(name);
      } else {
        logger.warn("unknown OTEL_METRICS_EXPORTER value ignored; metrics export disabled for it", {
          value: name,
          supported: "prometheus, otlp, console, none",
        });
      }
    }
    if (exporters.includes("none") || exporters.length === 0) exporters = ["none"];
  }

  // Prometheus listener.
  const promHost = get("OTEL_EXPORTER_PROMETHEUS_HOST") ?? "localhost";
  let promPort = 9464;
  const rawPort = get("OTEL_EXPORTER_PROMETHEUS_PORT");
  if (rawPort !== undefined) {
    const n = Number(rawPort);
    if (Number.isInteger(n) && n >= 0 && n <= 65535) promPort = n;
    else logger.warn("invalid OTEL_EXPORTER_PROMETHEUS_PORT; using 9464", { value: rawPort });
  }

  // OTLP.
  let protocol: OtlpProtocol = "http/protobuf";
  const rawProtocol = get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") ?? get("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (rawProtocol !== undefined) {
    if (rawProtocol === "http/protobuf" || rawProtocol === "http/json") protocol = rawProtocol;
    else if (exporters.includes("otlp")) {
      logger.warn("unsupported OTLP protocol; using http/protobuf (point the endpoint at the collector's OTLP/HTTP port, usually 4318)", {
        value: rawProtocol,
      });
    }
  }

  let url = `${DEFAULT_OTLP_BASE}/v1/metrics`;
  const specific = get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
  const general = get("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (specific !== undefined) {
    if (isHttpUrl(specific)) url = specific;
    else logger.warn("invalid OTEL_EXPORTER_OTLP_METRICS_ENDPOINT; using the default", { value: redactUrl(specific, LOG_URL) });
  } else if (general !== undefined) {
    if (isHttpUrl(general)) url = `${general.replace(/\/+$/, "")}/v1/metrics`;
    else logger.warn("invalid OTEL_EXPORTER_OTLP_ENDPOINT; using the default", { value: redactUrl(general, LOG_URL) });
  }

  const headers = {
    ...parseKeyValueList(get("OTEL_EXPORTER_OTLP_HEADERS")),
    ...parseKeyValueList(get("OTEL_EXPORTER_OTLP_METRICS_HEADERS")),
  };

  const timeoutMillis =
    positiveInt(get("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"), "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", logger) ??
    positiveInt(get("OTEL_EXPORTER_OTLP_TIMEOUT"), "OTEL_EXPORTER_OTLP_TIMEOUT", logger) ??
    10_000;

  const rawCompression = (get("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION") ?? get("OTEL_EXPORTER_OTLP_COMPRESSION"))?.toLowerCase();
  const compression = rawCompression === "gzip" ? "gzip" : "none";

  const rawTemporality = get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")?.toLowerCase();
  const temporality = rawTemporality === "delta" ? "delta" : "cumulative";

  const exportIntervalMillis =
    positiveInt(get("OTEL_METRIC_EXPORT_INTERVAL"), "OTEL_METRIC_EXPORT_INTERVAL", logger) ?? 60_000;
  const exportTimeoutMillis = Math.min(
    positiveInt(get("OTEL_METRIC_EXPORT_TIMEOUT"), "OTEL_METRIC_EXPORT_TIMEOUT", logger) ?? 30_000,
    exportIntervalMillis,
  );

  return {
    exporters,
    exportersDefaulted,
    prometheus: { host: promHost, port: promPort },
    otlp: { url, protocol, headers, timeoutMillis, compression, temporality },
    exportIntervalMillis,
    exportTimeoutMillis,
    resourceAttributes: parseKeyValueList(get("OTEL_RESOURCE_ATTRIBUTES")),
  };
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

function positiveInt(raw: string | undefined, name: string, logger: Logger): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (Number.isFinite(n) && n > 0) return Math.floor(n);
  logger.warn(`invalid ${name}; using the default`, { value: raw });
  return undefined;
}

/** W3C-baggage-like `k=v,k2=v2` with percent-decoding (OTEL_*_HEADERS, OTEL_RESOURCE_ATTRIBUTES). */
export function parseKeyValueList(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const key = safeDecode(part.slice(0, eq).trim());
    const value = safeDecode(part.slice(eq + 1).trim());
    if (key !== "") out[key] = value;
  }
  return out;
}
