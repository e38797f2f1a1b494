// The worker under demo or benchmark: build it when missing, write its config,
// run it with its output in a log file, and stop it (SIGTERM, then SIGKILL).
import { closeSync, existsSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { processTree } from "./procs.ts";
import { REPO, runShown } from "./sandbox.ts";

/** The compiled worker; OZ_WORKER_BIN points the demo and the benchmark at another build. */
export const WORKER_BINARY = process.env.OZ_WORKER_BIN || join(REPO, "dist/oz-worker");
const BUILD_SCRIPT = join(REPO, "scripts/build");

/** Builds dist/oz-worker with scripts/build when it is missing; its progress goes to stderr. */
export async function ensureWorkerBinary(say: (line: string) => void): Promise<void> {
  if (existsSync(WORKER_BINARY)) return;
  if (process.env.OZ_WORKER_BIN) throw new Error(`OZ_WORKER_BIN=${WORKER_BINARY} does not exist`);
  if (!existsSync(BUILD_SCRIPT)) throw new Error(`${WORKER_BINARY} is missing and ${BUILD_SCRIPT} does not exist to build it`);
  say(`building ${WORKER_BINARY} (scripts/build)`);
  const code = await runShown([BUILD_SCRIPT]);
  if (code !== 0 || !existsSync(WORKER_BINARY)) throw new Error(`scripts/build failed (exit ${code})`);
}

export interface WorkerConfigOptions {
  workerId: string;
  kubeconfig: string;
  namespace: string;
  maxConcurrentTasks?: number;
  unschedulableTimeout?: string;
  /** false: the worker keeps every Job (`cleanup: false`). */
  cleanup?: boolean;
}

/** The worker config file (YAML; JSON strings are valid YAML scalars). */
export function workerConfigYaml(o: WorkerConfigOptions): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [`worker_id: ${q(o.workerId)}`];
  if (o.maxConcurrentTasks !== undefined) lines.push(`max_concurrent_tasks: ${o.maxConcurrentTasks}`);
  if (o.cleanup !== undefined) lines.push(`cleanup: ${o.cleanup}`);
  lines.push("backend:", "  kubernetes:", `    kubeconfig: ${q(o.kubeconfig)}`, `    namespace: ${q(o.namespace)}`);
  if (o.unschedulableTimeout !== undefined) lines.push(`    unschedulable_timeout: ${o.unschedulableTimeout}`);
  return `${lines.join("\n")}\n`;
}

export function writeWorkerConfig(path: string, o: WorkerConfigOptions): string {
  writeFileSync(path, workerConfigYaml(o), { mode: 0o600 });
  return path;
}

export interface WorkerProcess {
  pid: number;
  logFile: string;
  exited: Promise<number>;
  readonly exitCode: number | null;
  /** SIGTERM to every process of the tree, SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number>;
}

/** Starts the worker (argv, or a shell command via `sh -c`) with stdout and stderr appended to `logFile`. */
export function spawnWorker(command: { argv: string[] } | { shell: string }, env: Record<string, string>, logFile: string): WorkerProcess {
  const argv = "argv" in command ? command.argv : ["sh", "-c", command.shell];
  const fd = openSync(logFile, "a");
  const proc = Bun.spawn(argv, { cwd: REPO, env: { ...process.env, ...env }, stdin: "ignore", stdout: fd, stderr: fd });
  closeSync(fd);
  const signalTree = (signal: NodeJS.Signals) => {
    // Leaves first, so a shell wrapper does not exit before its child got the signal.
    for (const pid of processTree(proc.pid).reverse()) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  };
  return {
    pid: proc.pid,
    logFile,
    exited: proc.exited,
    get exitCode() {
      return proc.exitCode;
    },
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? 128;
      signalTree("SIGTERM");
      const done = await Promise.race([proc.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
      if (!done) signalTree("SIGKILL");
      return await proc.exited;
    },
  };
}
