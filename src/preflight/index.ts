// The preflight checks, shared by `oz-worker preflight` and the startup gate of `oz-worker run`.
export { runPreflight, DEFAULT_PREFLIGHT_TIMEOUT_MS, type RunPreflightOptions } from "./run.ts";
export { startupPreflight, preflightGate, logCheckResult, type StartupPreflightOptions, type StartupPreflightResult } from "./gate.ts";
export { formatCheckText, formatCheckJson, formatSummaryText, formatDuration, type TextFormatOptions } from "./format.ts";
export {
  REQUIRED_PERMISSIONS,
  requiredPermissions,
  renderRoleSnippet,
  roleRules,
  describePermission,
  type RequiredPermission,
  type PolicyRule,
} from "./permissions.ts";
export { parsePodSecurity, podSecurityFix, type PodSecurityMessage } from "./pod-security.ts";
export { decidePreflight, decideAtTimeout, type PreflightObservation, type Verdict } from "./decide.ts";
export type { PreflightKube } from "./context.ts";
export {
  CHECK_NAMES,
  exitCodeFor,
  EXIT_CHECK_FAILED,
  EXIT_INTERRUPTED,
  EXIT_OK,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  type CheckName,
  type CheckResult,
  type CheckStatus,
  type PreflightReport,
} from "./types.ts";
