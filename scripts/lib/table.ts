// Plain-text tables and terminal styling for the demo and the benchmark. Pure:
// callers decide whether the output is a terminal and pass that in.

export type Align = "left" | "right";

export interface Column {
  header: string;
  align?: Align;
  /** Cells longer than this are cut with an ellipsis. */
  maxWidth?: number;
  /** The column is at least this wide (a live table then does not jitter). */
  minWidth?: number;
}

// biome-ignore lint: the escape character is the point of this pattern
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}

/** Display width, ignoring SGR/cursor escape sequences. */
export function visibleWidth(text: string): number {
  return [...stripAnsi(text)].length;
}

/** Cuts plain text to `width` characters, marking the cut with "…". */
export function truncate(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  if (width <= 1) return chars.slice(0, width).join("");
  return `${chars.slice(0, width - 1).join("")}…`;
}

function pad(text: string, width: number, align: Align): string {
  const fill = " ".repeat(Math.max(0, width - visibleWidth(text)));
  return align === "right" ? fill + text : text + fill;
}

/**
 * Renders rows under a header line and a rule, columns separated by two
 * spaces. Cells may carry ANSI styling; widths ignore it. Trailing spaces are
 * trimmed so logs stay clean.
 */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string[] {
  const cut = (cell: string, col: Column) =>
    col.maxWidth !== undefined && visibleWidth(cell) > col.maxWidth ? truncate(stripAnsi(cell), col.maxWidth) : cell;
  const body = rows.map((row) => columns.map((col, i) => cut(row[i] ?? "", col)));
  const widths = columns.map((col, i) => Math.max(col.minWidth ?? 0, visibleWidth(col.header), ...body.map((row) => visibleWidth(row[i]!))));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => pad(cell, widths[i]!, columns[i]!.align ?? "left"))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header)), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)];
}

export interface Style {
  readonly enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

export function makeStyle(enabled: boolean): Style {
  const wrap = (open: number, close: number) => (s: string) => (enabled && s !== "" ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return {
    enabled,
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}

/**
 * Colour only on a terminal, and never when NO_COLOR is set to anything
 * non-empty (no-color.org) or TERM is "dumb".
 */
export function colorWanted(isTTY: boolean, env: Record<string, string | undefined>): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.TERM === "dumb") return false;
  return isTTY;
}

/**
 * The bytes that replace a block of `previousLines` lines just printed on a
 * terminal with `lines`: cursor up to the block's first line, clear to the end
 * of the screen, print. Only for terminals.
 */
export function redraw(previousLines: number, lines: readonly string[]): string {
  const up = previousLines > 0 ? `\x1b[${previousLines}A\r` : "";
  return `${up}\x1b[J${lines.map((l) => `${l}\n`).join("")}`;
}

/** `1.2s`, `59.9s`, `2m05s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}
