// Builds the WorkerConfig from its three sources: the YAML config file
// (`--config-file F`, `-` for stdin), CLI flags, and the environment
// (WARP_API_KEY, and the host values `-e KEY` inherits). Flags win over the
// file, the file over the schema's defaults.
//
// Every problem is collected in one pass and reported with its place: the
// file, line and column (1-based), the YAML path, what was expected and what
// was found, e.g.
//   config.yaml:7:24 backend.kubernetes.image_pull_policy: expected one of Always, Never, IfNotPresent; got "always"
// Problems with flags name the flag instead of a file position.
import { readFile as fsReadFile } from "node:fs/promises";
import * as v from "valibot";
import { isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode, type Pair, type YAMLMap } from "yaml";
import type { EnvOverride, LogLevel, WorkerConfig } from "../core/types.ts";
import { readStdin as runtimeReadStdin } from "../runtime.ts";
import { LOG_LEVELS } from "../telemetry/log.ts";
import { ConfigFileSchema, DEFAULT_TTL_SECONDS_AFTER_FINISHED } from "./schema.ts";
import { type AnySchema, closest, entriesOf, GO_BOOLS, isGoBool, isGoString, show, unwrap } from "./schema-kit.ts";
import { parseGoDuration } from "./units.ts";

export const DEFAULT_WEB_SOCKET_URL = "wss://oz.warp.dev/api/v1/selfhosted/worker/ws";
export const DEFAULT_SERVER_ROOT_URL = "https://app.warp.dev";
export const DEFAULT_LOG_LEVEL: LogLevel = "info";
/** The name a config read from standard input goes by in messages. */
export const STDIN_FILE = "<stdin>";

export interface ConfigIssue {
  /** The config file as given (`<stdin>` for `-`); absent for flag and environment problems. */
  file?: string;
  /** 1-based. */
  line?: number;
  /** 1-based. */
  column?: number;
  /** YAML path (`backend.kubernetes.namespace`), or the flag (`--log-level`). */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatConfigIssue).join("\n"));
    this.issues = issues;
  }
}

/** `file:line:col path: message`, dropping the parts an issue does not have. */
export function formatConfigIssue(issue: ConfigIssue): string {
  const subject = issue.path ? `${issue.path}: ` : "";
  if (!issue.file) return `${subject}${issue.message}`;
  if (issue.line === undefined) return `${issue.file}: ${subject}${issue.message}`;
  const where = `${issue.file}:${issue.line}:${issue.column ?? 1}`;
  return issue.path ? `${where} ${subject}${issue.message}` : `${where}: ${issue.message}`;
}

/** Raw values of the config flags, as typed on the command line. */
export interface ConfigFlags {
  configFile?: string;
  workerId?: string;
  apiKey?: string;
  logLevel?: string;
  /** `--no-cleanup` was given. */
  noCleanup?: boolean;
  /** Each `-e/--env` value, in order. */
  env?: string[];
  maxConcurrentTasks?: string;
  idleOnComplete?: string;
  webSocketUrl?: string;
  serverRootUrl?: string;
  /** `--backend`, accepted for compatibility with the Go worker; only `kubernetes` (or empty). */
  backend?: string;
  /** `--session-sharing-server-url`, passed to the agent; empty means unset. */
  sessionSharingServerUrl?: string;
}

export interface ResolveInput {
  /** The config file's text, when there is one. */
  text?: string;
  /** The name of the file in messages. */
  file?: string;
  flags?: ConfigFlags;
  /** The host environment: WARP_API_KEY and the values `-e KEY` inherits. */
  env?: Record<string, string | undefined>;
  /** Refuse a config without an API key (the worker needs one; validation does not). */
  requireApiKey?: boolean;
}

export type ResolveResult = { ok: true; config: WorkerConfig } | { ok: false; issues: ConfigIssue[] };

export interface LoadOptions extends Omit<ResolveInput, "text" | "file"> {
  readFile?: (path: string) => Promise<string>;
  readStdin?: () => Promise<string>;
}

/** Reads the config file named by `--config-file` (if any) and resolves the config; throws ConfigError. */
export async function loadConfig(options: LoadOptions = {}): Promise<WorkerConfig> {
  const path = options.flags?.configFile;
  let text: string | undefined;
  let file: string | undefined;
  if (path !== undefined) {
    if (path === "") throw new ConfigError([{ path: "--config-file", message: "expected a file path or - for standard input; got \"\"" }]);
    file = path === "-" ? STDIN_FILE : path;
    try {
      text = path === "-" ? await (options.readStdin ?? runtimeReadStdin)() : await (options.readFile ?? readUtf8)(path);
    } catch (err) {
      throw new ConfigError([{ path: "--config-file", message: `cannot read ${JSON.stringify(path)}: ${describeFsError(err)}` }]);
    }
  }
  const result = resolveConfig({ ...options, text, file });
  if (!result.ok) throw new ConfigError(result.issues);
  return result.config;
}

/** Resolves the config from already-read sources. Pure: reads nothing, never throws. */
export function resolveConfig(input: ResolveInput): ResolveResult {
  const flags = input.flags ?? {};
  const env = input.env ?? {};
  const file = input.file;
  const issues: ConfigIssue[] = [];

  // 1. The file: YAML with positions.
  let doc: Document.Parsed | undefined;
  let lines: LineCounter | undefined;
  let data: Record<string, unknown> = {};
  let fileOk = true;
  if (input.text !== undefined) {
    lines = new LineCounter();
    // The yaml library checks unique keys by scanning the map for every key (quadratic: 2 s
    // for 10,000 labels); duplicateKeys finds the same ones with one Set per map.
    doc = parseDocument(input.text, { lineCounter: lines, prettyErrors: false, merge: true, uniqueKeys: false });
    const errors = [...doc.errors, ...duplicateKeys(doc)].sort((a, b) => a.pos[0] - b.pos[0]);
    if (errors.length > 0) {
      fileOk = false;
      for (const err of errors) {
        const pos = lines.linePos(err.pos[0]);
        issues.push({ file, line: pos.line, column: pos.col, path: "", message: `invalid YAML: ${err.message.split("\n")[0]}` });
      }
    } else {
      let root: unknown;
      try {
        root = doc.toJS({ maxAliasCount: 1000 });
      } catch (err) {
        // yaml reports some problems only here: an alias bomb (too many aliases), an alias
        // to no anchor, a merge key (<<) of something that is not a map.
        fileOk = false;
        root = {};
        issues.push({ ...at(file, lines, doc.contents), path: "", message: `invalid YAML: ${(err instanceof Error ? err.message : String(err)).split("\n")[0]}` });
      }
      if (!fileOk) data = {};
      else if (root === null || root === undefined) data = {};
      else if (isPlainObject(root)) data = root;
      else {
        fileOk = false;
        issues.push({ ...at(file, lines, doc.contents), path: "", message: `expected a mapping of config keys at the top level; got ${show(root)}` });
      }
    }
  }

  // 2. Go-like decoding and unknown keys, walking the data with the schema and the YAML nodes.
  if (fileOk && doc && lines) {
    const report: Report = (path, message, target) =>
      issues.push({ ...at(file, lines, findNode(doc, path, target)), path: formatPath(path), message });
    const parsedDoc = doc;
    const resolve = (node: unknown) => (isAlias(node) ? node.resolve(parsedDoc) : node);
    data = normalize(ConfigFileSchema, data, [], report, resolve, doc.contents) as Record<string, unknown>;
  }

  // 3. Flags that set file keys go through the same schema; their problems name the flag.
  const flagOf = new Map<string, string>();
  const overlay = (key: string, flag: string, value: unknown) => {
    if (value === undefined) return;
    data[key] = value;
    flagOf.set(key, flag);
  };
  overlay("worker_id", "--worker-id", flags.workerId);
  overlay("cleanup", "--no-cleanup", flags.noCleanup ? false : undefined);
  overlay("max_concurrent_tasks", "--max-concurrent-tasks", numeric(flags.maxConcurrentTasks));
  overlay("idle_on_complete", "--idle-on-complete", flags.idleOnComplete);

  // 4. Validate and apply defaults.
  const parsed = v.safeParse(ConfigFileSchema, fileOk ? data : pick(data, [...flagOf.keys()]), { abortEarly: false });
  if (!parsed.success) {
    for (const issue of parsed.issues) {
      const path = (issue.path ?? []).map((p) => p.key as PathKey);
      const flag = path.length > 0 ? flagOf.get(String(path[0])) : undefined;
      const message = messageOf(issue);
      if (flag) issues.push({ path: flag, message });
      else {
        const node = doc ? findNode(doc, path, "value") : undefined;
        issues.push({ ...(doc && lines ? at(file, lines, node) : { file }), path: formatPath(path), message });
      }
    }
  }

  // 5. Flag-only settings and the environment.
  const flagSettings = resolveFlagSettings(flags, env, input.requireApiKey ?? false, issues);

  if (fileOk && data.worker_id === undefined) {
    issues.push({ file, path: "worker_id", message: "required: set worker_id in the config file or pass --worker-id" });
  }

  if (issues.length > 0 || !parsed.success || !flagSettings) return { ok: false, issues: sortIssues(issues) };

  const f = parsed.output;
  const k = f.backend.kubernetes;
  const config: WorkerConfig = {
    workerId: f.worker_id as string,
    cleanup: f.cleanup,
    maxConcurrentTasks: f.max_concurrent_tasks,
    ...(f.idle_on_complete !== undefined && { idleOnComplete: f.idle_on_complete }),
    ...(flagSettings.apiKey !== undefined && { apiKey: flagSettings.apiKey }),
    webSocketUrl: flagSettings.webSocketUrl,
    serverRootUrl: flagSettings.serverRootUrl,
    ...(flagSettings.sessionSharingServerUrl !== undefined && { sessionSharingServerUrl: flagSettings.sessionSharingServerUrl }),
    logLevel: flagSettings.logLevel,
    env: flagSettings.env,
    kubernetes: {
      ...(k.kubeconfig !== undefined && { kubeconfig: k.kubeconfig }),
      namespace: k.namespace,
      ...(k.default_image !== undefined && { defaultImage: k.default_image }),
      imagePullPolicy: k.image_pull_policy,
      useImageVolumes: k.use_image_volumes,
      preflightImage: k.preflight_image,
      preflightResources: k.preflight_resources,
      ...(k.sidecar_image !== undefined && { sidecarImage: k.sidecar_image }),
      codingCliSidecars: k.coding_cli_sidecars,
      ...(k.setup_command !== undefined && { setupCommand: k.setup_command }),
      ...(k.teardown_command !== undefined && { teardownCommand: k.teardown_command }),
      extraLabels: k.extra_labels,
      extraAnnotations: k.extra_annotations,
      ...(k.active_deadline_seconds !== undefined && { activeDeadlineSeconds: k.active_deadline_seconds }),
      ...(f.cleanup && { ttlSecondsAfterFinished: k.ttl_seconds_after_finished ?? DEFAULT_TTL_SECONDS_AFTER_FINISHED }),
      ...(k.workspace_size_limit !== undefined && { workspaceSizeLimit: k.workspace_size_limit }),
      unschedulableTimeoutMs: parseGoDuration(k.unschedulable_timeout) ?? 0,
      inlineTaskEnv: k.inline_task_env,
      ...(k.pod_template !== undefined && { podTemplate: k.pod_template }),
    },
  };
  return { ok: true, config };
}

// ---------------------------------------------------------------------------
// Flags that are not file keys

interface FlagSettings {
  apiKey?: string;
  webSocketUrl: string;
  serverRootUrl: string;
  sessionSharingServerUrl?: string;
  logLevel: LogLevel;
  env: EnvOverride[];
}

function resolveFlagSettings(
  flags: ConfigFlags,
  env: Record<string, string | undefined>,
  requireApiKey: boolean,
  issues: ConfigIssue[],
): FlagSettings | undefined {
  const before = issues.length;
  const fail = (path: string, message: string) => issues.push({ path, message });

  const logLevel = flags.logLevel ?? DEFAULT_LOG_LEVEL;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) fail("--log-level", `expected one of ${LOG_LEVELS.join(", ")}; got ${show(logLevel)}`);

  const webSocketUrl = flags.webSocketUrl ?? DEFAULT_WEB_SOCKET_URL;
  if (!hasProtocol(webSocketUrl, ["ws:", "wss:"])) fail("--web-socket-url", `expected a ws:// or wss:// URL; got ${show(webSocketUrl)}`);

  const serverRootUrl = flags.serverRootUrl ?? DEFAULT_SERVER_ROOT_URL;
  if (!hasProtocol(serverRootUrl, ["http:", "https:"])) fail("--server-root-url", `expected an http:// or https:// URL; got ${show(serverRootUrl)}`);

  // The Go worker takes an empty --backend as "not set". Its other backends are refused rather
  // than ignored: a command line meant for docker or direct would otherwise run something else.
  if (flags.backend !== undefined && flags.backend !== "" && flags.backend !== "kubernetes") {
    fail("--backend", `expected kubernetes (oz-worker runs tasks only as Kubernetes Jobs); got ${show(flags.backend)}`);
  }

  // Passed to the agent as given, as the Go worker does; checked to be a URL so a typo fails here, not in every task.
  const sessionSharingServerUrl = flags.sessionSharingServerUrl || undefined;
  if (sessionSharingServerUrl !== undefined && !hasProtocol(sessionSharingServerUrl, ["ws:", "wss:", "http:", "https:"])) {
    fail("--session-sharing-server-url", `expected a ws://, wss://, http:// or https:// URL; got ${show(sessionSharingServerUrl)}`);
  }

  let apiKey = flags.apiKey;
  if (apiKey === "") fail("--api-key", "expected an API key; got \"\"");
  if (apiKey === undefined && env.WARP_API_KEY) apiKey = env.WARP_API_KEY;
  if (requireApiKey && apiKey === undefined) fail("--api-key", "required: pass --api-key or set the WARP_API_KEY environment variable");

  const overrides = new Map<string, string>();
  for (const entry of flags.env ?? []) {
    const parsed = parseEnvFlag(entry, env);
    if (parsed.ok) overrides.set(parsed.name, parsed.value);
    else fail("--env", parsed.message);
  }

  if (issues.length > before) return undefined;
  return {
    ...(apiKey !== undefined && { apiKey }),
    webSocketUrl,
    serverRootUrl,
    ...(sessionSharingServerUrl !== undefined && { sessionSharingServerUrl }),
    logLevel: logLevel as LogLevel,
    env: [...overrides].map(([name, value]) => ({ name, value })),
  };
}

/**
 * One `-e/--env` value: `KEY=VALUE`, or `KEY` to pass the host's value through
 * (empty when the host has none). An empty key or whitespace in the key is an error.
 */
export function parseEnvFlag(
  entry: string,
  hostEnv: Record<string, string | undefined>,
): { ok: true; name: string; value: string } | { ok: false; message: string } {
  if (entry === "") return { ok: false, message: "expected KEY=VALUE or KEY; got \"\"" };
  const eq = entry.indexOf("=");
  const name = eq < 0 ? entry : entry.slice(0, eq);
  if (name === "") return { ok: false, message: `expected KEY=VALUE or KEY; got ${show(entry)} (the key is empty)` };
  if (/\s/.test(name)) return { ok: false, message: `expected KEY=VALUE or KEY; got ${show(entry)} (the key contains whitespace)` };
  return { ok: true, name, value: eq < 0 ? (hostEnv[name] ?? "") : entry.slice(eq + 1) };
}

function hasProtocol(url: string, protocols: string[]): boolean {
  try {
    return protocols.includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

/** `--max-concurrent-tasks 4` is a number for the schema; anything else stays text for its message. */
function numeric(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  const n = Number(text);
  return text.trim() !== "" && Number.isFinite(n) ? n : text;
}

// ---------------------------------------------------------------------------
// The pre-pass: Go-like decoding of string keys, nulls as unset, unknown keys

type PathKey = string | number;
type Report = (path: PathKey[], message: string, target: "key" | "value") => void;
const MAPPING_TYPES = new Set(["strict_object", "object", "loose_object", "record"]);

/**
 * Walks `value` along `schema`:
 *  - a key whose value is null is dropped (unset), as yaml.v3 leaves a Go field alone;
 *  - a `goString` key takes any scalar as its text (the YAML source, so `0123` stays
 *    "0123") and an empty string as unset; a `goBool` key also takes yes/no/on/off;
 *  - a key a strict object does not list is reported (with the closest known key) and dropped,
 *    so valibot then checks everything else and all unknown keys are reported, not only the first.
 */
function normalize(schema: AnySchema, value: unknown, path: PathKey[], report: Report, resolve: (node: unknown) => unknown, node: unknown): unknown {
  const s = unwrap(schema) as AnySchema & { item?: AnySchema; value?: AnySchema };
  if (isGoString(schema)) {
    if (isScalar(node) && (typeof node.value === "number" || typeof node.value === "boolean")) {
      return node.source ?? String(node.value);
    }
    return value;
  }
  if (isGoBool(schema) && typeof value === "string") return GO_BOOLS[value] ?? value;
  if (s.type === "array" && Array.isArray(value) && s.item) {
    const item = s.item;
    const seq = isSeq(node) ? node : undefined;
    return value.map((x, i) => normalize(item, x, [...path, i], report, resolve, resolve(seq?.items[i])));
  }
  if (Array.isArray(value) && MAPPING_TYPES.has(s.type)) {
    // valibot would take a list's indexes as keys.
    report(path, `expected a mapping; got ${show(value)}`, "value");
    return undefined;
  }
  if (!isPlainObject(value)) return value;
  const entries = entriesOf(s);
  const recordValue = s.type === "record" ? s.value : undefined;
  if (!entries && !recordValue) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (child === null) continue;
    const childSchema = entries ? entries[key] : recordValue;
    if (!childSchema) {
      if (s.type !== "strict_object") out[key] = child;
      else {
        const known = Object.keys(entries ?? {});
        const hint = closest(key, known);
        report([...path, key], `unknown key ${JSON.stringify(key)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ""}`, "key");
      }
      continue;
    }
    const normalized = normalize(childSchema, child, [...path, key], report, resolve, resolve(pairOf(node, key)?.value));
    if (normalized === undefined || (entries && normalized === "" && isGoString(childSchema))) continue;
    out[key] = normalized;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Positions

/** Each mapping's pairs by key text, built on first use (a lookup per key would be quadratic). */
const pairIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

function pairOf(node: unknown, key: PathKey): Pair | undefined {
  if (!isMap(node)) return undefined;
  let index = pairIndex.get(node);
  if (!index) {
    index = new Map();
    for (const p of node.items) {
      const text = String(isScalar(p.key) ? p.key.value : p.key);
      // The first pair of a key, as a scan would find it.
      if (isPair(p) && !index.has(text)) index.set(text, p);
    }
    pairIndex.set(node, index);
  }
  return index.get(String(key));
}

/** A mapping's repeated keys, as the yaml library reports them with `uniqueKeys: true` (same message and position). */
function duplicateKeys(doc: Document.Parsed): { pos: [number, number]; message: string }[] {
  const found: { pos: [number, number]; message: string }[] = [];
  // An explicit stack: nesting may be as deep as the parser allows.
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isPair(node)) stack.push(node.key, node.value);
    else if (isSeq(node)) for (const item of node.items) stack.push(item);
    else if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const pair of node.items) {
        stack.push(pair);
        // The library's equality: the same node, or scalars with the same value.
        const id = isScalar(pair.key) ? pair.key.value : pair.key;
        if (!seen.has(id)) seen.add(id);
        else {
          const start = (pair.key as YamlNode | null)?.range?.[0] ?? node.range?.[0] ?? 0;
          found.push({ pos: [start, start + 1], message: "Map keys must be unique" });
        }
      }
    }
  }
  return found;
}

/**
 * The YAML node to point at for `path`: the key of its last step ("key"), or
 * its value ("value"), except that a block mapping or list is pointed at by its
 * key, as it starts on the next line. Falls back to the deepest node found.
 */
function findNode(doc: Document.Parsed, path: readonly PathKey[], target: "key" | "value"): YamlNode | undefined {
  let node: unknown = doc.contents;
  let found = node as YamlNode | undefined;
  for (let i = 0; i < path.length; i++) {
    const key = path[i] as PathKey;
    if (isAlias(node)) node = node.resolve(doc);
    if (isSeq(node) && typeof key === "number") {
      node = node.items[key];
    } else {
      const pair = pairOf(node, key);
      if (!pair) return found;
      const value = pair.value;
      if (i === path.length - 1 && (target === "key" || (isCollection(value) && !value.flow))) return pair.key as YamlNode;
      node = value ?? pair.key;
    }
    if (!node) return found;
    found = node as YamlNode;
  }
  return found;
}

function at(file: string | undefined, lines: LineCounter, node: unknown): { file?: string; line?: number; column?: number } {
  const range = (node as { range?: [number, number, number] } | undefined)?.range;
  if (!range) return file === undefined ? {} : { file };
  const pos = lines.linePos(range[0]);
  return { file, line: pos.line, column: pos.col };
}

// ---------------------------------------------------------------------------
// Messages

/** `backend.kubernetes.pod_template.containers[0].name`; odd keys quoted: `extra_labels["app.kubernetes.io/name"]`. */
export function formatPath(path: readonly PathKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(key)}]`;
  }
  return out;
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  boolean: "true or false",
  array: "a list",
  strict_object: "a mapping",
  object: "a mapping",
  loose_object: "a mapping",
  record: "a mapping",
};

function messageOf(issue: v.BaseIssue<unknown>): string {
  if (issue.kind === "validation" || issue.type === "custom") return issue.message;
  const last = issue.path?.at(-1);
  if (issue.input === undefined && last && "origin" in last && last.origin === "key") {
    return `missing required key ${JSON.stringify(last.key)}`;
  }
  let what: string;
  if (issue.type === "picklist" || issue.type === "literal") {
    const options = (issue.expected ?? "").replace(/^\((.*)\)$/, "$1").split(" | ");
    what = `one of ${options.map((o) => (o.startsWith('"') ? JSON.parse(o) : o)).join(", ")}`;
  } else {
    what = TYPE_NAMES[issue.type] ?? issue.expected ?? "a valid value";
  }
  const hint = issue.type === "string" && (typeof issue.input === "number" || typeof issue.input === "boolean") ? " (quote it to make it a string)" : "";
  return `expected ${what}; got ${show(issue.input)}${hint}`;
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) => {
      const la = a.issue.line ?? Number.POSITIVE_INFINITY;
      const lb = b.issue.line ?? Number.POSITIVE_INFINITY;
      if (la !== lb) return la - lb;
      const ca = a.issue.column ?? 0;
      const cb = b.issue.column ?? 0;
      return ca !== cb ? ca - cb : a.i - b.i;
    })
    .map(({ issue }) => issue);
}

// ---------------------------------------------------------------------------

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Date) && !(x instanceof Uint8Array);
}

function pick(data: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => k in data).map((k) => [k, data[k]]));
}

async function readUtf8(path: string): Promise<string> {
  return fsReadFile(path, "utf8");
}

/** A file read error in a few words ("no such file"). */
export function describeFsError(err: unknown): string {
  const code = (err as { code?: string } | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return err instanceof Error ? err.message : String(err);
  }
}
