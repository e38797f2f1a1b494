// Printing check results: one text line per check (status, name, duration, summary; on
// failure the details and the fix indented below), or one JSON object per line. Pure.
import type { CheckResult, PreflightReport } from "./types.ts";

export interface TextFormatOptions {
  /** ANSI colours (a terminal without NO_COLOR). */
  color?: boolean;
  /** Print details of passing/skipped checks too (warnings, notes). Default true: details are
   * only attached when they say something. */
  details?: boolean;
}

const STATUS_WORD = { pass: "PASS", fail: "FAIL", skip: "SKIP" } as const;
const STATUS_SYMBOL = { pass: "✓", fail: "✗", skip: "-" } as const;
const COLOR = { pass: "\x1b[32m", fail: "\x1b[31m", skip: "\x1b[33m" } as const;
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";
const NAME_WIDTH = 13; // "preflight-job"
const INDENT = "      ";

/** `1.23 s`, `45 ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** One check as text: the status line, then details and fix (indented) when there are any. */
export function formatCheckText(r: CheckResult, opts: TextFormatOptions = {}): string {
  const paint = (code: string, s: string) => (opts.color ? `${code}${s}${RESET}` : s);
  const head =
    `${paint(COLOR[r.status], `${STATUS_SYMBOL[r.status]} ${STATUS_WORD[r.status]}`)}  ` +
    `${r.name.padEnd(NAME_WIDTH)}  ${formatDuration(r.durationMs).padStart(7)}  ${r.summary}`;
  const lines = [head];
  if (r.details?.length && (opts.details ?? true)) {
    for (const d of r.details) lines.push(...indent(d, INDENT));
  }
  if (r.fix && r.status === "fail") {
    const [first = "", ...rest] = r.fix.split("\n");
    lines.push(paint(DIM, `${INDENT}fix: `) + first);
    for (const l of rest) lines.push(`${INDENT}  ${l}`);
  }
  return lines.join("\n");
}

function indent(text: string, prefix: string): string[] {
  return text.split("\n").map((l) => `${prefix}${l}`);
}

/** The closing line of the text output. */
export function formatSummaryText(report: PreflightReport): string {
  const failed = report.results.filter((r) => r.status === "fail").map((r) => r.name);
  const took = formatDuration(report.durationMs);
  if (report.interrupted) return `preflight interrupted after ${took}; the preflight Job was deleted`;
  if (failed.length === 0) return `preflight passed in ${took}: namespace "${report.namespace}" is ready to run tasks`;
  return `preflight failed in ${took}: ${failed.join(", ")} (namespace "${report.namespace}")`;
}

/** One JSON object per check, on one line (NDJSON). Keys in a fixed order; absent fields left out. */
export function formatCheckJson(r: CheckResult): string {
  return JSON.stringify({
    name: r.name,
    status: r.status,
    durationMs: r.durationMs,
    summary: r.summary,
    ...(r.details?.length ? { details: r.details } : {}),
    ...(r.fix ? { fix: r.fix } : {}),
  });
}
