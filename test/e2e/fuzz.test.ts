// Hostile input against a REAL worker process: a small WebSocket server in this file stands in
// for Oz (it can send raw frames, which the dispatch server cannot) and sends 10,000 malformed
// or hostile frames: invalid JSON, wrong types, missing fields, unknown types, strings of
// megabytes, 100,000-deep nesting, binary frames, and task assignments with hostile values.
// Valid tasks sent between them must still run to completion in the sandbox, the worker must
// stay up and connected, every assignment it could read gets exactly one terminal answer, and
// its memory stays bounded (VmRSS / VmHWM from /proc). A second test has a container print
// 50 MB of log: the worker logs a truncated tail with the `[... N bytes truncated ...]` marker
// and its memory stays bounded.
//
// Reproduce a run with FUZZ_SEED=<the seed it printed>.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { Server, ServerWebSocket } from "bun";
import { DEFAULT_LOG_MAX_BYTES } from "../../src/kube/logs.ts";
import { type DispatchServer, waitFor } from "../support/dispatch.ts";
import { E2EScope, uniqueId } from "../support/e2e-scope.ts";
import { prng } from "../support/prng.ts";
import { startWorker } from "../support/worker.ts";

const MB = 1024 * 1024;

const FRAMES = 10_000;
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;

/** The admin kubeconfig (from the scope's setup). */
let KUBECONFIG: string;
const scope = new E2EScope();
const { freshNamespace, worker, dispatchServer } = scope;

/** VmRSS and VmHWM (peak RSS) of a process, in MiB. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

// ---------------------------------------------------------------- the stand-in for Oz

interface Received {
  type: string;
  data: Record<string, unknown>;
}

/** A WebSocket server the worker connects to: sends raw frames, records what comes back. */
class RawOz {
  readonly received: Received[] = [];
  connections = 0;
  readonly closes: string[] = [];
  socket: ServerWebSocket<unknown> | undefined;
  readonly server: Server<unknown>;

  constructor() {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req, srv) => {
        if (new URL(req.url).pathname === "/ws" && srv.upgrade(req, { data: undefined })) return undefined;
        return new Response("not found", { status: 404 });
      },
      websocket: {
        // Big frames are queued whole; send() waits for the worker to drain them.
        backpressureLimit: 256 * MB,
        maxPayloadLength: 64 * MB,
        open: (ws) => {
          this.socket = ws;
          this.connections++;
        },
        message: (_ws, message) => {
          const parsed = JSON.parse(String(message)) as Received;
          this.received.push(parsed);
        },
        close: (ws, code, reason) => {
          this.closes.push(`${code} ${reason}`);
          if (this.socket === ws) this.socket = undefined;
        },
      },
    });
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.server.port}/ws`;
  }

  /** Sends one frame as is; waits while more than 4 MB is still queued for the worker. */
  async send(frame: string | Uint8Array): Promise<void> {
    const ws = await waitFor("the worker's connection", () => this.socket, { timeoutMs: 30_000 });
    const empty = (typeof frame === "string" ? frame.length : frame.byteLength) === 0;
    // send() answers the bytes sent, -1 under backpressure, 0 when dropped (or the frame is empty).
    if (ws.send(frame) === 0 && !empty) throw new Error(`the frame was dropped: the worker's connection is gone (closes: ${this.closes.join("; ")})`);
    if (ws.getBufferedAmount() > 4 * MB) {
      await waitFor("the worker to read its frames", () => (ws.getBufferedAmount() < MB ? true : undefined), { timeoutMs: 60_000, intervalMs: 5 });
    }
  }

  /** What the worker sent for one task, in order. */
  messagesFor(taskId: string): string[] {
    return this.received.filter((m) => m.data.task_id === taskId).map((m) => m.type);
  }

  stop(): void {
    this.server.stop(true);
  }
}

// ---------------------------------------------------------------- frame generator


type Expect = "none" | "terminal" | "completed";

interface Frame {
  kind: string;
  payload: string | Uint8Array;
  /** The task_id the worker must answer with exactly one terminal message (or none). */
  taskId?: string;
  expect: Expect;
}

const envelope = (type: unknown, data: unknown) => JSON.stringify({ type, data });

function assignment(taskId: string, extra: Record<string, unknown> = {}, image = "busybox:1.36"): Record<string, unknown> {
  return { task_id: taskId, execution_id: crypto.randomUUID(), task: { id: taskId, title: "fuzz" }, docker_image: image, ...extra };
}

/** `{"a":{"a":…}}` or `[[[…]]]` nested `depth` deep, built as text (no recursion anywhere). */
function nested(depth: number, array: boolean): string {
  return array ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

class FrameSource {
  readonly rand: () => number;
  /** How many frames of each kind that passes validation (and so makes a Job) are left. */
  readonly #jobBudget = new Map<string, number>();

  constructor(seed: number) {
    this.rand = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  text(max: number): string {
    const alphabet = 'abcXYZ019 _-=:{}[]",\\\n\t\u0000\u007f\u00e9\u4e2d\ud83d\ude00\ud800';
    let s = "";
    const n = this.int(max);
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }

  /** A kind that creates a Job runs at most `budget` times; after that, `fallback`. */
  budgeted(kind: string, budget: number, make: () => Frame, fallback: () => Frame): Frame {
    const left = this.#jobBudget.get(kind) ?? budget;
    if (left <= 0) return fallback();
    this.#jobBudget.set(kind, left - 1);
    return make();
  }

  valid(image = "busybox:1.36"): Frame {
    const id = crypto.randomUUID();
    return { kind: "valid", payload: envelope("task_assignment", assignment(id, {}, image)), taskId: id, expect: "completed" };
  }

  /** A hostile assignment the worker can read the task_id of: it must answer it exactly once. */
  hostileAssignment(): Frame {
    const id = crypto.randomUUID();
    const bad = (kind: string, extra: Record<string, unknown>, expect: Expect = "terminal"): Frame => ({
      kind,
      payload: envelope("task_assignment", assignment(id, extra)),
      taskId: id,
      expect,
    });
    const variants: (() => Frame)[] = [
      // Names the API server refuses: the Job create fails (job_create), no Job.
      () => bad("env name with =", { env_vars: { "A=B": "x" } }),
      () => bad("env name with newline", { env_vars: { "A\nB": "x" } }),
      () => bad("env name empty", { env_vars: { "": "x" } }),
      () => bad("env name __proto__", { env_vars: JSON.parse('{"__proto__": "x"}') as Record<string, unknown> }),
      () => bad("env value not a string", { env_vars: { A: this.pick([1, true, null, [], {}]) } }),
      () => bad("env_vars an array", { env_vars: ["A", "B"] }),
      () => bad("image with whitespace", { docker_image: this.pick(["busybox 1.36", "busybox:1.36\n", "\tbusybox", "a b:c"]) }),
      () => bad("image not a string", { docker_image: this.pick([42, {}, [], true]) }),
      () => bad("image too long", { docker_image: "a".repeat(5_000) }),
      () => bad("sidecars not an array", { additional_sidecars: { image: "x" } }),
      // Any number of sidecars parses; these share a mount path, so the Job spec refuses them (sidecar_prep).
      () => bad("33 sidecars on one path", { additional_sidecars: Array.from({ length: 33 }, () => ({ image: "busybox:1.36", mount_path: "/x" })) }),
      () => bad("sidecar read_write a string", { additional_sidecars: [{ image: "busybox:1.36", mount_path: "/x", read_write: "yes" }] }),
      // Parses, but the Job spec refuses it (the task's own mount): failed with sidecar_prep, no Job.
      () => bad("sidecar mounted at /workspace", { additional_sidecars: [{ image: "busybox:1.36", mount_path: "/workspace", read_write: true }] }),
      () => bad("oz args not strings", { additional_oz_args: [1, 2, 3] }),
      () => bad("instance shape a string", { instance_shape: "large" }),
      () => bad("task missing", { task: undefined }),
      () => bad("task an array", { task: [] }),
      () => bad("task.id empty", { task: { id: "" } }),
      () => bad("execution_id with control characters", { execution_id: "a\u0001b" }),
      () => bad("execution_id a number", { execution_id: 7 }),
      // These pass validation (lenient fields, ignored values) and make a Job that runs.
      () =>
        this.budgeted("negative instance shape", 3, () => bad("negative instance shape", { instance_shape: { vcpus: -4, memory_gb: -1 } }, "completed"), () => this.hostileAssignment()),
      () =>
        this.budgeted("hostile lenient fields", 3, () =>
          bad("hostile lenient fields", {
            task: { id, title: 42, task_definition: "x", owner: { Type: "TEAM", Id: 1 }, agent_config_snapshot: { mcp_servers: [1], harness: 7, idle_timeout_minutes: "x" } },
          }, "completed"), () => this.hostileAssignment()),
      () =>
        this.budgeted("1000 env vars", 2, () =>
          bad("1000 env vars", { env_vars: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`V${i}`, `value-${i}`])) }, "completed"), () => this.hostileAssignment()),
      // What the Go worker runs and the API server accepts runs here too (no bounds of our own).
      () =>
        this.budgeted("env names the API server accepts", 3, () =>
          bad("env names the API server accepts", { env_vars: { "1X": "x", "MY-TOKEN": "y", "my.dotted": "z", constructor: "c" } }, "completed"), () => this.hostileAssignment()),
      () => this.budgeted("env value with NUL", 2, () => bad("env value with NUL", { env_vars: { A: "a\u0000b" } }, "completed"), () => this.hostileAssignment()),
      // Parses; a Job with 10,000 env entries (and their managedFields) is past etcd's request
      // size, so the API server refuses it (job_create), as it would the Go worker's.
      () =>
        this.budgeted("10k env vars", 1, () =>
          bad("10k env vars", { env_vars: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`V${i}`, "x"])) }), () => this.hostileAssignment()),
      () => this.budgeted("300 oz args", 2, () => bad("300 oz args", { additional_oz_args: Array.from({ length: 300 }, () => "--x") }, "completed"), () => this.hostileAssignment()),
      // Pending as unschedulable until unschedulable_timeout (30 s), then failed.
      () => this.budgeted("instance shape huge", 2, () => bad("instance shape huge", { instance_shape: { vcpus: 1e308, memory_gb: 1e308 } }), () => this.hostileAssignment()),
    ];
    return this.pick(variants)();
  }

  /** Frames the worker cannot use at all: it must ignore them (no answer) and carry on. */
  garbage(): Frame {
    const none = (kind: string, payload: string | Uint8Array): Frame => ({ kind, payload, expect: "none" });
    const variants: (() => Frame)[] = [
      () => none("invalid JSON", this.text(200)),
      () => none("truncated JSON", envelope("task_assignment", assignment(crypto.randomUUID())).slice(0, 1 + this.int(60))),
      () => none("JSON not an object", JSON.stringify(this.pick([1, "x", null, true, [], [1, 2], 1e308]))),
      () => none("missing type", JSON.stringify({ data: {} })),
      () => none("type not a string", JSON.stringify({ type: this.pick([1, null, {}, [], true]), data: {} })),
      () => none("empty type", JSON.stringify({ type: "", data: {} })),
      () => none("missing data", JSON.stringify({ type: "task_assignment" })),
      () => none("data not an object", JSON.stringify({ type: "task_assignment", data: this.pick([1, "x", null, [], true]) })),
      () => none("unknown type", envelope(this.text(40) || "x", {})),
      () => none("unknown type, long name", envelope("t".repeat(10_000), {})),
      () => none("assignment without task_id", envelope("task_assignment", { task: { id: "x" } })),
      () => none("task_id not a string", envelope("task_assignment", assignment(crypto.randomUUID(), { task_id: this.pick([1, null, {}, [], true]) }))),
      () => none("task_id blank", envelope("task_assignment", assignment(crypto.randomUUID(), { task_id: "   " }))),
      () => none("task_id too long", envelope("task_assignment", assignment(crypto.randomUUID(), { task_id: "x".repeat(300) }))),
      () => none("task_id with control characters", envelope("task_assignment", assignment(crypto.randomUUID(), { task_id: "a\nb" }))),
      () => none("cancellation of an unknown task", envelope("task_cancellation", { task_id: crypto.randomUUID() })),
      () => none("cancellation without task_id", envelope("task_cancellation", {})),
      () => none("cancellation, task_id a number", envelope("task_cancellation", { task_id: 5 })),
      () => none("worker-side type sent to the worker", envelope(this.pick(["task_claimed", "task_completed", "task_failed"]), { task_id: crypto.randomUUID() })),
      () => none("binary frame", new Uint8Array(this.int(2048)).map(() => this.int(256))),
      () => none("nested 1,000 deep", envelope("task_assignment", JSON.parse(nested(1_000, false)))),
      () => none("random keys", JSON.stringify(Object.fromEntries(Array.from({ length: 20 }, () => [this.text(10), this.text(10)])))),
    ];
    return this.pick(variants)();
  }

  /** Frames of megabytes, or nested 100,000 deep (sent as text: JSON.stringify would recurse). */
  huge(n: number): Frame {
    const id = crypto.randomUUID();
    const size = (1 + this.int(8)) * MB;
    const variants: (() => Frame)[] = [
      () => ({ kind: "huge invalid JSON", payload: "{".repeat(size), expect: "none" }),
      () => ({ kind: "huge string value, unknown type", payload: envelope("x", { s: "s".repeat(size) }), expect: "none" }),
      () => ({ kind: "huge type name", payload: envelope("t".repeat(2 * MB), {}), expect: "none" }),
      () => ({ kind: "huge env value", payload: envelope("task_assignment", assignment(id, { env_vars: { A: "v".repeat(size) } })), taskId: id, expect: "terminal" }),
      () => ({ kind: "huge prompt", payload: envelope("task_assignment", assignment(id, { task: { id, task_definition: { prompt: "p".repeat(size) } } })), taskId: id, expect: "terminal" }),
      () => ({ kind: "data nested 100,000 deep (arrays)", payload: `{"type":"task_assignment","data":${nested(100_000, true)}}`, expect: "none" }),
      () => ({
        kind: "mcp_servers nested 100,000 deep",
        payload: `{"type":"task_assignment","data":{"task_id":"${id}","task":{"id":"${id}","agent_config_snapshot":{"mcp_servers":${nested(100_000, false)}}},"docker_image":"busybox:1.36"}}`,
        taskId: id,
        // Either refused (too deep) or the lenient field dropped: one terminal answer either way.
        expect: "terminal",
      }),
    ];
    return variants[n % variants.length]!();
  }
}

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  // Reuses the running sandbox (starts or builds it when needed).
  ({ kubeconfig: KUBECONFIG } = await scope.setup());
}, 60 * 60_000);

afterAll(async () => {
  await scope.cleanup();
});

describe("hostile input", () => {
  test(
    `10,000 malformed or hostile frames from Oz: the worker stays up, memory bounded, valid tasks still run (seed ${SEED})`,
    async () => {
      console.log(`[fuzz] frames: seed ${SEED} (FUZZ_SEED=${SEED} reproduces this run)`);
      const ns = await freshNamespace("fuzz");
      const oz = scope.track(new RawOz());
      const stub = { wsUrl: oz.wsUrl, apiKey: "fuzz-api-key" } as unknown as DispatchServer;
      const w = scope.trackWorker(
        await startWorker({ workerId: uniqueId("fuzz"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: stub }, { waitConnected: false }),
      );
      const source = new FrameSource(SEED);

      // Warm up with one valid task, then take the baseline.
      const warm = source.valid();
      await oz.send(warm.payload);
      await waitFor("the warm-up task to complete", () => (oz.messagesFor(warm.taskId!).includes("task_completed") ? true : undefined), { timeoutMs: 30_000 });
      const before = memory(w.pid);

      const expectations = new Map<string, { kind: string; expect: Expect }>();
      const kinds = new Map<string, number>();
      const hugeAt = new Set(Array.from({ length: 21 }, (_, i) => 250 + i * 470));
      let peakSeen = before.rss;
      const t0 = performance.now();
      for (let i = 0; i < FRAMES; i++) {
        let frame: Frame;
        if (i % 1000 === 500) frame = source.valid();
        else if (hugeAt.has(i)) frame = source.huge(i);
        else if (i === 1234) {
          // The same assignment twice: claimed again, one Job, one outcome.
          frame = source.valid();
          await oz.send(frame.payload);
        } else frame = source.rand() < 0.35 ? source.hostileAssignment() : source.garbage();
        kinds.set(frame.kind, (kinds.get(frame.kind) ?? 0) + 1);
        if (frame.taskId) expectations.set(frame.taskId, { kind: frame.kind, expect: frame.expect });
        await oz.send(frame.payload).catch((err: Error) => {
          const conn = w.lines.filter((l) => /oz connection|Oz/.test(l.msg)).map((l) => JSON.stringify(l));
          throw new Error(`frame ${i} (${frame.kind}): ${err.message}\nworker connection log:\n${conn.slice(-10).join("\n")}`);
        });
        if (i % 250 === 0) peakSeen = Math.max(peakSeen, memory(w.pid).rss);
        expect(w.exitCode).toBeUndefined();
      }
      const sendMs = performance.now() - t0;

      // Every readable assignment is claimed and gets exactly one terminal answer; valid ones complete.
      const pending = () => [...expectations].filter(([id]) => !oz.messagesFor(id).some((t) => t === "task_completed" || t === "task_failed"));
      await waitFor("an answer to every readable assignment", () => (pending().length === 0 ? true : undefined), {
        timeoutMs: 90_000,
        intervalMs: 250,
        detail: () => `${pending().length} unanswered, e.g. ${JSON.stringify(pending().slice(0, 5))}\n${w.tail(30)}`,
      });
      const after = memory(w.pid);
      const problems: string[] = [];
      let completed = 0;
      let failed = 0;
      for (const [id, { kind, expect: want }] of expectations) {
        const msgs = oz.messagesFor(id);
        const terminal = msgs.filter((t) => t === "task_completed" || t === "task_failed");
        if (terminal.length !== 1) problems.push(`${kind} ${id}: ${terminal.length} terminal messages (${msgs.join(", ")})`);
        // Claimed before anything else, invalid assignments included (Oz needs the claim first).
        if (msgs[0] !== "task_claimed") problems.push(`${kind} ${id}: first message ${msgs[0]}, not task_claimed`);
        if (want === "completed" && terminal[0] !== "task_completed") problems.push(`${kind} ${id}: expected task_completed, got ${msgs.join(", ")}`);
        if (terminal[0] === "task_completed") completed++;
        else failed++;
      }
      expect(problems).toEqual([]);
      // Frames the worker could not read got no answer at all (only answers for known tasks).
      const answered = new Set(oz.received.map((m) => String(m.data.task_id)));
      expect([...answered].filter((id) => !expectations.has(id) && id !== warm.taskId)).toEqual([]);

      // Still up, still on its first connection, still healthy.
      expect(w.exitCode).toBeUndefined();
      expect(oz.connections).toBe(1);
      const health = await fetch(`${await w.healthUrl()}/healthz`);
      expect(health.status).toBe(200);

      console.log(
        `[fuzz] ${FRAMES} frames sent in ${Math.round(sendMs)} ms; kinds: ${kinds.size}; assignments answered: ${expectations.size} ` +
          `(${completed} completed, ${failed} failed); connections: ${oz.connections}; ` +
          `RSS before ${before.rss.toFixed(1)} MiB, after ${after.rss.toFixed(1)} MiB, peak sampled ${peakSeen.toFixed(1)} MiB, VmHWM ${after.peak.toFixed(1)} MiB`,
      );
      console.log(`[fuzz] frame kinds: ${[...kinds].map(([k, n]) => `${k}=${n}`).join("; ")}`);
      // Bounded: at most 8 MB frames arrive one at a time; nothing accumulates per frame.
      expect(after.rss - before.rss).toBeLessThan(150);
      expect(after.peak).toBeLessThan(before.rss + 400);
      expect(await w.stop("SIGTERM")).toBe(0);
    },
    240_000,
  );

  test(
    "a task whose pod log is 50 MB: the worker logs the tail with the truncation marker; its peak memory does not grow with the log (50 MB, then 200 MB)",
    async () => {
      const ns = await freshNamespace("fuzz-biglog");
      const d = await dispatchServer();
      // inline_task_env: the simulator reads SANDBOX_LOG_BYTES only from an inline env value.
      const w = await worker({ workerId: uniqueId("fuzz-biglog"), kubeconfig: KUBECONFIG, namespace: ns, dispatch: d, kubernetes: { inline_task_env: true } });
      // Warm up (code paths loaded, first API connections made), then the baseline.
      const warm = await d.createTask({ docker_image: "x:exit-1" });
      await d.waitForState(warm.task_id, "failed", { timeoutMs: 30_000 });
      await w.waitForLog("the warm-up log", (l) => l.task_id === warm.task_id && l.msg === "container log of the failed task");
      const before = memory(w.pid);

      /** Runs a task whose container log is `bytes` long; returns the worker's log line about it. */
      const bigLog = async (bytes: number) => {
        // The sandbox's node simulator appends SANDBOX_LOG_BYTES generated bytes to the log
        // (docs/sandbox.md): numbered 100-byte lines, `sandbox log line <i>`.
        const task = await d.createTask({ docker_image: "x:exit-3", env_vars: { SANDBOX_LOG_BYTES: String(bytes) } });
        let sampled = 0;
        const line = await waitFor(
          `the failed container's ${bytes / MB} MB log in the worker log`,
          () => {
            sampled = Math.max(sampled, memory(w.pid).rss);
            return w.lines.find((l) => l.task_id === task.task_id && l.msg === "container log of the failed task");
          },
          { timeoutMs: 60_000, intervalMs: 50 },
        );
        return { line, sampled, after: memory(w.pid) };
      };

      const bytes = 50 * MB;
      const fifty = await bigLog(bytes);
      const log = String(fifty.line.log);
      const received = Number(fifty.line.bytes);
      const truncated = Number(fifty.line.truncated_bytes);
      expect(received).toBeGreaterThanOrEqual(bytes);
      expect(truncated).toBe(received - DEFAULT_LOG_MAX_BYTES);
      expect(log.startsWith(`[... ${truncated} bytes truncated ...]\n`)).toBe(true);
      expect(log.length).toBeLessThanOrEqual(DEFAULT_LOG_MAX_BYTES + 100);
      // The tail is kept: the last generated line is there, the first one is not.
      expect(log).toContain(`sandbox log line ${bytes / 100 - 1} `);
      expect(log).not.toContain("sandbox log line 0 ");

      // Four times the log: the peak must not grow with it (the response is streamed and only
      // the tail is kept; what remains is garbage awaiting collection and the 1 MiB excerpt).
      const more = await bigLog(4 * bytes);
      expect(Number(more.line.truncated_bytes)).toBe(Number(more.line.bytes) - DEFAULT_LOG_MAX_BYTES);
      console.log(
        `[fuzz] 50 MB log: received ${received} bytes, kept ${log.length} chars, truncated ${truncated}; RSS before ${before.rss.toFixed(1)} MiB, ` +
          `peak sampled ${fifty.sampled.toFixed(1)} MiB, VmHWM ${fifty.after.peak.toFixed(1)} MiB, after ${fifty.after.rss.toFixed(1)} MiB; ` +
          `then 200 MB: VmHWM ${more.after.peak.toFixed(1)} MiB, after ${more.after.rss.toFixed(1)} MiB`,
      );
      // Measured: +22..37 MiB at 50 MB, +45..62 MiB at 200 MB, and a plateau (no growth)
      // over eight 50 MB logs in a row. Keeping the whole log would add 50 and 200 MiB.
      expect(fifty.after.peak - before.rss).toBeLessThan(64);
      expect(more.after.peak - before.rss).toBeLessThan(100);
      expect(await w.stop("SIGTERM")).toBe(0);
    },
    120_000,
  );
});
