// The local Oz-compatible dispatch server: the HTTP and WebSocket shell around
// the Dispatcher, plus the `scripts/oz-dev-server` command line.
// The contract it implements is docs/dispatch-server.md.

import { createHash, timingSafeEqual } from "node:crypto";
import { parseArgs } from "node:util";
import * as v from "valibot";
import { describeIssues } from "./validation.ts";
import { Dispatcher, type Connection, type Logger } from "./dispatcher.ts";
import { loadState, StateWriter } from "./state-file.ts";
import { timestamp, type CreateTaskBody } from "./types.ts";

export const WORKER_WS_PATH = "/api/v1/selfhosted/worker/ws";
export const DEFAULT_PORT = 8787;
export const DEFAULT_API_KEY = "dev-key";
/** The protocol's wait before a rejected task is offered again. */
const RETRY_DELAY_MS = 1000;
const DEFAULT_HOST = "127.0.0.1";

export interface ServerOptions {
  /** The address to listen on: loopback by default; never all interfaces. */
  host?: string;
  port: number;
  apiKey: string;
  /** Where task records persist between runs; null keeps them in memory only. */
  stateFile: string | null;
  log: Logger;
}

export interface RunningServer {
  readonly port: number;
  /** Saves the state and closes every socket; tasks stay as they are for the next run. */
  stop(): void;
}

interface SocketData {
  workerId: string;
  /** Set when the socket opens; the dispatcher's handle for this worker. */
  connection: Connection | null;
}

type Handler = (request: Request, param: string) => Response | Promise<Response>;

interface Route {
  pattern: RegExp;
  handlers: Partial<Record<"GET" | "POST", Handler>>;
}

const CreateTaskSchema = v.looseObject({
  worker_id: v.optional(v.pipe(v.string(), v.nonEmpty("worker_id must be a non-empty string"))),
  task_id: v.optional(v.pipe(v.string(), v.nonEmpty("task_id must be a non-empty string"))),
  execution_id: v.optional(v.string("execution_id must be a string")),
  task: v.optional(v.looseObject({}, "task must be an object")),
});

export function startServer(options: ServerOptions): RunningServer {
  const { log } = options;
  // The writer reads the dispatcher's records and the dispatcher tells the
  // writer about changes, so one of the two is bound late.
  let writer: StateWriter | null = null;
  const dispatcher = new Dispatcher(
    { log, onChange: () => writer?.markDirty(), retryDelayMs: RETRY_DELAY_MS },
    options.stateFile === null ? [] : loadState(options.stateFile),
  );
  if (options.stateFile !== null) {
    const path = options.stateFile;
    writer = new StateWriter(
      path,
      () => dispatcher.records(),
      (error) => log.error(`could not write state file ${path}: ${error.message}`),
    );
  }
  const isAuthorized = bearerCheck(options.apiKey);

  const routes: Route[] = [
    {
      pattern: /^\/v1\/tasks$/,
      handlers: {
        GET: () => Response.json(dispatcher.list()),
        POST: async (request) => {
          const body = await readTaskBody(request);
          if (body instanceof Response) return body;
          const created = dispatcher.create(body);
          return created.ok ? Response.json(created.record, { status: 201 }) : errorResponse(409, created.error);
        },
      },
    },
    {
      pattern: /^\/v1\/tasks\/([^/]+)$/,
      handlers: {
        GET: (_request, taskId) => {
          const record = dispatcher.get(taskId);
          return record === undefined ? errorResponse(404, `no task ${taskId}`) : Response.json(record);
        },
      },
    },
    {
      pattern: /^\/v1\/tasks\/([^/]+)\/cancel$/,
      handlers: {
        POST: (_request, taskId) => {
          const result = dispatcher.cancel(taskId);
          switch (result.status) {
            case "not_found":
              return errorResponse(404, `no task ${taskId}`);
            case "finished":
              return errorResponse(409, `task ${taskId} already finished (${result.record.state})`);
            case "accepted":
              return Response.json(result.record, { status: 202 });
          }
        },
      },
    },
    {
      pattern: /^\/v1\/workers$/,
      handlers: { GET: () => Response.json(dispatcher.workers()) },
    },
    {
      pattern: /^\/v1\/workers\/([^/]+)\/disconnect$/,
      handlers: {
        POST: (_request, workerId) =>
          dispatcher.disconnect(workerId)
            ? Response.json({ worker_id: workerId, disconnected: true })
            : errorResponse(404, `worker ${workerId} is not connected`),
      },
    },
  ];

  const server = Bun.serve<SocketData>({
    hostname: options.host ?? DEFAULT_HOST,
    port: options.port,
    // Production mode: errors go through `error` below, not Bun's HTML page.
    development: false,
    // Production mode would otherwise let a second server bind the same port
    // and silently share the connections; a taken port must be an error.
    reusePort: false,
    fetch(request, server) {
      if (!isAuthorized(request)) {
        return errorResponse(401, "missing or wrong API key (Authorization: Bearer <key>)", {
          "WWW-Authenticate": "Bearer",
        });
      }
      const url = new URL(request.url);
      if (url.pathname === WORKER_WS_PATH) {
        const workerId = url.searchParams.get("worker_id");
        if (!workerId) return errorResponse(400, "missing worker_id query parameter");
        if (server.upgrade(request, { data: { workerId, connection: null } })) return undefined;
        return errorResponse(400, "expected a WebSocket upgrade request");
      }
      return route(routes, request, url.pathname);
    },
    error(error) {
      log.error(`request failed: ${error.stack ?? error.message}`);
      return errorResponse(500, `internal error: ${error.message}`);
    },
    websocket: {
      // Bun answers the worker's pings with pongs on its own; `idleTimeout`
      // (default 120 s) is well above the worker's 30 s ping interval.
      open(socket) {
        socket.data.connection = dispatcher.connect(socket.data.workerId, socket);
      },
      message(socket, frame) {
        if (socket.data.connection !== null) dispatcher.handleFrame(socket.data.connection, frame);
      },
      close(socket, code, reason) {
        if (socket.data.connection !== null) dispatcher.connectionClosed(socket.data.connection, code, reason);
      },
    },
  });

  const port = server.port;
  if (port === undefined) throw new Error("the server did not report its port");
  return {
    port,
    stop() {
      dispatcher.shutdown();
      writer?.flush();
      void server.stop(true);
    },
  };
}

async function readTaskBody(request: Request): Promise<CreateTaskBody | Response> {
  const text = await request.text();
  // An empty body means "all defaults", so `curl -X POST .../v1/tasks` works.
  if (text.trim() === "") return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return errorResponse(400, `request body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return errorResponse(400, "request body must be a JSON object (a partial task_assignment data)");
  }
  const parsed = v.safeParse(CreateTaskSchema, json);
  if (!parsed.success) return errorResponse(400, `invalid task: ${describeIssues(parsed.issues)}`);
  return parsed.output;
}

async function route(routes: readonly Route[], request: Request, pathname: string): Promise<Response> {
  for (const { pattern, handlers } of routes) {
    const match = pattern.exec(pathname);
    if (match === null) continue;
    const handler = request.method === "GET" || request.method === "POST" ? handlers[request.method] : undefined;
    if (handler === undefined) {
      return errorResponse(405, `${request.method} is not allowed on ${pathname}`, {
        Allow: Object.keys(handlers).join(", "),
      });
    }
    let param = "";
    try {
      param = decodeURIComponent(match[1] ?? "");
    } catch {
      return errorResponse(400, `malformed percent-encoding in ${pathname}`);
    }
    return handler(request, param);
  }
  return errorResponse(404, `no route for ${request.method} ${pathname}`);
}

function errorResponse(status: number, error: string, headers?: Record<string, string>): Response {
  return Response.json({ error }, headers === undefined ? { status } : { status, headers });
}

/** Compares in constant time, so response timing does not leak the key. */
function bearerCheck(apiKey: string): (request: Request) => boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  const expected = digest(apiKey);
  return (request) => {
    const match = /^Bearer +(\S.*)$/i.exec(request.headers.get("authorization") ?? "");
    return match?.[1] !== undefined && timingSafeEqual(digest(match[1]), expected);
  };
}

const USAGE = `Usage: oz-dev-server [--host 127.0.0.1] [--port ${DEFAULT_PORT}] [--api-key KEY] [--state FILE]

A local Oz-compatible dispatch server for running oz-worker without a Warp account.

Options:
  --host ADDR      address to listen on (default ${DEFAULT_HOST}); e.g. the sandbox's
                   \`scripts/sandbox host-address\` for workers in its real node's pods.
                   Never all interfaces (0.0.0.0, ::)
  --port PORT      port (default ${DEFAULT_PORT}; 0 picks a free one)
  --api-key KEY    bearer key for workers and the HTTP API
                   (default: env OZ_DEV_API_KEY, else "${DEFAULT_API_KEY}")
  --state FILE     keep task records in FILE across restarts
  -h, --help       show this help

The first line on stdout is "listening on http://<host>:<port>"; logs go to stderr.
Workers connect to ws://<host>:<port>${WORKER_WS_PATH}. See docs/dispatch-server.md.
`;

interface CliOptions {
  host: string;
  port: number;
  apiKey: string;
  stateFile: string | null;
}

/** Parses the command line, or says what to print and which code to exit with. */
function parseCli(argv: string[]): CliOptions | { exitCode: number; text: string } {
  let values: { host?: string; port?: string; "api-key"?: string; state?: string; help?: boolean };
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        "api-key": { type: "string" },
        state: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    return { exitCode: 2, text: `oz-dev-server: ${(error as Error).message}\n\n${USAGE}` };
  }
  if (values.help === true) return { exitCode: 0, text: USAGE };
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!/^\d+$/.test(values.port ?? "0") || !Number.isInteger(port) || port > 65535) {
    return { exitCode: 2, text: `oz-dev-server: --port must be an integer from 0 to 65535, got ${values.port}\n` };
  }
  const apiKey = values["api-key"] ?? process.env.OZ_DEV_API_KEY ?? DEFAULT_API_KEY;
  if (apiKey === "") return { exitCode: 2, text: "oz-dev-server: the API key must not be empty\n" };
  if (values.state === "") return { exitCode: 2, text: "oz-dev-server: --state needs a file path\n" };
  const host = values.host ?? DEFAULT_HOST;
  if (host === "" || host === "0.0.0.0" || host === "::" || host === "[::]") {
    return { exitCode: 2, text: `oz-dev-server: --host must name one address (loopback or a sandbox-made interface), not ${JSON.stringify(host)}\n` };
  }
  return { host, port, apiKey, stateFile: values.state ?? null };
}

/** Logs to stderr: stdout carries only the "listening on" line that callers parse. */
const stderrLog: Logger = {
  info: (message) => process.stderr.write(`${timestamp()} info  ${message}\n`),
  warn: (message) => process.stderr.write(`${timestamp()} warn  ${message}\n`),
  error: (message) => process.stderr.write(`${timestamp()} error ${message}\n`),
};

function main(argv: string[]): void {
  const cli = parseCli(argv);
  if ("exitCode" in cli) {
    (cli.exitCode === 0 ? process.stdout : process.stderr).write(cli.text);
    process.exit(cli.exitCode);
  }
  let server: RunningServer;
  try {
    server = startServer({ ...cli, log: stderrLog });
  } catch (error) {
    process.stderr.write(`oz-dev-server: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening on http://${cli.host}:${server.port}\n`);
  stderrLog.info(`workers connect to ws://${cli.host}:${server.port}${WORKER_WS_PATH}`);
  if (cli.stateFile !== null) stderrLog.info(`task records persist in ${cli.stateFile}`);
  const shutdown = (signal: string) => {
    stderrLog.info(`${signal}: saving state and stopping`);
    server.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

if (import.meta.main) main(process.argv.slice(2));
