// The sandbox's real node (scripts/sandbox, docs/sandbox.md "The real node"): how tests route
// pods to it, find its files, and reach this machine from its pods.
import { dirname, join } from "node:path";
import { ADMIN_KUBECONFIG, run, SANDBOX_SCRIPT } from "./sandbox.ts";

/** False when the sandbox runs without the real node (SANDBOX_REAL_NODE=0). */
export const REAL_NODE_ENABLED = process.env.SANDBOX_REAL_NODE !== "0";
export const REAL_NODE_NAME = "sandbox-real-1";
export const REAL_NODE_KEY = "oz-worker.dev/sandbox-node";

/** The pod_template fields that put a pod on the real node (and only there). */
export const REAL_NODE_POD_TEMPLATE = {
  nodeSelector: { [REAL_NODE_KEY]: "real" },
  tolerations: [{ key: REAL_NODE_KEY, operator: "Equal", value: "real", effect: "NoSchedule" }],
};

/** Images built on this machine and loaded into the real node's containerd. */
export const REAL_IMAGES = {
  dev: "sandbox.local/dev:1",
  agent: "sandbox.local/agent:1",
  busybox: "busybox:1.36",
} as const;

/** The real node's own folder in the sandbox state (removed by `scripts/sandbox down`). */
export const REAL_NODE_DIR = join(dirname(ADMIN_KUBECONFIG), "real-node");

/** `scripts/sandbox host-address`: where pods reach this machine (the bridge's gateway). */
export async function hostAddress(): Promise<string> {
  const result = await run([SANDBOX_SCRIPT, "host-address"]);
  if (result.code !== 0) throw new Error(`scripts/sandbox host-address failed (${result.code}): ${result.stderr}`);
  return result.stdout.trim();
}
