// src/runtime.ts: the runtime check the entry point runs before it loads anything else, and
// the release of the executable's startup pages.
import { describe, expect, test } from "bun:test";
import { chmodSync, closeSync, copyFileSync, fsyncSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compareVersions, currentRuntime, MIN_RUNTIME_VERSIONS, runtimeRefusal } from "../../src/runtime.ts";

describe("runtimeRefusal", () => {
  test.each([
    [{ name: "node", version: "20.20.2" }, "oz-worker needs Node.js 22.18.0 or newer; this is Node.js 20.20.2"],
    [{ name: "node", version: "22.17.1" }, "oz-worker needs Node.js 22.18.0 or newer; this is Node.js 22.17.1"],
    [{ name: "deno", version: "1.46.3" }, "oz-worker needs Deno 2.0.0 or newer; this is Deno 1.46.3"],
    [{ name: "bun", version: "1.1.38" }, "oz-worker needs Bun 1.2.0 or newer; this is Bun 1.1.38"],
  ] as const)("%o is refused in one line naming both versions", (rt, line) => {
    expect(runtimeRefusal(rt)).toBe(line);
  });

  test.each([
    { name: "node", version: "22.18.0" },
    { name: "node", version: "24.3.0" },
    { name: "deno", version: "2.9.6" },
    { name: "bun", version: "1.4.5" },
  ] as const)("%o is accepted", (rt) => {
    expect(runtimeRefusal(rt)).toBeUndefined();
  });

  test("this test process (Bun) is recognised and accepted", () => {
    expect(currentRuntime()).toEqual({ name: "bun", version: Bun.version });
    expect(runtimeRefusal()).toBeUndefined();
  });
});

test("compareVersions compares numerically, ignoring a v prefix and suffixes", () => {
  expect(compareVersions("22.9.0", "22.18.0")).toBe(-1);
  expect(compareVersions("v22.18.0", "22.18.0")).toBe(0);
  expect(compareVersions("2.10.0-rc.1", "2.9.6")).toBe(1);
  expect(Object.keys(MIN_RUNTIME_VERSIONS).sort()).toEqual(["bun", "deno", "node"]);
});

describe("releaseExecutablePages", () => {
  // In a process of its own: it measures that process's resident pages, and that it still runs.
  const probe = `
    import { readFileSync } from "node:fs";
    import { releaseExecutablePages } from ${JSON.stringify(fileURLToPath(new URL("../../src/runtime.ts", import.meta.url)))};
    const fileRss = () => Number(/^RssFile:\\s+(\\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))[1]) * 1024;
    const before = fileRss();
    const released = await releaseExecutablePages();
    const after = fileRss();
    // Code the release took out of memory runs again: parsing, a regex, a timer, a fetch of a data URL.
    const again = JSON.parse(JSON.stringify({ ok: /x+/.test("xx") }));
    await new Promise((r) => setTimeout(r, 1));
    const text = await (await fetch("data:text/plain,still-running")).text();
    console.log(JSON.stringify({ before, released, after, ok: again.ok, text }));
  `;

  test.skipIf(process.platform !== "linux")("under Bun on Linux it gives the executable's resident pages back, and the process runs on", () => {
    // A copy of Bun of its own: the kernel does not reclaim pages other processes map too (this test runner's).
    const dir = mkdtempSync(join(tmpdir(), "oz-pageout-"));
    const bun = join(dir, "bun");
    copyFileSync(process.execPath, bun);
    const fd = openSync(bun, "r");
    fsyncSync(fd);
    closeSync(fd);
    chmodSync(bun, 0o755);
    const run = Bun.spawnSync([bun, "-e", probe], { stderr: "pipe" });
    rmSync(dir, { recursive: true, force: true });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    const r = JSON.parse(run.stdout.toString()) as { before: number; released: number; after: number; ok: boolean; text: string };
    expect(r.ok).toBe(true);
    expect(r.text).toBe("still-running");
    // Bun's own executable keeps tens of MB resident after start; most of it goes.
    expect(r.released).toBeGreaterThan(5 * 1024 * 1024);
    expect(r.after).toBeLessThan(r.before / 2);
  });
});
