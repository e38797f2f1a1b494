// scripts/demo: oz-worker end to end on this machine. Builds what is missing,
// starts the sandbox cluster and the local dispatch server, runs the compiled
// worker, submits a mixed batch of tasks, shows them live and checks the
// outcome. See docs/demo.md.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseFlags, usageText, UsageError, type FlagDefs } from "./lib/args.ts";
import { Cleanup } from "./lib/cleanup.ts";
import {
  changeHeader,
  changeLine,
  DEFAULT_BATCH,
  type DemoRow,
  type DemoTask,
  demoTable,
  isTerminalState,
  parseBatch,
  rowOf,
  rowSignature,
  summarizeDemo,
  summaryLine,
} from "./lib/demo-model.ts";
import { Dispatch, type TaskRecord } from "./lib/dispatch.ts";
import { Kube, nowMs } from "./lib/kube.ts";
import { TaskObserver } from "./lib/observe.ts";
import { ADMIN_KUBECONFIG, createWorkerNamespace, deleteNamespace, REPO, run, sandboxDown, sandboxRunning, sandboxUp } from "./lib/sandbox.ts";
import { colorWanted, makeStyle, redraw } from "./lib/table.ts";
import { ensureWorkerBinary, spawnWorker, WORKER_BINARY, writeWorkerConfig } from "./lib/worker.ts";

const FLAGS: FlagDefs = {
  keep: { kind: "boolean", help: "leave the sandbox and the demo namespace running at the end" },
  tasks: {
    kind: "string",
    placeholder: "LIST",
    help: `comma-separated task images; prefix cancel: to cancel one once it runs (default ${DEFAULT_BATCH})`,
  },
  help: { kind: "boolean", help: "show this help" },
};
const SUMMARY = "Runs oz-worker end to end against the local sandbox cluster and dispatch server. See docs/demo.md.";

const WORKER_ID = "demo-worker";
const SERVICE_ACCOUNT = "oz-worker";
const DEMO_LABEL = "oz-worker-demo";
const BATCH_DEADLINE_MS = 120_000;
/** A task to cancel is cancelled this long after its claim even if its pod never shows Running. */
const CANCEL_FALLBACK_MS = 30_000;

const out = process.stdout;
const tty = Boolean(out.isTTY);
const style = makeStyle(colorWanted(tty, process.env));
const t0 = nowMs();
const step = (text: string) => out.write(`${style.bold(`==> ${text}`)}\n`);
const info = (text: string) => out.write(`    ${text}\n`);
const warn = (text: string) => out.write(`${style.yellow(`    ${text}`)}\n`);

async function main(): Promise<number> {
  let flags;
  let batch: DemoTask[];
  try {
    flags = parseFlags(process.argv.slice(2), FLAGS);
    batch = parseBatch((flags.tasks as string | undefined) ?? DEFAULT_BATCH);
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof Error && /task list|not an image/.test(err.message))) throw err;
    process.stderr.write(`demo: ${(err as Error).message}\n\n${usageText("scripts/demo", SUMMARY, FLAGS)}`);
    return 2;
  }
  if (flags.help) {
    out.write(usageText("scripts/demo", SUMMARY, FLAGS));
    return 0;
  }
  const keep = flags.keep === true;
  const cleanup = new Cleanup((l) => warn(l));
  cleanup.onSignals();
  try {
    return await demo(batch, keep, cleanup);
  } finally {
    await cleanup.run();
  }
}

async function demo(batch: DemoTask[], keep: boolean, cleanup: Cleanup): Promise<number> {
  const workDir = mkdtempSync(join(tmpdir(), "oz-demo-"));

  step("worker binary");
  await ensureWorkerBinary((l) => info(l));
  info(WORKER_BINARY);

  step("sandbox cluster");
  let wasRunning = await sandboxRunning();
  if (wasRunning) info("already running (scripts/sandbox status); it stays up afterwards");
  else {
    info("starting it with scripts/sandbox up (the first run builds Kubernetes from source and takes a while)");
    // Someone else's `up` may have been under way: then it is not ours to stop.
    wasRunning = !(await sandboxUp()).started;
  }
  const sandboxStays = wasRunning || keep;
  if (!sandboxStays) cleanup.add("stop the sandbox", async () => {
    info("stopping the sandbox (scripts/sandbox down)");
    await sandboxDown();
  });
  const admin = Kube.fromKubeconfig(ADMIN_KUBECONFIG);

  if (wasRunning) {
    // Namespaces kept by earlier demos (for their kubectl hints) go now.
    await run([join(REPO, "scripts/sandbox"), "kubectl", "delete", "namespace", "-l", `${DEMO_LABEL}=true`, "--wait=false"], { timeoutMs: 30_000 });
  }
  const namespace = `oz-demo-${crypto.randomUUID().slice(0, 6)}`;
  const workerKubeconfig = await createWorkerNamespace(admin, namespace, SERVICE_ACCOUNT, { [DEMO_LABEL]: "true" });
  if (!sandboxStays) cleanup.add("delete the demo namespace", () => deleteNamespace(admin, namespace));
  info(`namespace ${namespace}; the worker runs as ServiceAccount ${SERVICE_ACCOUNT} with only its Role's permissions`);

  step("dispatch server (the local Oz stand-in)");
  const apiKey = `demo-${crypto.randomUUID()}`;
  const dispatch = await Dispatch.start(apiKey);
  cleanup.add("stop the dispatch server", () => dispatch.stop());
  info(`${dispatch.url} (worker endpoint ${dispatch.wsUrl})`);

  const configFile = writeWorkerConfig(join(workDir, "config.yaml"), { workerId: WORKER_ID, kubeconfig: workerKubeconfig, namespace, unschedulableTimeout: "10s" });
  info(`worker config ${configFile}`);

  step(`oz-worker preflight --config-file ${configFile}`);
  const pre = await run([WORKER_BINARY, "preflight", "--config-file", configFile], { timeoutMs: 60_000 });
  for (const line of `${pre.stdout}${pre.stderr}`.trimEnd().split("\n")) if (line) info(line);
  if (pre.code !== 0) {
    out.write(style.red(`    preflight failed (exit ${pre.code}); the worker would not start\n`));
    return 1;
  }

  step("oz-worker run");
  const logFile = join(workDir, "worker.log");
  const argv = [WORKER_BINARY, "run", "--config-file", configFile, "--web-socket-url", dispatch.wsUrl, "--log-format", "json", "--health-addr", "127.0.0.1:0", "--skip-preflight"];
  // No metrics exporter unless the caller chose one: the default (OTLP) has no collector here.
  const worker = spawnWorker({ argv }, { WARP_API_KEY: apiKey, OTEL_METRICS_EXPORTER: process.env.OTEL_METRICS_EXPORTER ?? "none" }, logFile);
  cleanup.add("stop the worker", async () => {
    if (worker.exitCode !== null) return;
    const code = await worker.stop();
    info(`worker stopped with SIGTERM (exit ${code})`);
  });
  info(`log: ${logFile} (preflight just passed, so --skip-preflight)`);
  const connectDeadline = nowMs() + 60_000;
  for (;;) {
    if (worker.exitCode !== null) return fail(`the worker exited with code ${worker.exitCode}; see ${logFile}`);
    if ((await dispatch.workers()).some((w) => w.worker_id === WORKER_ID)) break;
    if (nowMs() > connectDeadline) return fail(`the worker did not connect within 60 s; see ${logFile}`);
    await Bun.sleep(100);
  }
  info(`connected as ${WORKER_ID}`);

  const observer = new TaskObserver(admin, namespace);
  await observer.start();
  cleanup.add("stop watching", () => observer.stop());

  step(`submitting ${batch.length} tasks`);
  const records: TaskRecord[] = [];
  for (const [i, task] of batch.entries()) {
    records.push(await dispatch.createTask({ docker_image: task.image, task: { title: `demo ${i + 1}: ${task.image}`, task_definition: { prompt: "demo" } } }));
  }
  const { rows, latest } = await follow(batch, records, dispatch, observer, worker);

  const summary = summarizeDemo(batch, rows);
  step("summary");
  info(`${summaryLine(summary)}  (actual/expected)`);
  for (const [i, r] of rows.entries()) {
    const rec = latest[i]!;
    if (r.state === "failed" && rec.message) info(`${r.taskId.slice(0, 8)} ${batch[i]!.image}: ${rec.message.split("\n")[0]!.slice(0, 200)}`);
  }
  if (summary.reasonMismatches > 0) warn(`${summary.reasonMismatches} failure reason(s) differ from what the image's scripted behaviour implies`);
  out.write(summary.ok ? style.green("    every task ended as expected\n") : style.red("    some tasks did not end as expected\n"));

  step("look further");
  const failed = rows.find((r) => r.state === "failed");
  // A second sandbox (SANDBOX_DIR / SANDBOX_PORT_BASE) needs the same variables for kubectl.
  const envPrefix = ["SANDBOX_DIR", "SANDBOX_PORT_BASE"].flatMap((k) => (process.env[k] ? [`${k}=${process.env[k]}`] : [])).join(" ");
  const kc = `${envPrefix ? `${envPrefix} ` : ""}scripts/sandbox kubectl`;
  info(`${kc} get jobs,pods -n ${namespace} -L oz-task-id`);
  if (failed) {
    info(`${kc} describe jobs -n ${namespace} -l oz-task-id=${failed.taskId}`);
    info(`${kc} logs -n ${namespace} -l oz-task-id=${failed.taskId} --all-containers`);
  }
  info(`${kc} get events -n ${namespace} --sort-by=.lastTimestamp`);
  info(`worker log: ${logFile}`);
  if (!sandboxStays) info(style.dim("(the sandbox stops now; run scripts/demo --keep to keep it for these commands)"));
  else info(style.dim(`(namespace ${namespace} stays until the next demo run; succeeded Jobs were already cleaned up by the worker)`));

  step("stopping what the demo started");
  await cleanup.run();
  info(`done in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  return summary.ok ? 0 : 1;
}

function fail(message: string): number {
  out.write(style.red(`    ${message}\n`));
  return 1;
}

/** Follows the batch to its end: live table (terminal) or change lines, cancelling marked tasks once they run. */
async function follow(
  batch: DemoTask[],
  created: TaskRecord[],
  dispatch: Dispatch,
  observer: TaskObserver,
  worker: { exitCode: number | null },
): Promise<{ rows: DemoRow[]; latest: TaskRecord[] }> {
  const start = nowMs();
  const deadline = start + BATCH_DEADLINE_MS;
  const cancelled = new Set<string>();
  const claimedAt = new Map<string, number>();
  const signatures = new Map<string, string>();
  let printed = 0;
  let records = created;
  let rows: DemoRow[] = [];
  if (!tty) info(changeHeader());
  for (;;) {
    records = await Promise.all(created.map((r) => dispatch.getTask(r.task_id)));
    const now = nowMs();
    rows = records.map((r, i) => rowOf(batch[i]!, r, now));

    for (const [i, task] of batch.entries()) {
      const rec = records[i]!;
      if (!task.cancel || cancelled.has(rec.task_id) || rec.state !== "claimed") continue;
      if (!claimedAt.has(rec.task_id)) claimedAt.set(rec.task_id, now);
      const running = observer.podPhase.get(rec.task_id) === "Running";
      const waitedOut = now - claimedAt.get(rec.task_id)! > CANCEL_FALLBACK_MS;
      if (running || waitedOut) {
        cancelled.add(rec.task_id);
        await dispatch.cancel(rec.task_id).catch(() => {});
        const line = running ? "its pod is Running: cancelling" : "no Running pod after 30 s: cancelling anyway";
        if (!tty) info(`${`+${((now - start) / 1000).toFixed(1)}s`.padStart(7)}  ${rec.task_id.slice(0, 8)}  ${line}`);
      }
    }

    if (tty) {
      const lines = demoTable(rows, style).map((l) => `    ${l}`);
      out.write(redraw(printed, lines));
      printed = lines.length;
    } else {
      for (const row of rows) {
        const sig = rowSignature(row);
        if (signatures.get(row.taskId) === sig) continue;
        signatures.set(row.taskId, sig);
        out.write(`    ${changeLine(now - start, row)}\n`);
      }
    }

    if (rows.every((r) => isTerminalState(r.state))) break;
    if (now > deadline) {
      out.write(style.red(`    not all tasks finished within ${BATCH_DEADLINE_MS / 1000} s\n`));
      break;
    }
    if (worker.exitCode !== null) {
      out.write(style.red(`    the worker exited (code ${worker.exitCode}) before the batch finished\n`));
      break;
    }
    await Bun.sleep(tty ? 200 : 250);
  }
  if (!tty) {
    out.write("\n");
    for (const l of demoTable(rows, style)) out.write(`    ${l}\n`);
  }
  return { rows, latest: records };
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`demo: error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
