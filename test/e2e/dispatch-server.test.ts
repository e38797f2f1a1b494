// The local dispatch server (scripts/oz-dev-server) against its contract:
// the real script runs as a child process and is driven over HTTP and a
// WebSocket stand-in for the worker.

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connectTestWorker,
  DEV_SERVER_SCRIPT,
  startDispatchServer,
  waitFor,
  type DispatchServer,
  type TestWorker,
  type TestWorkerOptions,
} from "../support/dispatch.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const WS_PATH = "/api/v1/selfhosted/worker/ws";

let server: DispatchServer;
let workers: TestWorker[] = [];

beforeEach(async () => {
  server = await startDispatchServer();
});

afterEach(async () => {
  for (const worker of workers) {
    worker.close();
    // Whatever the test did, the server only ever sent well-formed envelopes.
    expect(worker.garbage).toEqual([]);
  }
  workers = [];
  await server.stop();
});

async function connect(workerId: string, options?: TestWorkerOptions): Promise<TestWorker> {
  const worker = await connectTestWorker(server, workerId, options);
  workers.push(worker);
  return worker;
}

function eventsOf(task: { events: { direction: string; type: string }[] }): string[] {
  return task.events.map((event) => `${event.direction} ${event.type}`);
}

/** A WebSocket upgrade request made with fetch, to see the HTTP status of a refused upgrade. */
function upgrade(query: string, authorization?: string): Promise<Response> {
  const headers: Record<string, string> = {
    Connection: "Upgrade",
    Upgrade: "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": btoa("0123456789abcdef"),
  };
  if (authorization !== undefined) headers.Authorization = authorization;
  return fetch(`${server.url}${WS_PATH}${query}`, { headers });
}

describe("authentication and routing", () => {
  const endpoints = [
    ["GET", "/v1/tasks"],
    ["POST", "/v1/tasks"],
    ["GET", "/v1/tasks/some-id"],
    ["POST", "/v1/tasks/some-id/cancel"],
    ["GET", "/v1/workers"],
    ["POST", "/v1/workers/w1/disconnect"],
  ] as const;

  test("every HTTP endpoint answers 401 without the right bearer key", async () => {
    for (const [method, path] of endpoints) {
      const attempts: Record<string, string>[] = [
        {},
        { Authorization: "Bearer wrong" },
        // The key alone, without the Bearer scheme.
        { Authorization: server.apiKey },
      ];
      for (const headers of attempts) {
        const response = await fetch(`${server.url}${path}`, { method, headers });
        expect({ method, path, headers, status: response.status }).toEqual({ method, path, headers, status: 401 });
      }
    }
  });

  test("worker upgrade: 401 for a missing or wrong key, then 400 without worker_id", async () => {
    expect((await upgrade("?worker_id=w1")).status).toBe(401);
    expect((await upgrade("?worker_id=w1", "Bearer wrong")).status).toBe(401);
    const missingId = await upgrade("", `Bearer ${server.apiKey}`);
    expect(missingId.status).toBe(400);
    expect(await missingId.json()).toEqual({ error: "missing worker_id query parameter" });
    expect((await upgrade("?worker_id=", `Bearer ${server.apiKey}`)).status).toBe(400);
    await expect(connectTestWorker(server, "w1", { apiKey: "wrong" })).rejects.toThrow("closed before opening");
    expect(await server.workers()).toEqual([]);
  });

  test("unknown routes answer 404 and wrong methods 405", async () => {
    expect((await server.request("GET", "/v1/nothing")).status).toBe(404);
    const wrongMethod = await server.request("DELETE", "/v1/tasks");
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("GET, POST");
  });
});

describe("creating tasks", () => {
  test("an empty body gets UUIDs and the task fields filled in", async () => {
    const response = await server.request("POST", "/v1/tasks", {});
    expect(response.status).toBe(201);
    const task = await response.json();
    expect(task.task_id).toMatch(UUID);
    expect(task.execution_id).toMatch(UUID);
    expect(task.execution_id).not.toBe(task.task_id);
    expect(task).toMatchObject({
      state: "queued",
      worker_id: null,
      message: null,
      failure_reason: null,
      exit_code: null,
      events: [],
    });
    expect(task.created_at).toMatch(ISO_TIME);
    expect(task.updated_at).toMatch(ISO_TIME);
    expect(task.assignment).toEqual({
      task_id: task.task_id,
      execution_id: task.execution_id,
      task: {
        id: task.task_id,
        title: expect.any(String),
        created_at: task.created_at,
        updated_at: task.created_at,
      },
    });
    expect(await server.getTask(task.task_id)).toEqual(task);
  });

  test("what the caller gives is kept as is", async () => {
    const body = {
      task_id: "run-1",
      execution_id: "",
      docker_image: "alpine:3.20",
      env_vars: { TOKEN: "x" },
      task: { title: "Fix the bug", task_definition: { prompt: "fix it" }, owner: { Type: "TEAM", Id: 7 } },
    };
    const task = await server.createTask(body);
    expect(task.task_id).toBe("run-1");
    expect(task.execution_id).toBe("");
    expect(task.assignment).toEqual({
      ...body,
      task: { ...body.task, id: "run-1", created_at: task.created_at, updated_at: task.created_at },
    });
  });

  test("bad bodies answer 400 with a reason, a taken task_id 409", async () => {
    const badJson = await fetch(`${server.url}/v1/tasks`, {
      method: "POST",
      headers: { Authorization: `Bearer ${server.apiKey}` },
      body: "{not json",
    });
    expect(badJson.status).toBe(400);
    expect((await badJson.json()).error).toStartWith("request body is not valid JSON");

    const notObject = await server.request("POST", "/v1/tasks", [1, 2]);
    expect(notObject.status).toBe(400);
    expect((await notObject.json()).error).toContain("must be a JSON object");

    const badField = await server.request("POST", "/v1/tasks", { task: 5, worker_id: "" });
    expect(badField.status).toBe(400);
    expect((await badField.json()).error).toBe(
      "invalid task: worker_id: worker_id must be a non-empty string; task: task must be an object",
    );

    await server.createTask({ task_id: "dup" });
    const duplicate = await server.request("POST", "/v1/tasks", { task_id: "dup" });
    expect(duplicate.status).toBe(409);
    expect(await server.listTasks()).toHaveLength(1);
  });

  test("the list is newest first and an unknown task is 404", async () => {
    const first = await server.createTask();
    const second = await server.createTask();
    const third = await server.createTask();
    expect((await server.listTasks()).map((task) => task.task_id)).toEqual([
      third.task_id,
      second.task_id,
      first.task_id,
    ]);
    expect((await server.request("GET", "/v1/tasks/nope")).status).toBe(404);
  });
});

describe("dispatch", () => {
  test("a connected worker receives the assignment, and it is recorded", async () => {
    const worker = await connect("w1");
    const created = await server.createTask({ docker_image: "alpine" });
    const frame = await worker.waitForAssignment(created.task_id);
    expect(frame.data).toEqual(created.assignment);

    const task = await server.waitForState(created.task_id, "assigned");
    expect(task.worker_id).toBe("w1");
    expect(task.events).toEqual([
      { at: expect.stringMatching(ISO_TIME), direction: "to_worker", type: "task_assignment", data: created.assignment },
    ]);
    const [info] = await server.workers();
    expect(info).toEqual({ worker_id: "w1", connected_at: expect.stringMatching(ISO_TIME), tasks: [created.task_id] });
  });

  test("tasks queued while no worker is connected go out when one connects", async () => {
    const a = await server.createTask();
    const b = await server.createTask();
    const worker = await connect("w1");
    await worker.waitForAssignment(a.task_id);
    await worker.waitForAssignment(b.task_id);
    expect(worker.assignedTaskIds()).toEqual([a.task_id, b.task_id]);
  });

  test("tasks are spread round-robin over the connected workers", async () => {
    const w1 = await connect("w1");
    const w2 = await connect("w2");
    const tasks = [];
    for (let i = 0; i < 6; i++) tasks.push(await server.createTask());
    for (const task of tasks) await server.waitForState(task.task_id, "assigned");
    expect(w1.assignedTaskIds()).toHaveLength(3);
    expect(w2.assignedTaskIds()).toHaveLength(3);
    expect(new Set([...w1.assignedTaskIds(), ...w2.assignedTaskIds()]).size).toBe(6);
  });

  test("a task naming a worker waits for that worker and goes only to it", async () => {
    const w1 = await connect("w1");
    const reserved = await server.createTask({ worker_id: "w2" });
    expect(reserved.worker_id).toBe("w2");
    // A later untargeted task reaching w1 shows the queue was worked through.
    const other = await server.createTask();
    await w1.waitForAssignment(other.task_id);
    expect((await server.getTask(reserved.task_id)).state).toBe("queued");

    const w2 = await connect("w2");
    await w2.waitForAssignment(reserved.task_id);
    const task = await server.waitForState(reserved.task_id, "assigned");
    expect(task.worker_id).toBe("w2");
    expect(w1.assignedTaskIds()).toEqual([other.task_id]);
  });

  test("a rejected task goes back to the queue and is offered again after about 1 s", async () => {
    const worker = await connect("w1");
    const created = await server.createTask();
    await worker.waitForAssignment(created.task_id);
    const rejectedAt = performance.now();
    worker.reject(created.task_id, "at capacity");
    await server.waitForTask(created.task_id, (task) => task.events.length === 2);
    expect((await server.getTask(created.task_id)).state).toBe("queued");

    await worker.waitForAssignment(created.task_id, 2, { timeoutMs: 5_000 });
    const elapsed = performance.now() - rejectedAt;
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3_000);
    const task = await server.waitForState(created.task_id, "assigned");
    expect(eventsOf(task)).toEqual([
      "to_worker task_assignment",
      "from_worker task_rejected",
      "to_worker task_assignment",
    ]);
    expect(task.events[1]?.data).toEqual({ task_id: created.task_id, reason: "at capacity" });
  });
});

describe("task lifecycle", () => {
  test("claim then complete: succeeded with the message, events in order", async () => {
    const worker = await connect("w1");
    const { task_id } = await server.createTask();
    await worker.waitForAssignment(task_id);
    worker.claim(task_id);
    const claimed = await server.waitForState(task_id, "claimed");
    expect(claimed.worker_id).toBe("w1");
    worker.complete(task_id, "all done");
    const task = await server.waitForState(task_id, "succeeded");
    expect(task).toMatchObject({ worker_id: "w1", message: "all done", failure_reason: null, exit_code: null });
    expect(eventsOf(task)).toEqual([
      "to_worker task_assignment",
      "from_worker task_claimed",
      "from_worker task_completed",
    ]);
    expect(task.events[1]?.data).toEqual({ task_id, worker_id: "w1" });
    expect(await server.workers()).toEqual([expect.objectContaining({ worker_id: "w1", tasks: [] })]);
  });

  test("task_failed: failed with failure_reason, exit_code and message", async () => {
    const worker = await connect("w1");
    const { task_id } = await server.createTask();
    await worker.waitForAssignment(task_id);
    worker.claim(task_id);
    await server.waitForState(task_id, "claimed");
    worker.fail(task_id, { message: "container agent exited 137", failure_reason: "container_oom", exit_code: 137 });
    const task = await server.waitForState(task_id, "failed");
    expect(task).toMatchObject({
      message: "container agent exited 137",
      failure_reason: "container_oom",
      exit_code: 137,
    });
    expect(eventsOf(task).at(-1)).toBe("from_worker task_failed");
  });

  test("task_completed with task_state CANCELLED: cancelled", async () => {
    const worker = await connect("w1");
    const { task_id } = await server.createTask();
    await worker.waitForAssignment(task_id);
    worker.claim(task_id);
    worker.send("task_completed", { task_id, message: "stopped", task_state: "CANCELLED" });
    const task = await server.waitForState(task_id, "cancelled");
    expect(task.message).toBe("stopped");
  });

  test("a terminal message for a finished task is recorded but changes nothing", async () => {
    const worker = await connect("w1");
    const { task_id } = await server.createTask();
    await worker.waitForAssignment(task_id);
    worker.claim(task_id);
    worker.complete(task_id, "first");
    await server.waitForState(task_id, "succeeded");
    worker.complete(task_id, "second");
    worker.fail(task_id, { message: "late", failure_reason: "unknown" });
    const task = await server.waitForTask(task_id, (record) => record.events.length === 5);
    expect(task).toMatchObject({ state: "succeeded", message: "first", failure_reason: null });
    expect(eventsOf(task).slice(2)).toEqual([
      "from_worker task_completed",
      "from_worker task_completed",
      "from_worker task_failed",
    ]);
  });

  test("cancel: task_cancellation to the holding worker, 202; 409 once finished; 404 unknown", async () => {
    const worker = await connect("w1");
    const { task_id } = await server.createTask();
    await worker.waitForAssignment(task_id);
    worker.claim(task_id);
    await server.waitForState(task_id, "claimed");

    const response = await server.request("POST", `/v1/tasks/${task_id}/cancel`);
    expect(response.status).toBe(202);
    const accepted = await response.json();
    expect(accepted.state).toBe("claimed");
    expect(accepted.cancel_requested_at).toMatch(ISO_TIME);
    const cancellation = await worker.waitForFrame((frame) => frame.type === "task_cancellation");
    expect(cancellation.data).toEqual({ task_id });

    worker.send("task_completed", { task_id, message: "cancelled by request", task_state: "CANCELLED" });
    const task = await server.waitForState(task_id, "cancelled");
    expect(eventsOf(task)).toEqual([
      "to_worker task_assignment",
      "from_worker task_claimed",
      "to_worker task_cancellation",
      "from_worker task_completed",
    ]);
    expect((await server.request("POST", `/v1/tasks/${task_id}/cancel`)).status).toBe(409);
    expect((await server.request("POST", "/v1/tasks/nope/cancel")).status).toBe(404);
  });

  test("cancelling a queued task ends it at once; no worker ever sees it", async () => {
    const { task_id } = await server.createTask();
    const cancelled = await server.cancel(task_id);
    expect(cancelled).toMatchObject({ state: "cancelled", events: [] });

    const worker = await connect("w1");
    const later = await server.createTask();
    await worker.waitForAssignment(later.task_id);
    expect(worker.assignedTaskIds()).toEqual([later.task_id]);
  });
});

describe("connections", () => {
  test("disconnect drops the socket; unclaimed tasks are re-queued, claimed ones stay with the worker", async () => {
    const worker = await connect("w1");
    const claimed = await server.createTask();
    const unclaimed = await server.createTask();
    await worker.waitForAssignment(unclaimed.task_id);
    worker.claim(claimed.task_id);
    await server.waitForState(claimed.task_id, "claimed");

    await server.disconnect("w1");
    await worker.closed;
    expect(await server.workers()).toEqual([]);
    expect(await server.getTask(unclaimed.task_id)).toMatchObject({ state: "queued", worker_id: null });
    expect(await server.getTask(claimed.task_id)).toMatchObject({ state: "claimed", worker_id: "w1" });
    expect((await server.request("POST", "/v1/workers/w1/disconnect")).status).toBe(404);

    // The worker comes back: it gets the re-queued task and reports the one it kept.
    const back = await connect("w1");
    await back.waitForAssignment(unclaimed.task_id);
    expect(back.assignedTaskIds()).toEqual([unclaimed.task_id]);
    back.complete(claimed.task_id, "finished while away");
    const task = await server.waitForState(claimed.task_id, "succeeded");
    expect(task.message).toBe("finished while away");
  });

  test("a worker closing its socket hands its unclaimed tasks to the others", async () => {
    const w1 = await connect("w1");
    const { task_id } = await server.createTask();
    await w1.waitForAssignment(task_id);
    const w2 = await connect("w2");
    w1.close();
    await w2.waitForAssignment(task_id);
    expect(await server.waitForState(task_id, "assigned")).toMatchObject({ worker_id: "w2" });
  });

  test("a cancellation for a worker that is away reaches it when it reconnects", async () => {
    const worker = await connect("w1");
    const claimed = await server.createTask();
    const unclaimed = await server.createTask({ worker_id: "w1" });
    await worker.waitForAssignment(unclaimed.task_id);
    worker.claim(claimed.task_id);
    await server.waitForState(claimed.task_id, "claimed");

    await server.disconnect("w1");
    await worker.closed;
    // The re-queued task is cancelled outright; the claimed one waits for its worker.
    expect(await server.cancel(unclaimed.task_id)).toMatchObject({ state: "cancelled" });
    expect(await server.cancel(claimed.task_id)).toMatchObject({ state: "claimed" });

    const back = await connect("w1");
    const cancellation = await back.waitForFrame((frame) => frame.type === "task_cancellation");
    expect(cancellation.data).toEqual({ task_id: claimed.task_id });
    expect(back.assignedTaskIds()).toEqual([]);
  });

  test("a claim from a worker that lost the task does not take it back", async () => {
    const w1 = await connect("w1");
    const { task_id } = await server.createTask();
    await w1.waitForAssignment(task_id);
    await server.disconnect("w1");
    const w2 = await connect("w2");
    await w2.waitForAssignment(task_id);

    const stale = await connect("w1");
    stale.claim(task_id);
    const task = await server.waitForTask(task_id, (record) => record.events.length === 3);
    expect(task).toMatchObject({ state: "assigned", worker_id: "w2" });
    expect(server.logs()).toContain(`task_claimed for task ${task_id} while assigned by w2`);
  });

  test("a second connection with the same worker_id replaces the first", async () => {
    const first = await connect("w1");
    const second = await connect("w1");
    expect((await first.closed).code).toBe(4000);
    expect(second.isOpen).toBe(true);
    await server.waitForWorkers((list) => list.length === 1 && list[0]?.worker_id === "w1");
  });

  test("the server answers pings", async () => {
    const worker = await connect("w1");
    await worker.ping();
    await worker.ping();
  });

  test("malformed frames are logged and ignored; the connection and server carry on", async () => {
    const worker = await connect("w1");
    const { task_id } = await server.createTask();
    await worker.waitForAssignment(task_id);
    for (const frame of [
      "not json",
      "[1, 2]",
      '{"type": "task_claimed"}',
      '{"type": "task_claimed", "data": {"task_id": 5}}',
      `{"type": "task_failed", "data": {"task_id": "${task_id}", "exit_code": "137"}}`,
      '{"type": "task_exploded", "data": {}}',
      '{"type": "task_completed", "data": {"task_id": "no-such-task"}}',
    ]) {
      worker.sendRaw(frame);
    }
    worker.sendRaw(new Uint8Array([1, 2, 3]));
    worker.claim(task_id);
    const task = await server.waitForState(task_id, "claimed");
    expect(eventsOf(task)).toEqual(["to_worker task_assignment", "from_worker task_claimed"]);
    expect(worker.isOpen).toBe(true);
    const logs = server.logs();
    expect(logs).toContain("ignoring malformed frame: not JSON");
    expect(logs).toContain("ignoring malformed frame: bad task_failed data: exit_code: Invalid type");
    expect(logs).toContain("ignoring malformed frame: binary frame");
    expect(logs).toContain('ignoring message of unknown type "task_exploded"');
    expect(logs).toContain("ignoring task_completed for unknown task no-such-task");
  });

  test("500 tasks pass through two workers that claim and complete at once", async () => {
    const autoComplete: TestWorkerOptions = {
      onFrame: (frame, worker) => {
        if (frame.type !== "task_assignment") return;
        const taskId = String(frame.data.task_id);
        worker.claim(taskId);
        worker.complete(taskId);
      },
    };
    const w1 = await connect("w1", autoComplete);
    const w2 = await connect("w2", autoComplete);
    const started = performance.now();
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 50 }, () => server.createTask()));
    }
    await waitFor(
      "all 500 tasks to succeed",
      async () => {
        const tasks = await server.listTasks();
        return tasks.every((task) => task.state === "succeeded") ? tasks : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(await server.listTasks()).toHaveLength(500);
    expect(w1.assignedTaskIds().length + w2.assignedTaskIds().length).toBe(500);
    expect(w1.assignedTaskIds()).toHaveLength(250);
    console.log(`500 tasks created and completed in ${Math.round(performance.now() - started)} ms`);
  });
});

describe("--state", () => {
  test("records survive a restart and the worker's later reports still count", async () => {
    const worker = await connect("w1");
    const claimed = await server.createTask();
    const assigned = await server.createTask();
    const succeeded = await server.createTask();
    const reserved = await server.createTask({ worker_id: "w-later" });
    await worker.waitForAssignment(succeeded.task_id);
    worker.claim(claimed.task_id);
    worker.claim(succeeded.task_id);
    worker.complete(succeeded.task_id, "done before the restart");
    await server.waitForState(claimed.task_id, "claimed");
    await server.waitForState(succeeded.task_id, "succeeded");

    await server.restart();
    await worker.closed;

    expect(await server.getTask(claimed.task_id)).toMatchObject({ state: "claimed", worker_id: "w1" });
    expect(await server.getTask(assigned.task_id)).toMatchObject({ state: "assigned", worker_id: "w1" });
    expect(await server.getTask(succeeded.task_id)).toMatchObject({
      state: "succeeded",
      message: "done before the restart",
    });
    expect(await server.getTask(reserved.task_id)).toMatchObject({ state: "queued", worker_id: "w-later" });
    expect((await server.listTasks()).map((task) => task.task_id)).toEqual([
      reserved.task_id,
      succeeded.task_id,
      assigned.task_id,
      claimed.task_id,
    ]);

    const back = await connect("w1");
    back.claim(assigned.task_id);
    back.complete(claimed.task_id, "done after the restart");
    expect((await server.waitForState(claimed.task_id, "succeeded")).message).toBe("done after the restart");
    expect((await server.waitForState(assigned.task_id, "claimed")).worker_id).toBe("w1");

    const later = await connect("w-later");
    await later.waitForAssignment(reserved.task_id);
  });

  test("after a crash (SIGKILL) the last saved state is loaded", async () => {
    const { task_id } = await server.createTask({ task: { title: "survives a crash" } });
    // The server saves shortly after a change; wait for it rather than guess.
    await waitFor("the state file to hold the task", () => {
      try {
        return readFileSync(server.stateFile, "utf8").includes(task_id) ? true : undefined;
      } catch {
        return undefined;
      }
    });
    await server.restart({ signal: "SIGKILL" });
    expect((await server.getTask(task_id)).assignment.task.title).toBe("survives a crash");
  });
});

describe("command line", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "oz-dev-server-cli-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the script from an unrelated directory until it prints its first line (or exits). */
  async function launch(args: string[], env: Record<string, string | undefined> = {}) {
    const child = Bun.spawn([DEV_SERVER_SCRIPT, ...args], {
      cwd: dir,
      env: { ...process.env, OZ_DEV_API_KEY: undefined, ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = child.stdout.getReader();
    const decoder = new TextDecoder();
    let output = "";
    while (!output.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) break;
      output += decoder.decode(value, { stream: true });
    }
    reader.releaseLock();
    return { child, firstLine: output.split("\n")[0] ?? "" };
  }

  async function statusWithKey(url: string, key: string): Promise<number> {
    return (await fetch(`${url}/v1/workers`, { headers: { Authorization: `Bearer ${key}` } })).status;
  }

  test("--help prints usage and exits 0; an unknown option exits 2", async () => {
    const help = Bun.spawnSync([DEV_SERVER_SCRIPT, "--help"], { cwd: dir });
    expect(help.exitCode).toBe(0);
    expect(help.stdout.toString()).toStartWith("Usage: oz-dev-server [--host 127.0.0.1] [--port 8787] [--api-key KEY] [--state FILE]");
    const bad = Bun.spawnSync([DEV_SERVER_SCRIPT, "--bogus"], { cwd: dir });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain("Unknown option '--bogus'");
    const badPort = Bun.spawnSync([DEV_SERVER_SCRIPT, "--port", "http"], { cwd: dir });
    expect(badPort.exitCode).toBe(2);
  });

  test("--host: one address, loopback by default; all interfaces are refused with exit 2", async () => {
    for (const all of ["0.0.0.0", "::", ""]) {
      const refused = Bun.spawnSync([DEV_SERVER_SCRIPT, "--host", all, "--port", "0"], { cwd: dir });
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr.toString()).toContain("--host must name one address");
    }
    const { child, firstLine } = await launch(["--host", "127.0.0.1", "--port", "0"]);
    try {
      const url = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(firstLine)?.[1];
      expect(url).toBeDefined();
      expect(await statusWithKey(url ?? "", "dev-key")).toBe(200);
    } finally {
      child.kill("SIGTERM");
      await child.exited;
    }
  });

  test("API key: --api-key, else OZ_DEV_API_KEY, else dev-key", async () => {
    const cases = [
      { args: ["--api-key", "flag-key"], env: { OZ_DEV_API_KEY: "env-key" }, key: "flag-key", not: "env-key" },
      { args: [], env: { OZ_DEV_API_KEY: "env-key" }, key: "env-key", not: "dev-key" },
      { args: [], env: {}, key: "dev-key", not: "flag-key" },
    ];
    for (const { args, env, key, not } of cases) {
      const { child, firstLine } = await launch(["--port", "0", ...args], env);
      try {
        const url = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(firstLine)?.[1];
        expect(url).toBeDefined();
        expect(await statusWithKey(url ?? "", key)).toBe(200);
        expect(await statusWithKey(url ?? "", not)).toBe(401);
      } finally {
        child.kill("SIGTERM");
        await child.exited;
      }
    }
  });

  test("a port in use is an error, not a second server sharing it", async () => {
    const taken = await launch(["--port", String(server.port)]);
    expect(await taken.child.exited).toBe(1);
    expect(taken.firstLine).toBe("");
    expect(await new Response(taken.child.stderr).text()).toContain(`port ${server.port} in use`);
  });

  test("an unreadable state file stops the start with a clear error", async () => {
    const stateFile = join(dir, "state.json");
    writeFileSync(stateFile, "{ truncated");
    const { child, firstLine } = await launch(["--port", "0", "--state", stateFile]);
    expect(await child.exited).toBe(1);
    expect(firstLine).toBe("");
    expect(await new Response(child.stderr).text()).toContain(`state file ${stateFile} is not valid JSON`);
    // The records the user asked to keep are left alone.
    expect(readFileSync(stateFile, "utf8")).toBe("{ truncated");
  });
});
