import { describe, expect, test } from "bun:test";
import { colorWanted, formatDuration, makeStyle, redraw, renderTable, stripAnsi, truncate, visibleWidth } from "../../../scripts/lib/table.ts";

describe("renderTable", () => {
  test("aligns columns, right-aligns numbers, trims trailing space", () => {
    const lines = renderTable(
      [{ header: "task" }, { header: "n", align: "right" }, { header: "note" }],
      [
        ["a", "1", ""],
        ["bbbb", "100", "x"],
      ],
    );
    expect(lines).toEqual(["task    n  note", "----  ---  ----", "a       1", "bbbb  100  x"]);
  });

  test("widths ignore colour codes", () => {
    const s = makeStyle(true);
    const lines = renderTable([{ header: "state" }, { header: "x" }], [[s.green("ok"), "1"]]);
    expect(stripAnsi(lines[2]!)).toBe("ok     1");
    expect(lines[2]).toContain("\x1b[32m");
  });

  test("cuts long cells with an ellipsis", () => {
    const lines = renderTable([{ header: "r", maxWidth: 5 }], [["abcdefgh"]]);
    expect(lines[2]).toBe("abcd…");
  });

  test("minWidth keeps a column from shrinking", () => {
    expect(renderTable([{ header: "a", minWidth: 4 }, { header: "b" }], [["x", "y"]])[2]).toBe("x     y");
  });

  test("missing cells are empty", () => {
    expect(renderTable([{ header: "a" }, { header: "b" }], [["x"]])[2]).toBe("x");
  });
});

describe("styling", () => {
  test("disabled style adds nothing", () => {
    const s = makeStyle(false);
    expect(s.red("x") + s.bold("y")).toBe("xy");
  });

  test("colour only on a terminal without NO_COLOR or TERM=dumb", () => {
    expect(colorWanted(true, {})).toBe(true);
    expect(colorWanted(false, {})).toBe(false);
    expect(colorWanted(true, { NO_COLOR: "1" })).toBe(false);
    expect(colorWanted(true, { NO_COLOR: "" })).toBe(true);
    expect(colorWanted(true, { TERM: "dumb" })).toBe(false);
  });

  test("visibleWidth and truncate", () => {
    expect(visibleWidth("\x1b[1mabc\x1b[22m")).toBe(3);
    expect(truncate("abc", 3)).toBe("abc");
    expect(truncate("abcd", 3)).toBe("ab…");
  });
});

describe("redraw", () => {
  test("first draw prints; later draws move up over the previous block and clear", () => {
    expect(redraw(0, ["a", "b"])).toBe("\x1b[Ja\nb\n");
    expect(redraw(2, ["c"])).toBe("\x1b[2A\r\x1b[Jc\n");
  });
});

describe("formatDuration", () => {
  test("seconds with a decimal, then minutes", () => {
    expect(formatDuration(0)).toBe("0.0s");
    expect(formatDuration(1234)).toBe("1.2s");
    expect(formatDuration(125_000)).toBe("2m05s");
    expect(formatDuration(-1)).toBe("-");
  });
});
