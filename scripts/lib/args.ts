// A small, strict command-line parser for the scripts: `--name value`,
// `--name=value` and boolean `--flag`; anything unknown is an error.

export interface FlagDef {
  kind: "string" | "int" | "number" | "boolean";
  /** One line for --help. */
  help: string;
  placeholder?: string;
}

export type FlagDefs = Record<string, FlagDef>;
export type ParsedFlags = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {
  override name = "UsageError";
}

export function parseFlags(argv: readonly string[], defs: FlagDefs): ParsedFlags {
  const out: ParsedFlags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument: ${arg}`);
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const def = defs[name];
    if (def === undefined) throw new UsageError(`unknown option --${name}`);
    if (def.kind === "boolean") {
      if (eq !== -1) {
        const v = arg.slice(eq + 1);
        if (v !== "true" && v !== "false") throw new UsageError(`--${name} takes no value (or =true/=false)`);
        out[name] = v === "true";
      } else {
        out[name] = true;
      }
      continue;
    }
    let raw: string | undefined;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else {
      raw = argv[++i];
      if (raw === undefined) throw new UsageError(`--${name} needs a value`);
    }
    if (def.kind === "string") {
      out[name] = raw;
    } else {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${raw}"`);
      if (def.kind === "int" && !Number.isInteger(n)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
      out[name] = n;
    }
  }
  return out;
}

export function usageText(command: string, summary: string, defs: FlagDefs): string {
  const rows = Object.entries(defs).map(([name, def]) => {
    const left = def.kind === "boolean" ? `--${name}` : `--${name} ${def.placeholder ?? (def.kind === "string" ? "VALUE" : "N")}`;
    return [left, def.help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return `usage: ${command} [options]\n\n${summary}\n\noptions:\n${rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`).join("\n")}\n`;
}
