// What one e2e file starts against the sandbox (namespaces, dispatch servers, workers and
// stand-in servers), tracked so that its afterAll stops and deletes all of it.
import { CoreV1Api } from "@kubernetes/client-node";
import { type KubeClient, loadKubeClient } from "../../src/kube/client.ts";
import { type DispatchServer, startDispatchServer } from "./dispatch.ts";
import { ensureSandbox } from "./sandbox.ts";
import { api } from "./kube-api.ts";
import { type StartWorkerOptions, type WorkerProcess, startWorker } from "./worker.ts";

/** A name no other run uses: `<prefix>-<time>-<random>`. */
export const uniqueId = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export class E2EScope {
  readonly namespaces: string[] = [];
  readonly workers: WorkerProcess[] = [];
  readonly servers: { stop(): unknown }[] = [];
  #admin: KubeClient | undefined;

  /** Reuses the running sandbox (starts or builds it when needed); the admin kubeconfig and client. */
  async setup(): Promise<{ kubeconfig: string; admin: KubeClient }> {
    const kubeconfig = await ensureSandbox();
    this.#admin = loadKubeClient({ kubeconfig });
    return { kubeconfig, admin: this.#admin };
  }

  freshNamespace = async (prefix: string): Promise<string> => {
    if (!this.#admin) throw new Error("E2EScope.setup() has not run");
    const name = uniqueId(prefix);
    await api(this.#admin, CoreV1Api).createNamespace({ body: { metadata: { name } } });
    this.namespaces.push(name);
    return name;
  };

  worker = async (opts: StartWorkerOptions): Promise<WorkerProcess> => this.trackWorker(await startWorker(opts));

  /** SIGKILLs `w` in cleanup (for a worker started with options of its own). */
  trackWorker = (w: WorkerProcess): WorkerProcess => {
    this.workers.push(w);
    return w;
  };

  dispatchServer = async (): Promise<DispatchServer> => this.track(await startDispatchServer());

  /** Stops `server` in cleanup. */
  track = <T extends { stop(): unknown }>(server: T): T => {
    this.servers.push(server);
    return server;
  };

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.stop("SIGKILL")));
    await Promise.allSettled(this.servers.map(async (s) => s.stop()));
    const admin = this.#admin;
    if (admin) await Promise.allSettled(this.namespaces.map((name) => api(admin, CoreV1Api).deleteNamespace({ name })));
  }
}
