// Test helpers for the local dispatch server (scripts/oz-dev-server): start it
// as a child process, drive its HTTP API, and stand in for a worker on its
// WebSocket. Waits poll with a deadline; nothing sleeps in place of a condition.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { WORKER_WS_PATH } from "../dispatch-server/server.ts";
import type { CreateTaskBody, JsonObject, TaskRecord, TaskState, WorkerInfo } from "../dispatch-server/types.ts";
import { waitFor, type WaitOptions } from "./wait.ts";

export type { CreateTaskBody, TaskRecord, TaskState, WorkerInfo } from "../dispatch-server/types.ts";
// The shared wait helper (test/support/wait.ts), re-exported for the importers of this module.
export { waitFor, type WaitOptions };

export const DEV_SERVER_SCRIPT = resolve(import.meta.dir, "../../scripts/oz-dev-server");

const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
/** How long connectTestWorker waits for the socket to open, by default. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How much server stderr to keep for `logs()` and timeout messages. */
const MAX_LOG_CHARS = 1_000_000;

/** A non-success answer from the dispatch server's HTTP API. */
export class DispatchApiError extends Error {
  readonly status: number;
  readonly body: string;
  constructor(
    status: number,
    body: string,
    request: string,
  ) {
    super(`${request} answered ${status}: ${body}`);
    this.status = status;
    this.body = body;
    this.name = "DispatchApiError";
  }
}

export interface StartOptions {
  /** The address to listen on (127.0.0.1 by default), e.g. the real node's host address. */
  host?: string;
  /** Bearer key; a random one by default. */
  apiKey?: string;
  /**
   * Where records persist. By default a file in a fresh temp directory (removed
   * by stop()), so restart() keeps the tasks either way.
   */
  stateFile?: string;
}

export interface RestartOptions {
  /** SIGTERM (default) lets the server save its state; SIGKILL simulates a crash. */
  signal?: "SIGTERM" | "SIGKILL";
}

/** Child servers still running, killed if the test process exits without stop(). */
const running = new Set<Subprocess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Starts `scripts/oz-dev-server --port 0` and resolves once it listens. */
export function startDispatchServer(options: StartOptions = {}): Promise<DispatchServer> {
  return DispatchServer.start(options);
}

export class DispatchServer {
  private child: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  private currentPort = 0;
  private stderr = "";

  readonly apiKey: string;
  readonly stateFile: string;
  private readonly tempDir: string | null;
  readonly host: string;
  private constructor(
    apiKey: string,
    stateFile: string,
    tempDir: string | null,
    host: string,
  ) {
    this.apiKey = apiKey;
    this.stateFile = stateFile;
    this.tempDir = tempDir;
    this.host = host;
  }

  static async start(options: StartOptions = {}): Promise<DispatchServer> {
    const apiKey = options.apiKey ?? `test-${crypto.randomUUID()}`;
    let tempDir: string | null = null;
    let stateFile = options.stateFile;
    if (stateFile === undefined) {
      tempDir = mkdtempSync(join(tmpdir(), "oz-dev-server-"));
      stateFile = join(tempDir, "state.json");
    }
    const server = new DispatchServer(apiKey, stateFile, tempDir, options.host ?? "127.0.0.1");
    await server.spawn(0);
    return server;
  }

  get port(): number {
    return this.currentPort;
  }

  /** Base URL of the HTTP API, e.g. http://127.0.0.1:41234. Stable across restart(). */
  get url(): string {
    return `http://${this.host}:${this.currentPort}`;
  }

  /** The worker WebSocket URL, without the worker_id parameter the worker appends. */
  get wsUrl(): string {
    return `ws://${this.host}:${this.currentPort}${WORKER_WS_PATH}`;
  }

  /** Server stderr so far (the server logs connections, ignored frames, errors). */
  logs(): string {
    return this.stderr;
  }

  /** A raw authorised request, for tests of status codes; `body` is sent as JSON. */
  request(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(`${this.url}${path}`, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    });
  }

  createTask(body: CreateTaskBody = {}): Promise<TaskRecord> {
    return this.call("POST", "/v1/tasks", 201, body);
  }

  getTask(taskId: string): Promise<TaskRecord> {
    return this.call("GET", `/v1/tasks/${encodeURIComponent(taskId)}`, 200);
  }

  /** Newest first. */
  listTasks(): Promise<TaskRecord[]> {
    return this.call("GET", "/v1/tasks", 200);
  }

  cancel(taskId: string): Promise<TaskRecord> {
    return this.call("POST", `/v1/tasks/${encodeURIComponent(taskId)}/cancel`, 202);
  }

  workers(): Promise<WorkerInfo[]> {
    return this.call("GET", "/v1/workers", 200);
  }

  async disconnect(workerId: string): Promise<void> {
    await this.call("POST", `/v1/workers/${encodeURIComponent(workerId)}/disconnect`, 200);
  }

  /** Polls the task until `predicate` holds; the error on timeout shows its last state. */
  async waitForTask(
    taskId: string,
    predicate: (task: TaskRecord) => boolean,
    options: WaitOptions = {},
  ): Promise<TaskRecord> {
    let last: TaskRecord | undefined;
    return waitFor(
      `task ${taskId} to match ${predicate.toString()}`,
      async () => {
        last = await this.getTask(taskId);
        return predicate(last) ? last : undefined;
      },
      { ...options, detail: () => this.describeForTimeout(last) },
    );
  }

  waitForState(taskId: string, state: TaskState, options: WaitOptions = {}): Promise<TaskRecord> {
    return this.waitForTask(taskId, (task) => task.state === state, options);
  }

  /** Polls the connected workers until `predicate` holds. */
  waitForWorkers(predicate: (workers: WorkerInfo[]) => boolean, options: WaitOptions = {}): Promise<WorkerInfo[]> {
    let last: WorkerInfo[] = [];
    return waitFor(
      `workers to match ${predicate.toString()}`,
      async () => {
        last = await this.workers();
        return predicate(last) ? last : undefined;
      },
      { ...options, detail: () => `last workers: ${JSON.stringify(last)}\n${this.logTail()}` },
    );
  }

  /** Stops the server (SIGTERM, then SIGKILL after a deadline) and removes its temp state. */
  async stop(): Promise<void> {
    await this.terminate("SIGTERM");
    if (this.tempDir !== null) rmSync(this.tempDir, { recursive: true, force: true });
  }

  /** Stops the server and starts it again on the same port with the same state file. */
  async restart(options: RestartOptions = {}): Promise<void> {
    await this.terminate(options.signal ?? "SIGTERM");
    await this.spawn(this.currentPort);
  }

  /**
   * An outage: stops the server process (SIGTERM) but keeps its port and state file, until
   * resume(). Connected workers lose their socket and cannot reconnect meanwhile.
   */
  async pause(): Promise<void> {
    await this.terminate("SIGTERM");
  }

  /** Ends an outage begun by pause(): the server starts again on the same port with the same state. */
  async resume(): Promise<void> {
    if (this.child === null) await this.spawn(this.currentPort);
  }

  private async spawn(port: number): Promise<void> {
    const child = Bun.spawn(
      [DEV_SERVER_SCRIPT, "--host", this.host, "--port", String(port), "--api-key", this.apiKey, "--state", this.stateFile],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    this.child = child;
    running.add(child);
    const stderrDone = this.collectStderr(child.stderr);
    const reader = child.stdout.getReader();
    try {
      const line = await withTimeout(
        readFirstLine(reader, child.exited),
        STARTUP_TIMEOUT_MS,
        `no "listening on" line within ${STARTUP_TIMEOUT_MS} ms`,
      );
      const prefix = `listening on http://${this.host}:`;
      const listening = line.startsWith(prefix) && /^\d+$/.test(line.slice(prefix.length)) ? line.slice(prefix.length) : undefined;
      if (listening === undefined) throw new Error(`unexpected first line: ${line}`);
      this.currentPort = Number(listening);
    } catch (error) {
      child.kill("SIGKILL");
      running.delete(child);
      this.child = null;
      // Let the collector read what the server said before it died.
      await withTimeout(stderrDone, 1_000, "stderr still open").catch(() => {});
      throw new Error(`oz-dev-server did not start: ${(error as Error).message}\n${this.logTail()}`);
    }
    // Keep reading so the pipe never fills, although the server writes nothing more.
    void drain(reader);
  }

  private async terminate(signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    child.kill(signal);
    const exited = await withTimeout(child.exited, STOP_TIMEOUT_MS, "still running").then(
      () => true,
      () => false,
    );
    if (!exited) {
      child.kill("SIGKILL");
      await child.exited;
    }
    running.delete(child);
  }

  private async call<T>(method: string, path: string, expected: number, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body);
    const text = await response.text();
    if (response.status !== expected) throw new DispatchApiError(response.status, text, `${method} ${path}`);
    return JSON.parse(text) as T;
  }

  private async collectStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      this.stderr += decoder.decode(chunk, { stream: true });
      if (this.stderr.length > MAX_LOG_CHARS) this.stderr = this.stderr.slice(-MAX_LOG_CHARS / 2);
    }
  }

  private logTail(lines = 20): string {
    return `server log (last ${lines} lines):\n${this.stderr.trimEnd().split("\n").slice(-lines).join("\n")}`;
  }

  private describeForTimeout(task: TaskRecord | undefined): string {
    if (task === undefined) return this.logTail();
    const events = task.events.map((event) => `${event.direction} ${event.type}`).join(", ");
    return `last state: ${task.state} (worker ${task.worker_id}); events: [${events}]\n${this.logTail()}`;
  }
}

/** Resolves like `promise`, or rejects after `ms`; the timer never outlives the race. */
async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function readFirstLine(reader: ReadableStreamDefaultReader<Uint8Array>, exited: Promise<number>): Promise<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const newline = buffered.indexOf("\n");
    if (newline !== -1) return buffered.slice(0, newline);
    const { done, value } = await reader.read();
    // The script execs the server, so stdout closes exactly when it exits.
    if (done) throw new Error(`exited with code ${await exited} before printing its address`);
    buffered += decoder.decode(value, { stream: true });
  }
}

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
  while (!(await reader.read()).done) {
    // discard
  }
}

// ---------------------------------------------------------------------------
// A scripted stand-in for a worker.

/** A frame the server sent to the worker. */
export interface ServerFrame {
  type: string;
  data: JsonObject;
}

export interface TestWorkerOptions {
  /** Called for every frame from the server, e.g. to claim and complete automatically. */
  onFrame?: (frame: ServerFrame, worker: TestWorker) => void;
  /** Overrides the bearer key (to test authentication). */
  apiKey?: string;
  timeoutMs?: number;
}

// tsconfig loads lib.dom, whose WebSocket type hides Bun's client extensions
// (upgrade headers, ping/pong); this gives the same constructor Bun's types.
const BunWebSocket = WebSocket as unknown as new (url: string, options: Bun.WebSocketOptions) => Bun.WebSocket;

/** Connects a fake worker; resolves once the socket is open. */
export function connectTestWorker(
  server: Pick<DispatchServer, "wsUrl" | "apiKey">,
  workerId: string,
  options: TestWorkerOptions = {},
): Promise<TestWorker> {
  const url = `${server.wsUrl}?worker_id=${encodeURIComponent(workerId)}`;
  const socket = new BunWebSocket(url, { headers: { Authorization: `Bearer ${options.apiKey ?? server.apiKey}` } });
  const worker = new TestWorker(workerId, socket, options.onFrame);
  const timeoutMs = options.timeoutMs ?? CONNECT_TIMEOUT_MS;
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`worker ${workerId}: no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.addEventListener("open", () => {
      clearTimeout(timer);
      resolvePromise(worker);
    });
    socket.addEventListener("close", (event) => {
      clearTimeout(timer);
      reject(new Error(`worker ${workerId}: connection closed before opening (code ${event.code})`));
    });
  });
}

export class TestWorker {
  /** Every frame received, in order. */
  readonly received: ServerFrame[] = [];
  /** Frames that were not valid JSON envelopes (a server bug). */
  readonly garbage: string[] = [];
  /** Resolves with the close code and reason once the socket closes. */
  readonly closed: Promise<{ code: number; reason: string }>;
  private pongs = 0;

  /** Use connectTestWorker(), which resolves once the socket is open. */
  readonly workerId: string;
  private readonly socket: Bun.WebSocket;
  constructor(
    workerId: string,
    socket: Bun.WebSocket,
    onFrame: TestWorkerOptions["onFrame"],
  ) {
    this.workerId = workerId;
    this.socket = socket;
    socket.addEventListener("message", (event) => {
      const text = String(event.data);
      const frame = parseServerFrame(text);
      if (frame === undefined) {
        this.garbage.push(text);
        return;
      }
      this.received.push(frame);
      onFrame?.(frame, this);
    });
    socket.addEventListener("pong", () => {
      this.pongs += 1;
    });
    this.closed = new Promise((resolvePromise) => {
      socket.addEventListener("close", (event) => resolvePromise({ code: event.code, reason: event.reason }));
    });
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  send(type: string, data: JsonObject): void {
    this.socket.send(JSON.stringify({ type, data }));
  }

  /** Sends a frame as is, to test how the server treats malformed input. */
  sendRaw(payload: string | Uint8Array): void {
    this.socket.send(payload);
  }

  claim(taskId: string): void {
    this.send("task_claimed", { task_id: taskId, worker_id: this.workerId });
  }

  reject(taskId: string, reason = "at capacity"): void {
    this.send("task_rejected", { task_id: taskId, reason });
  }

  complete(taskId: string, message = "done"): void {
    this.send("task_completed", { task_id: taskId, message });
  }

  fail(taskId: string, failure: { message: string; failure_reason: string; exit_code?: number }): void {
    this.send("task_failed", { task_id: taskId, ...failure });
  }

  /** Sends a ping and resolves when the server's pong arrives. */
  async ping(options: WaitOptions = {}): Promise<void> {
    const before = this.pongs;
    this.socket.ping();
    await waitFor(`a pong for worker ${this.workerId}`, () => (this.pongs > before ? true : undefined), options);
  }

  /** Task IDs of the assignments received so far, in order. */
  assignedTaskIds(): string[] {
    return this.received.filter((frame) => frame.type === "task_assignment").map((frame) => String(frame.data.task_id));
  }

  /** Waits for the first received frame that matches. */
  waitForFrame(predicate: (frame: ServerFrame) => boolean, options: WaitOptions = {}): Promise<ServerFrame> {
    return waitFor(`a matching frame at worker ${this.workerId}`, () => this.received.find(predicate), {
      ...options,
      detail: () => this.describeReceived(),
    });
  }

  /** Waits for the `nth` (1-based) task_assignment of `taskId`. */
  waitForAssignment(taskId: string, nth = 1, options: WaitOptions = {}): Promise<ServerFrame> {
    return waitFor(
      `assignment #${nth} of task ${taskId} at worker ${this.workerId}`,
      () => this.received.filter((frame) => frame.type === "task_assignment" && frame.data.task_id === taskId)[nth - 1],
      { ...options, detail: () => this.describeReceived() },
    );
  }

  /** Closes the socket with a close handshake (a worker going away cleanly). */
  close(): void {
    this.socket.close(1000, "test worker done");
  }

  private describeReceived(): string {
    return `received: ${JSON.stringify(this.received.map((frame) => `${frame.type} ${String(frame.data.task_id)}`))}`;
  }
}

function parseServerFrame(text: string): ServerFrame | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return undefined;
    const { type, data } = value as { type?: unknown; data?: unknown };
    if (typeof type !== "string" || typeof data !== "object" || data === null) return undefined;
    return { type, data: data as JsonObject };
  } catch {
    return undefined;
  }
}
