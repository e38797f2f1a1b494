// The generated parts of the documentation, from the command declarations and
// the config schema: the README's CLI reference and config table (between
// marker comments) and docs/config.schema.json. scripts/gen-config-docs writes
// them; test/unit/cli/docs.test.ts fails when they are stale.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { configJsonSchema, configTableMarkdown } from "../config/docs.ts";
import { flagDescription, flagUsage } from "./args.ts";
import { COMMANDS } from "./cli.ts";

export const README = "README.md";
export const CONFIG_JSON_SCHEMA = "docs/config.schema.json";

/** Markdown for every subcommand and its flags. */
export function cliReferenceMarkdown(): string {
  const parts: string[] = [];
  for (const spec of COMMANDS) {
    parts.push(`### \`oz-worker ${spec.name}\`\n\n${spec.summary}.\n`);
    const rows = spec.flags.map((f) => `| \`${flagUsage(f)}\` | ${flagDescription(f).replace(/\|/g, "\\|")} |`);
    parts.push(["| Flag | Description |", "|---|---|", ...rows, "| `-h, --help` | This command's help |"].join("\n"));
    if (spec.examples?.length) parts.push(`\n\`\`\`sh\n${spec.examples.join("\n")}\n\`\`\``);
    parts.push("");
  }
  return parts.join("\n");
}

const SECTIONS: Record<string, () => string> = {
  "cli-reference": cliReferenceMarkdown,
  "config-table": configTableMarkdown,
};

/**
 * The README with each generated section replaced. A section lives between
 * `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`.
 */
export function updateReadme(readme: string): string {
  let out = readme;
  for (const [name, render] of Object.entries(SECTIONS)) {
    const begin = `<!-- BEGIN GENERATED: ${name} (scripts/gen-config-docs; do not edit) -->`;
    const end = `<!-- END GENERATED: ${name} -->`;
    const i = out.indexOf(begin);
    const j = out.indexOf(end);
    if (i < 0 || j < i) throw new Error(`${README}: markers for the generated "${name}" section are missing:\n${begin}\n${end}`);
    out = `${out.slice(0, i + begin.length)}\n\n${render().trimEnd()}\n\n${out.slice(j)}`;
  }
  return out;
}

export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

/** The generated files' expected contents, given the repository root. */
export async function generatedDocs(root: string): Promise<Record<string, string>> {
  const readme = await readFile(join(root, README), "utf8");
  return { [README]: updateReadme(readme), [CONFIG_JSON_SCHEMA]: configJsonSchemaText() };
}

/** Writes the generated docs (or, with `check`, lists the stale ones); returns the exit code. */
export async function writeGeneratedDocs(root: string, check: boolean): Promise<number> {
  const files = await generatedDocs(root);
  const stale: string[] = [];
  for (const [path, content] of Object.entries(files)) {
    const current = await readFile(join(root, path), "utf8").catch(() => undefined);
    if (current === content) continue;
    stale.push(path);
    if (!check) await writeFile(join(root, path), content);
  }
  if (check && stale.length > 0) {
    process.stderr.write(`stale generated docs: ${stale.join(", ")}; run scripts/gen-config-docs\n`);
    return 1;
  }
  process.stdout.write(stale.length === 0 ? "generated docs are up to date\n" : `updated ${stale.join(", ")}\n`);
  return 0;
}
