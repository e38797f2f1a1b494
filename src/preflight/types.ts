// The shapes every preflight check produces, shared by `oz-worker preflight` and the
// startup gate of `oz-worker run`. Plain data: printable as text or JSON as-is.

export const CHECK_NAMES = ["connection", "permissions", "dry-run", "preflight-job"] as const;
export type CheckName = (typeof CHECK_NAMES)[number];
export type CheckStatus = "pass" | "fail" | "skip";

export interface CheckResult {
  name: CheckName;
  status: CheckStatus;
  /** Wall time of the check, whole milliseconds (0 for a skipped check). */
  durationMs: number;
  /** One line: what was proven, or what went wrong. */
  summary: string;
  /** Supporting lines: quoted API answers, each missing permission, warnings. */
  details?: string[];
  /** What to change, when the check failed (may span lines, e.g. a Role snippet). */
  fix?: string;
}

export interface PreflightReport {
  /** True when no check failed (skipped checks after a pass do not count as failures). */
  ok: boolean;
  /** One result per check, in order; never fewer than CHECK_NAMES. */
  results: CheckResult[];
  /** The API server could not be reached (or refused the credentials): exit code 3. */
  unreachable: boolean;
  /** The run was cut short by the caller's AbortSignal (Ctrl-C). */
  interrupted: boolean;
  namespace: string;
  durationMs: number;
}

/** Exit codes of `oz-worker preflight` (2, bad config or usage, is the CLI's). */
export const EXIT_OK = 0;
export const EXIT_CHECK_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;
/** 128 + SIGINT. */
export const EXIT_INTERRUPTED = 130;

export function exitCodeFor(report: Pick<PreflightReport, "ok" | "unreachable" | "interrupted">): number {
  if (report.interrupted) return EXIT_INTERRUPTED;
  if (report.unreachable) return EXIT_UNREACHABLE;
  return report.ok ? EXIT_OK : EXIT_CHECK_FAILED;
}
