// A Go-worker user switching to oz-worker, end to end on the sandbox's real node: the Go chart's
// release (the stand-in chart written from ../shared/upstream-compat.md, on a simulated node) is
// `helm upgrade`d to charts/oz-agent-worker with the user's own values unchanged (the Go chart's
// defaults plus their worker ID, API key and Oz endpoint), changing only the image, and what the
// sandbox needs to schedule onto the real node. The upgraded worker pod then connects to Oz
// (the dispatch server) with in-cluster auth and runs a task as a real container.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startDispatchServer, type DispatchServer } from "../support/dispatch.ts";
import { ensureHelm, goDefaultsFile, installGoRelease, upgradeToChart, valuesFile } from "../support/helm.ts";
import { buildImage } from "../support/image.ts";
import { hostAddress, REAL_IMAGES, REAL_NODE_ENABLED, REAL_NODE_NAME, REAL_NODE_POD_TEMPLATE } from "../support/real-node.ts";
import { ADMIN_KUBECONFIG, ensureSandbox, freshNamespace, getJson, waitFor, type Namespace } from "../support/sandbox.ts";
import { isTerminalState, terminalEvents } from "../support/worker.ts";

const RELEASE = "oz-agent-worker";
const WORKER_ID = `go-switch-${Math.random().toString(36).slice(2, 8)}`;

interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string; containers: { image: string; args?: string[] }[] };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

let dispatch: DispatchServer | undefined;
let ns: Namespace | undefined;

beforeAll(async () => {
  if (!REAL_NODE_ENABLED) return;
  await ensureSandbox();
  await ensureHelm();
  dispatch = await startDispatchServer({ host: await hostAddress() });
  ns = await freshNamespace("go-switch");
}, 60 * 60_000);

afterAll(async () => {
  await dispatch?.stop();
  await ns?.cleanup();
}, 60_000);

async function releasePods(namespace: string): Promise<Pod[]> {
  const list = (await getJson("pods", "-n", namespace, "-l", `app.kubernetes.io/instance=${RELEASE}`)) as { items: Pod[] } | undefined;
  return list?.items ?? [];
}

describe.skipIf(!REAL_NODE_ENABLED)("switching a Go-worker release to oz-worker on the real node", () => {
  test(
    "helm upgrade with the user's values: the upgraded worker connects to Oz with in-cluster auth and runs a task",
    async () => {
      const image = await buildImage({ load: true });
      const d = dispatch!;
      const namespace = ns!.name;
      // The user's values, the same for both charts: the Go chart's defaults, their worker ID,
      // their API key and their Oz endpoint.
      const values = [
        "--values", goDefaultsFile,
        "--set", `worker.workerId=${WORKER_ID}`,
        "--set", "image.tag=0.9.0",
        "--set", "warp.apiKeySecret.create=true",
        "--set", "warp.apiKeySecret.name=",
        "--set", `warp.apiKeySecret.value=${d.apiKey}`,
        "--set", `warp.webSocketURL=${d.wsUrl}`,
        "--set", `warp.serverRootURL=${d.url}`,
      ];
      const opts = { release: RELEASE, namespace, kubeconfig: ADMIN_KUBECONFIG, values };
      await installGoRelease(opts);
      const [goPod] = await releasePods(namespace);
      expect(goPod?.spec.containers[0]?.image).toBe("warpdotdev/oz-agent-worker:0.9.0");

      // The switch: our image; the real node's scheduling is the sandbox's need, not the user's.
      const sandboxOnly = valuesFile("go-switch-real-node", {
        image: { pullPolicy: "Never" },
        worker: { nodeSelector: REAL_NODE_POD_TEMPLATE.nodeSelector, tolerations: REAL_NODE_POD_TEMPLATE.tolerations },
        kubernetesBackend: { podTemplate: REAL_NODE_POD_TEMPLATE },
      });
      // The image as a switching user sets it: --set, which wins over the values' `image.tag`.
      const up = await upgradeToChart({
        ...opts,
        upgrade: ["--values", sandboxOnly, "--set", `image.repository=${image.repository}`, "--set", `image.tag=${image.tag}`, "--wait", "--timeout", "3m"],
      });
      expect(`exit ${up.code}\n${up.stderr}`).toBe("exit 0\n");

      const pod = await waitFor(
        async () => {
          const pods = await releasePods(namespace);
          const ready = pods.filter((p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
          return pods.length === 1 && ready.length === 1 ? ready[0] : undefined;
        },
        { what: "the upgraded worker pod alone and Ready", timeoutMs: 180_000 },
      );
      expect(pod.metadata.uid).not.toBe(goPod!.metadata.uid);
      expect(pod.spec.nodeName).toBe(REAL_NODE_NAME);
      expect(pod.spec.containers[0]?.image).toBe(image.ref);
      // The Go chart's args, the endpoint from the user's values, no kubeconfig.
      const args = pod.spec.containers[0]?.args ?? [];
      expect(args.slice(0, 4)).toEqual(["--config-file", "/etc/oz-agent-worker/config.yaml", "--backend", "kubernetes"]);
      expect(args).toContain(d.wsUrl);
      expect(args.join(" ")).not.toContain("kubeconfig");

      await d.waitForWorkers((workers) => workers.some((w) => w.worker_id === WORKER_ID), { timeoutMs: 60_000 });
      const task = await d.createTask({
        worker_id: WORKER_ID,
        docker_image: REAL_IMAGES.dev,
        sidecar_image: REAL_IMAGES.agent,
        env_vars: { SANDBOX_AGENT: "ok" },
      });
      const done = await d.waitForTask(task.task_id, (t) => isTerminalState(t.state), { timeoutMs: 120_000 });
      expect(done.state).toBe("succeeded");
      expect(terminalEvents(done).map((e) => e.type)).toEqual(["task_completed"]);
    },
    15 * 60_000,
  );
});
