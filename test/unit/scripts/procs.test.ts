import { describe, expect, test } from "bun:test";
import { descendants, establishedTo, parseProcStat, parseProcStatus, processTree, TreeUsageAccumulator } from "../../../scripts/lib/procs.ts";

describe("parseProcStat", () => {
  test("reads pid, ppid, utime and stime", () => {
    const text = "4242 (oz-worker) S 4241 4242 4242 0 -1 4194560 21000 0 0 0 150 37 0 0 20 0 12 0 1234 567890 9000 18446744073709551615\n";
    expect(parseProcStat(text)).toEqual({ pid: 4242, ppid: 4241, utime: 150, stime: 37 });
  });

  test("a command name with spaces and parentheses", () => {
    const text = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1";
    expect(parseProcStat(text)).toEqual({ pid: 7, ppid: 1, utime: 5, stime: 6 });
  });

  test("garbage is undefined", () => {
    expect(parseProcStat("nothing here")).toBeUndefined();
    expect(parseProcStat("1 (x) S")).toBeUndefined();
  });
});

describe("parseProcStatus", () => {
  test("VmRSS, VmHWM and RssFile in kB; absent is 0", () => {
    const text = "Name:\toz-worker\nVmPeak:\t  900000 kB\nVmHWM:\t   98304 kB\nVmRSS:\t   81920 kB\nRssAnon:\t   36864 kB\nRssFile:\t   45056 kB\nThreads:\t12\n";
    expect(parseProcStatus(text)).toEqual({ rssKb: 81920, hwmKb: 98304, fileKb: 45056 });
    expect(parseProcStatus("Name:\tkthreadd\n")).toEqual({ rssKb: 0, hwmKb: 0, fileKb: 0 });
  });
});

describe("descendants", () => {
  test("the root and everything under it, nothing else", () => {
    const parents = new Map([
      [10, 1],
      [11, 10],
      [12, 11],
      [13, 10],
      [20, 1],
    ]);
    expect(descendants(10, parents).sort()).toEqual([10, 11, 12, 13]);
    expect(descendants(99, parents)).toEqual([99]);
  });
});

describe("TreeUsageAccumulator", () => {
  const member = (pid: number, ticks: [number, number], rssKb: number, hwmKb: number, fileKb = 0) => ({
    stat: { pid, ppid: 1, utime: ticks[0], stime: ticks[1] },
    memory: { rssKb, hwmKb, fileKb },
  });

  test("the file-backed part is that of the largest summed sample", () => {
    const acc = new TreeUsageAccumulator(100);
    acc.add([member(1, [0, 0], 50 * 1024, 0, 40 * 1024), member(2, [0, 0], 10 * 1024, 0, 5 * 1024)]);
    acc.add([member(1, [0, 0], 70 * 1024, 0, 44 * 1024), member(2, [0, 0], 10 * 1024, 0, 5 * 1024)]);
    acc.add([member(1, [0, 0], 60 * 1024, 0, 46 * 1024)]);
    const r = acc.result();
    expect(r.peakRssMb).toBe(80);
    expect(r.peakRssFileMb).toBe(49);
  });

  test("peak is the larger of the largest summed sample and any process's high-water mark", () => {
    const acc = new TreeUsageAccumulator(100);
    acc.add([member(1, [1, 0], 1024, 2048), member(2, [10, 5], 50 * 1024, 60 * 1024)]);
    acc.add([member(1, [1, 0], 1024, 2048), member(2, [30, 10], 40 * 1024, 70 * 1024)]);
    const r = acc.result();
    expect(r.peakRssMb).toBe(70);
    expect(r.cpuSeconds).toBeCloseTo(0.41, 5); // 1 + 40 ticks at 100/s
    expect(r.samples).toBe(2);
  });

  test("the peak of the connection samples; null when none was taken", () => {
    const acc = new TreeUsageAccumulator(100);
    expect(acc.result().peakConnections).toBeNull();
    for (const n of [2, 66, 4]) acc.addConnections(n);
    expect(acc.result().peakConnections).toBe(66);
  });

  test("a process that exited keeps its last CPU time", () => {
    const acc = new TreeUsageAccumulator(100);
    acc.add([member(1, [100, 0], 0, 0), member(2, [50, 50], 0, 0)]);
    acc.add([member(1, [120, 0], 0, 0)]);
    expect(acc.result().cpuSeconds).toBeCloseTo(2.2, 5);
  });
});

test("processTree finds a real child", async () => {
  const child = Bun.spawn(["sh", "-c", "sleep 5 & wait"], { stdout: "ignore" });
  try {
    let tree: number[] = [];
    for (let i = 0; i < 50 && tree.length < 2; i++) {
      await Bun.sleep(20);
      tree = processTree(child.pid);
    }
    expect(tree[0]).toBe(child.pid);
    expect(tree.length).toBeGreaterThanOrEqual(2);
  } finally {
    for (const pid of processTree(child.pid).reverse()) process.kill(pid, "SIGKILL");
  }
});

test("establishedTo: the established sockets to a port, by inode, from a /proc/net/tcp table", () => {
  const table = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:765B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0",
    "   1: 0100007F:A1B2 0100007F:765B 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1",
    "   2: 0100007F:A1B3 0100007F:765B 06 00000000:00000000 03:00000D3B 00000000     0        0 0 3 0000000000000000",
    "   3: 0100007F:A1B4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1004 1 0000000000000000 20 4 30 10 -1",
    "",
  ].join("\n");
  // 0x765B = 30299: only the ESTABLISHED (01) one to that port; the listener, a TIME_WAIT and another port are not.
  expect([...establishedTo(table, 0x765b)]).toEqual([1002]);
});
