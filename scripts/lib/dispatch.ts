// The local dispatch server (scripts/oz-dev-server) as a child process of the
// demo and the benchmark, and a client of its HTTP API.
//
// Unlike test/support/dispatch.ts this starts the server without --state:
// writing the whole state file after each burst of changes blocks the server's
// event loop for a while at hundreds of tasks, which would show up in the
// protocol event timestamps the benchmark measures.
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { CreateTaskBody, TaskRecord, WorkerInfo } from "../../test/dispatch-server/types.ts";
import { REPO } from "./sandbox.ts";

export type { CreateTaskBody, TaskEvent, TaskRecord, TaskState, WorkerInfo } from "../../test/dispatch-server/types.ts";

export const WORKER_WS_PATH = "/api/v1/selfhosted/worker/ws";
const DEV_SERVER = join(REPO, "scripts/oz-dev-server");

export class DispatchError extends Error {
  override name = "DispatchError";
  readonly status: number;
  constructor(
    message: string,
    status: number,
  ) {
    super(message);
    this.status = status;
  }
}

export class Dispatch {
  private stderrText = "";

  private readonly child: Subprocess<"ignore", "pipe", "pipe">;
  readonly url: string;
  readonly apiKey: string;
  private constructor(
    child: Subprocess<"ignore", "pipe", "pipe">,
    url: string,
    apiKey: string,
  ) {
    this.child = child;
    this.url = url;
    this.apiKey = apiKey;
  }

  /** Starts the server on a free port; resolves once it printed its address. */
  static async start(apiKey: string, timeoutMs = 15_000): Promise<Dispatch> {
    const child = Bun.spawn([DEV_SERVER, "--port", "0", "--api-key", apiKey], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    const deadline = Date.now() + timeoutMs;
    while (!buf.includes("\n")) {
      const left = deadline - Date.now();
      const next = await Promise.race([reader.read(), Bun.sleep(Math.max(0, left)).then(() => "timeout" as const)]);
      if (next === "timeout" || next.done) {
        child.kill("SIGKILL");
        const err = await new Response(child.stderr).text().catch(() => "");
        throw new Error(`oz-dev-server did not print its address${next === "timeout" ? ` within ${timeoutMs} ms` : ""}\n${err.trim()}`);
      }
      buf += decoder.decode(next.value, { stream: true });
    }
    const line = buf.slice(0, buf.indexOf("\n"));
    const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
    if (!m?.[1]) {
      child.kill("SIGKILL");
      throw new Error(`unexpected first line from oz-dev-server: ${line}`);
    }
    const server = new Dispatch(child, m[1], apiKey);
    void (async () => {
      while (!(await reader.read()).done) {
        // the server prints nothing more on stdout; keep the pipe drained
      }
    })();
    void server.collectStderr();
    return server;
  }

  get pid(): number {
    return this.child.pid;
  }

  /** The worker WebSocket URL (the worker appends ?worker_id=). */
  get wsUrl(): string {
    return `${this.url.replace(/^http/, "ws")}${WORKER_WS_PATH}`;
  }

  /** The server's stderr so far (connections, protocol oddities). */
  logs(): string {
    return this.stderrText;
  }

  private async collectStderr(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.child.stderr) {
      this.stderrText += decoder.decode(chunk, { stream: true });
      if (this.stderrText.length > 2_000_000) this.stderrText = this.stderrText.slice(-1_000_000);
    }
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      signal: AbortSignal.timeout(30_000),
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new DispatchError(`${method} ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`, res.status);
    return JSON.parse(text) as T;
  }

  createTask(body: CreateTaskBody): Promise<TaskRecord> {
    return this.call("POST", "/v1/tasks", body);
  }

  getTask(id: string): Promise<TaskRecord> {
    return this.call("GET", `/v1/tasks/${encodeURIComponent(id)}`);
  }

  listTasks(): Promise<TaskRecord[]> {
    return this.call("GET", "/v1/tasks");
  }

  cancel(id: string): Promise<TaskRecord> {
    return this.call("POST", `/v1/tasks/${encodeURIComponent(id)}/cancel`);
  }

  workers(): Promise<WorkerInfo[]> {
    return this.call("GET", "/v1/workers");
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const exited = await Promise.race([this.child.exited.then(() => true), Bun.sleep(5_000).then(() => false)]);
    if (!exited) this.child.kill("SIGKILL");
  }
}
