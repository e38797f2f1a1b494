// A task's Job and pod as the e2e tests look them up (by the task-id annotation, then the
// job-name label), and values that stand in for secrets, with the forms a leak would take.
import { BatchV1Api, CoreV1Api, type V1Job, type V1Pod } from "@kubernetes/client-node";
import { TASK_ID_ANNOTATION } from "../../src/core/naming.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { api } from "./kube-api.ts";
import { waitFor } from "./wait.ts";

/** A value that cannot occur by accident. */
export const marker = (name: string): string => `oz-e2e-${name}-${crypto.randomUUID()}`;

/** How a value would appear if it leaked: as it is, and base64-encoded (a Secret's data, a spec). */
export const leakForms = (value: string): string[] => [value, Buffer.from(value).toString("base64")];

/** The Job the worker created for `taskId` in `ns`, if it exists now. */
export async function findTaskJob(admin: KubeClient, ns: string, taskId: string): Promise<V1Job | undefined> {
  const list = await api(admin, BatchV1Api).listNamespacedJob({ namespace: ns });
  return list.items.find((j) => j.metadata?.annotations?.[TASK_ID_ANNOTATION] === taskId);
}

/** The running pod of Job `jobName`, once there is one. */
export function waitForRunningPod(admin: KubeClient, ns: string, jobName: string, timeoutMs = 20_000): Promise<V1Pod> {
  return waitFor(
    "the task's pod to run",
    async () => {
      const pods = await api(admin, CoreV1Api).listNamespacedPod({ namespace: ns, labelSelector: `job-name=${jobName}` });
      return pods.items.find((p) => p.status?.phase === "Running");
    },
    { timeoutMs },
  );
}
