// `scripts/bench --watch-floor MODE`: a process that only reads the worker's two watches (the
// Jobs and Pods of its namespace, through the worker's own Kubernetes client and transport), as
// a floor for the worker's CPU per task. MODE `receive` discards the bytes; `parse` also does
// what the worker's reflector does with every event before its own logic: split the lines,
// cut managedFields, parse, slim. The benchmark runs it with the worker binary's runtime flags
// (--smol --experimental-http2-fetch) during the measured window, on the sandbox's apiserver
// (the same etcd, so the same events, but not the worker's dedicated apiserver, whose figures
// must count the worker alone).
//
//   bun --smol --experimental-http2-fetch scripts/lib/watch-floor.ts MODE KUBECONFIG NAMESPACE
//
// Prints `{"open":true}` once both watches are open (the CPU count starts there), on SIGUSR1
// a line `{"cpu_seconds":…,"events":…,"bytes":…}` of what it has done so far, and on SIGTERM
// that line before it exits.
import { PREFLIGHT_LABEL } from "../../src/core/naming.ts";
import { loadKubeClient } from "../../src/kube/client.ts";
import { slimJob, slimPod } from "../../src/kube/slim.ts";
import { LineSplitter, parseWatchLine } from "../../src/kube/watch-stream.ts";

const [mode, kubeconfig, namespace] = process.argv.slice(2);
if ((mode !== "receive" && mode !== "parse") || !kubeconfig || !namespace) {
  process.stderr.write("usage: watch-floor.ts receive|parse KUBECONFIG NAMESPACE\n");
  process.exit(2);
}

const client = loadKubeClient({ kubeconfig });
// The worker's selector but for its hash, which only it knows: the namespace holds no other task objects.
const selector = `!${PREFLIGHT_LABEL}`;
const kinds = {
  jobs: { path: `/apis/batch/v1/namespaces/${namespace}/jobs`, slim: slimJob },
  pods: { path: `/api/v1/namespaces/${namespace}/pods`, slim: slimPod },
};
let events = 0;
let bytes = 0;
let cpuAtOpen: NodeJS.CpuUsage | undefined;

function report(): void {
  const cpu = process.cpuUsage(cpuAtOpen);
  process.stdout.write(`${JSON.stringify({ cpu_seconds: (cpu.user + cpu.system) / 1e6, events, bytes })}\n`);
}
process.on("SIGUSR1", report);
process.on("SIGTERM", () => {
  report();
  process.exit(0);
});

const opened = await Promise.all(
  Object.entries(kinds).map(async ([resource, { path, slim }]) => {
    // From now on: no replay of what is already there.
    const list = await client.fetch(`${path}?labelSelector=${encodeURIComponent(selector)}&limit=1`, { headers: { Accept: "application/json" } });
    const rv = (JSON.parse(await list.text()) as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion ?? "";
    const res = await client.fetch(`${path}?watch=true&allowWatchBookmarks=true&labelSelector=${encodeURIComponent(selector)}&resourceVersion=${rv}&timeoutSeconds=3600`, {
      headers: { Accept: "application/json" },
    });
    if (res.status !== 200 || !res.body) throw new Error(`watch ${resource}: HTTP ${res.status} ${await res.text()}`);
    return async () => {
      const reader = res.body!.getReader();
      const lines = new LineSplitter();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new Error(`watch ${resource}: the API server ended the stream`);
        bytes += value.length;
        if (mode === "receive") continue;
        for (let line = lines.push(value); line !== undefined; line = lines.next()) {
          const ev = parseWatchLine(line, resource, namespace, true);
          events++;
          if (ev.type !== "DELETED" && ev.type !== "BOOKMARK") slim(ev.object);
        }
      }
    };
  }),
);
cpuAtOpen = process.cpuUsage();
process.stdout.write(`${JSON.stringify({ open: true })}\n`);
await Promise.all(opened.map((read) => read()));
