// Resource use of a process tree from /proc (Linux): peak resident memory and
// CPU seconds. The parsers are pure; ProcessTreeSampler does the reading.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface ProcStat {
  pid: number;
  ppid: number;
  /** User and system CPU time of the process itself (all its threads), in clock ticks. */
  utime: number;
  stime: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and
 * may itself contain spaces and parentheses, so fields are counted from the
 * last ")".
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open === -1 || close === -1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // After ")": state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9)
  // minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14) stime(15) ...
  const rest = text.slice(close + 1).trim().split(/\s+/);
  const field = (n: number) => Number(rest[n - 3]);
  const out = { pid, ppid: field(4), utime: field(14), stime: field(15) };
  return Object.values(out).every(Number.isFinite) ? out : undefined;
}

export interface ProcMemory {
  /** Current resident set, kB. */
  rssKb: number;
  /** Peak resident set ("high water mark") since the process started, kB. */
  hwmKb: number;
  /** Of rssKb, the file-backed pages (RssFile: the executable's code and data, libraries), kB. */
  fileKb: number;
}

/** Reads VmRSS, VmHWM and RssFile from /proc/<pid>/status (absent for kernel threads and zombies: 0). */
export function parseProcStatus(text: string): ProcMemory {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, "m").exec(text);
    return m ? Number(m[1]) : 0;
  };
  return { rssKb: kb("VmRSS"), hwmKb: kb("VmHWM"), fileKb: kb("RssFile") };
}

/** `root` and all its descendants, given each process's parent. */
export function descendants(root: number, parentOf: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parentOf) {
    const list = children.get(ppid) ?? [];
    list.push(pid);
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

export interface TreeUsage {
  /** Largest resident memory of the tree seen: max(sum of VmRSS at one sample, largest single VmHWM), MiB. */
  peakRssMb: number;
  /** Of the largest summed sample, the file-backed part (RssFile), MiB: the rest is heap and buffers. */
  peakRssFileMb: number;
  /** CPU seconds (user + system) of every process seen in the tree, at its last sample. */
  cpuSeconds: number;
  /** Most established TCP connections the tree held at once to the watched port (null when none is watched). */
  peakConnections: number | null;
  samples: number;
}

/**
 * The inodes of the established TCP sockets to `port` in a /proc/<pid>/net/tcp or tcp6
 * table (`sl local rem st ... inode`, addresses as HEXIP:HEXPORT, st 01 = ESTABLISHED).
 */
export function establishedTo(table: string, port: number): Set<number> {
  const out = new Set<number>();
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== "01") continue;
    const remotePort = Number.parseInt(f[2]!.split(":")[1] ?? "", 16);
    if (remotePort === port) out.add(Number(f[9]));
  }
  return out;
}

/** Inodes of the sockets a process has open (its /proc/<pid>/fd links `socket:[N]`). */
function socketInodes(pid: number): number[] {
  const out: number[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Folds samples of a process tree into peak memory and CPU time. Pure; fed by the sampler. */
export class TreeUsageAccumulator {
  private peakSumKb = 0;
  private peakSumFileKb = 0;
  private peakHwmKb = 0;
  private readonly ticks = new Map<number, number>();
  private count = 0;
  private peakConnections: number | null = null;
  private lastSumKb = 0;

  private readonly ticksPerSecond: number;
  constructor(ticksPerSecond = 100) {
    this.ticksPerSecond = ticksPerSecond;
  }

  add(members: readonly { stat: ProcStat; memory: ProcMemory }[]): void {
    if (members.length === 0) return;
    this.count++;
    let sum = 0;
    let file = 0;
    for (const { stat, memory } of members) {
      sum += memory.rssKb;
      file += memory.fileKb;
      this.peakHwmKb = Math.max(this.peakHwmKb, memory.hwmKb);
      this.ticks.set(stat.pid, stat.utime + stat.stime);
    }
    if (sum > this.peakSumKb) {
      this.peakSumKb = sum;
      this.peakSumFileKb = file;
    }
    this.lastSumKb = sum;
  }

  /** The tree's resident memory (sum of VmRSS) at the last sample, MiB. */
  currentRssMb(): number {
    return this.lastSumKb / 1024;
  }

  /** One sample of the connections held to the watched port. */
  addConnections(count: number): void {
    this.peakConnections = Math.max(this.peakConnections ?? 0, count);
  }

  result(): TreeUsage {
    let ticks = 0;
    for (const t of this.ticks.values()) ticks += t;
    return {
      peakRssMb: Math.max(this.peakSumKb, this.peakHwmKb) / 1024,
      peakRssFileMb: this.peakSumFileKb / 1024,
      cpuSeconds: ticks / this.ticksPerSecond,
      peakConnections: this.peakConnections,
      samples: this.count,
    };
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** The tree under `root`, via /proc/<pid>/task/<tid>/children, falling back to a scan of /proc. */
export function processTree(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone
    }
    out.push(pid);
    for (const tid of tids) {
      const children = readText(`/proc/${pid}/task/${tid}/children`);
      if (children === undefined) return scanTree(root);
      for (const c of children.trim().split(/\s+/)) if (c) queue.push(Number(c));
    }
  }
  return out;
}

function scanTree(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readText(`/proc/${name}/stat`);
    const parsed = stat === undefined ? undefined : parseProcStat(stat);
    if (parsed) parentOf.set(parsed.pid, parsed.ppid);
  }
  return descendants(root, parentOf).filter((pid) => pid === root || parentOf.has(pid));
}

/** Samples a process tree on an interval until stopped. */
export class ProcessTreeSampler {
  private readonly acc: TreeUsageAccumulator;
  private timer: ReturnType<typeof setInterval> | undefined;

  private readonly root: number;
  /** Also count the tree's established TCP connections to this port (the API server's). */
  private readonly connectionsTo: number | undefined;
  constructor(root: number, ticksPerSecond = 100, connectionsTo?: number) {
    this.root = root;
    this.connectionsTo = connectionsTo;
    this.acc = new TreeUsageAccumulator(ticksPerSecond);
  }

  start(intervalMs: number): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    const members: { stat: ProcStat; memory: ProcMemory }[] = [];
    const tree = processTree(this.root);
    if (this.connectionsTo !== undefined && tree.length > 0) {
      const established = new Set([
        ...establishedTo(readText(`/proc/${this.root}/net/tcp`) ?? "", this.connectionsTo),
        ...establishedTo(readText(`/proc/${this.root}/net/tcp6`) ?? "", this.connectionsTo),
      ]);
      this.acc.addConnections(tree.reduce((n, pid) => n + socketInodes(pid).filter((i) => established.has(i)).length, 0));
    }
    for (const pid of tree) {
      const statText = readText(`/proc/${pid}/stat`);
      const statusText = readText(`/proc/${pid}/status`);
      const stat = statText === undefined ? undefined : parseProcStat(statText);
      if (stat === undefined || statusText === undefined) continue;
      members.push({ stat, memory: parseProcStatus(statusText) });
    }
    this.acc.add(members);
  }

  /** Takes a last sample (call while the processes still run) and stops. */
  stop(): TreeUsage {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return this.acc.result();
  }

  result(): TreeUsage {
    return this.acc.result();
  }

  /** The tree's resident memory now (takes a sample), MiB. */
  currentRssMb(): number {
    this.sample();
    return this.acc.currentRssMb();
  }
}

/** Clock ticks per second for /proc CPU times (`getconf CLK_TCK`; 100 on Linux in practice). */
export function clockTicksPerSecond(): number {
  try {
    const out = Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim();
    const n = Number(out);
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}
