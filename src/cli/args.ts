// Flag declarations and a strict parser for them.
//
// cac renders the help from these declarations (main.ts), but values are parsed
// here: cac (through mri) turns numeric-looking values into numbers
// (`--worker-id 0123` would become 123), cannot take `-` or a negative number
// as a separate value (`--config-file -`), and only rejects unknown flags when
// it runs an action itself. This parser keeps every value as typed, refuses
// unknown flags and stray arguments, and names the flag in every error.
import type { ConfigFlags } from "../config/load.ts";
import { closest } from "../config/schema-kit.ts";

export interface FlagSpec {
  /** Long name without dashes, e.g. "config-file". */
  name: string;
  /** One-letter alias without the dash, e.g. "e". */
  short?: string;
  /** boolean: present or not; string: one value (last wins); list: repeatable. */
  kind: "boolean" | "string" | "list";
  /** Value placeholder shown in help, e.g. "FILE". */
  placeholder?: string;
  description: string;
  /** Default as shown in help. */
  default?: string;
  /** Allowed values; anything else is a usage error. */
  choices?: readonly string[];
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

export type ParseArgsResult = { ok: true; values: FlagValues } | { ok: false; message: string };

/** How the flag reads in help and in messages: `-e, --env <KEY=VALUE>`. */
export function flagUsage(spec: FlagSpec): string {
  const names = spec.short ? `-${spec.short}, --${spec.name}` : `--${spec.name}`;
  return spec.kind === "boolean" ? names : `${names} <${spec.placeholder ?? "VALUE"}>`;
}

/** The help line's description, with choices, repeatability and default. */
export function flagDescription(spec: FlagSpec): string {
  let text = spec.description;
  if (spec.choices) text += ` (${spec.choices.join(" | ")})`;
  if (spec.kind === "list") text += " (repeatable)";
  if (spec.default !== undefined) text += ` (default: ${spec.default})`;
  return text;
}

/** Parses the arguments after the command name. No positional arguments are accepted. */
export function parseArgs(specs: readonly FlagSpec[], argv: readonly string[]): ParseArgsResult {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const values: FlagValues = {};
  const fail = (message: string): ParseArgsResult => ({ ok: false, message });

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === "--") {
      const rest = argv.slice(i + 1);
      return rest.length > 0 ? fail(`unexpected argument ${JSON.stringify(rest[0])}`) : { ok: true, values };
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    let shown: string;
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      const name = eq < 0 ? token.slice(2) : token.slice(2, eq);
      inline = eq < 0 ? undefined : token.slice(eq + 1);
      shown = `--${name}`;
      spec = byLong.get(name);
      if (!spec) {
        const hint = closest(name, [...byLong.keys()]);
        return fail(`unknown option ${shown}${hint ? ` (did you mean --${hint}?)` : ""}`);
      }
    } else if (token.startsWith("-") && token.length > 1) {
      const letter = token[1] as string;
      shown = `-${letter}`;
      spec = byShort.get(letter);
      if (!spec) return fail(`unknown option ${shown}`);
      if (token.length > 2) inline = token.slice(2).replace(/^=/, "");
    } else {
      return fail(`unexpected argument ${JSON.stringify(token)}`);
    }

    if (spec.kind === "boolean") {
      if (inline === undefined || inline === "true") values[spec.name] = true;
      else if (inline === "false") values[spec.name] = false;
      else return fail(`${shown}: expected no value (or =true / =false); got ${JSON.stringify(inline)}`);
      continue;
    }

    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      // A following flag is not a value; `-` (stdin) and negative numbers are.
      if (next === undefined || (next.startsWith("-") && next !== "-" && !/^-\d/.test(next))) {
        return fail(`${shown}: missing value (expected ${spec.placeholder ?? "a value"}; use ${shown}=VALUE for a value that starts with -)`);
      }
      value = next;
      i++;
    }
    if (spec.choices && !spec.choices.includes(value)) {
      return fail(`${shown}: expected one of ${spec.choices.join(", ")}; got ${JSON.stringify(value)}`);
    }
    if (spec.kind === "list") values[spec.name] = [...((values[spec.name] as string[] | undefined) ?? []), value];
    else values[spec.name] = value;
  }
  return { ok: true, values };
}

// ---------------------------------------------------------------------------
// The flags every config-reading command takes (the Go worker's flag set).

export const CONFIG_FLAGS: readonly FlagSpec[] = [
  { name: "config-file", kind: "string", placeholder: "FILE", description: "YAML config file; - reads it from standard input" },
  { name: "worker-id", kind: "string", placeholder: "ID", description: "Worker id (overrides worker_id; ids beginning with warp are reserved)" },
  { name: "api-key", kind: "string", placeholder: "KEY", description: "Oz API key", default: "$WARP_API_KEY" },
  { name: "log-level", kind: "string", placeholder: "LEVEL", description: "Log verbosity", choices: ["debug", "info", "warn", "error"], default: "info" },
  { name: "no-cleanup", kind: "boolean", description: "Keep task Jobs after they finish, with no TTL (overrides cleanup)" },
  { name: "env", short: "e", kind: "list", placeholder: "KEY=VALUE", description: "Env var for task containers; KEY alone passes the host's value through" },
  { name: "max-concurrent-tasks", kind: "string", placeholder: "N", description: "Most tasks at once, 0 = unlimited (overrides max_concurrent_tasks)" },
  { name: "idle-on-complete", kind: "string", placeholder: "DURATION", description: "How long the agent stays up after its task, e.g. 45m (overrides idle_on_complete)" },
  { name: "web-socket-url", kind: "string", placeholder: "URL", description: "Oz worker WebSocket endpoint", default: "wss://oz.warp.dev/api/v1/selfhosted/worker/ws" },
  { name: "server-root-url", kind: "string", placeholder: "URL", description: "Oz server root URL passed into tasks", default: "https://app.warp.dev" },
  { name: "backend", kind: "string", placeholder: "TYPE", description: "Backend type, for compatibility with the Go worker; only kubernetes (empty: kubernetes)" },
  { name: "session-sharing-server-url", kind: "string", placeholder: "URL", description: "Session sharing server URL passed to the agent in each task (--session-sharing-server-url)" },
  // The Go worker's flags for its docker and direct backends: accepted so its
  // command lines work unchanged, ignored with a warning (IGNORED_FLAGS).
  { name: "volumes", short: "v", kind: "list", placeholder: "HOST:CONTAINER[:MODE]", description: "Go worker's docker-backend volume mounts; ignored (use pod_template volumes)" },
  { name: "target-dir", kind: "string", placeholder: "DIR", description: "Go worker's direct-backend task directory; ignored" },
];

/** Go-worker flags that concern only its other backends: accepted, ignored, each with a warning. */
export const IGNORED_FLAGS: readonly string[] = ["volumes", "target-dir"];

/** One warning line per ignored flag given, e.g. "warning: -v/--volumes does not apply to the Kubernetes backend; ignored". */
export function ignoredFlagWarnings(values: FlagValues): string[] {
  return CONFIG_FLAGS.filter((spec) => IGNORED_FLAGS.includes(spec.name) && values[spec.name] !== undefined).map(
    (spec) => `warning: ${spec.short ? `-${spec.short}/` : ""}--${spec.name} does not apply to the Kubernetes backend; ignored`,
  );
}

/** The config-relevant flag values, for the config loader. */
export function configFlagsFrom(values: FlagValues): ConfigFlags {
  const str = (name: string) => values[name] as string | undefined;
  const flags: ConfigFlags = {};
  const set = <K extends keyof ConfigFlags>(key: K, value: ConfigFlags[K] | undefined) => {
    if (value !== undefined) flags[key] = value;
  };
  set("configFile", str("config-file"));
  set("workerId", str("worker-id"));
  set("apiKey", str("api-key"));
  set("logLevel", str("log-level"));
  set("noCleanup", values["no-cleanup"] === true ? true : undefined);
  set("env", values.env as string[] | undefined);
  set("maxConcurrentTasks", str("max-concurrent-tasks"));
  set("idleOnComplete", str("idle-on-complete"));
  set("webSocketUrl", str("web-socket-url"));
  set("serverRootUrl", str("server-root-url"));
  set("backend", str("backend"));
  set("sessionSharingServerUrl", str("session-sharing-server-url"));
  return flags;
}
