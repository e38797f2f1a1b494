// Runs the real oz-worker (the compiled binary when built, else the sources) against the
// sandbox cluster and a dispatch server, and lets tests read its JSON log lines.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import YAML from "yaml";
import { type DispatchServer, waitFor } from "./dispatch.ts";

const ROOT = resolve(import.meta.dir, "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const BINARY = join(ROOT, "dist/oz-worker");

/** The worker command: $OZ_WORKER_BIN, else dist/oz-worker, else the sources through bun. */
export function workerCommand(): string[] {
  const override = process.env.OZ_WORKER_BIN;
  if (override) return [override];
  if (existsSync(BINARY)) return [BINARY];
  return [BUN, join(ROOT, "src/cli/main.ts")];
}

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface StartWorkerOptions {
  workerId: string;
  kubeconfig: string;
  namespace: string;
  dispatch: DispatchServer;
  /** More top-level config keys (cleanup, max_concurrent_tasks, …). */
  config?: Record<string, unknown>;
  /** More backend.kubernetes keys. */
  kubernetes?: Record<string, unknown>;
  /** Run preflight first (off by default: it has its own tests and costs a Job per start). */
  preflight?: boolean;
  args?: string[];
  env?: Record<string, string>;
}

export class WorkerProcess {
  readonly lines: LogLine[] = [];
  /** Raw output, for failure messages and secret checks. */
  output = "";
  readonly exited: Promise<number>;
  #exitCode: number | undefined;

  constructor(
    readonly child: ChildProcess,
    readonly configFile: string,
  ) {
    this.exited = new Promise((resolveExit) => {
      child.on("exit", (code, signal) => {
        this.#exitCode = code ?? (signal ? 128 : 1);
        resolveExit(this.#exitCode);
      });
    });
    let pending = "";
    const onData = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      this.output += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // a partial or non-JSON line: kept in `output` only
        }
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get exitCode(): number | undefined {
    return this.#exitCode;
  }

  /** Waits for a log line matching `predicate`; fails early if the worker exits. */
  waitForLog(what: string, predicate: (line: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    return waitFor(
      what,
      () => {
        const hit = this.lines.find(predicate);
        if (hit) return hit;
        if (this.#exitCode !== undefined) throw new Error(`worker exited (${this.#exitCode}) before: ${what}\n${this.tail()}`);
        return undefined;
      },
      { timeoutMs, detail: () => this.tail() },
    );
  }

  /** The health endpoints' base URL, once the worker serves them. */
  async healthUrl(): Promise<string> {
    const line = await this.waitForLog("health endpoints listening", (l) => l.msg === "health endpoints listening");
    return String(line.url);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number> {
    if (this.#exitCode === undefined) this.child.kill(signal);
    return this.exited;
  }

  tail(lines = 40): string {
    return this.output.split("\n").slice(-lines).join("\n");
  }
}

/** Starts `oz-worker run` and waits until it is connected to the dispatch server. */
export async function startWorker(opts: StartWorkerOptions, { waitConnected = true } = {}): Promise<WorkerProcess> {
  const dir = mkdtempSync(join(tmpdir(), "oz-worker-e2e-"));
  const configFile = join(dir, "config.yaml");
  writeFileSync(
    configFile,
    YAML.stringify({
      worker_id: opts.workerId,
      ...opts.config,
      backend: { kubernetes: { kubeconfig: opts.kubeconfig, namespace: opts.namespace, ...opts.kubernetes } },
    }),
  );
  const [cmd, ...pre] = workerCommand();
  const args = [
    ...pre,
    "run",
    "--config-file",
    configFile,
    "--web-socket-url",
    `${opts.dispatch.wsUrl}`,
    "--log-format",
    "json",
    "--log-level",
    "debug",
    "--health-addr",
    "127.0.0.1:0",
    ...(opts.preflight ? [] : ["--skip-preflight"]),
    ...(opts.args ?? []),
  ];
  const child = spawn(cmd!, args, {
    env: {
      ...process.env,
      WARP_API_KEY: opts.dispatch.apiKey,
      OTEL_METRICS_EXPORTER: "none",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const worker = new WorkerProcess(child, configFile);
  if (waitConnected) {
    await opts.dispatch.waitForWorkers((ws) => ws.some((w) => w.worker_id === opts.workerId), { timeoutMs: 30_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}\nworker output:\n${worker.tail()}`);
    });
  }
  return worker;
}
