// A TaskObserver on its own thread, so that the arrival times of watch events
// are taken on an event loop that does nothing else (the benchmark's main
// thread parses megabytes of /metrics and polls the dispatch server).
import { Kube, type KubeTarget } from "./kube.ts";
import { TaskObserver } from "./observe.ts";

export interface ObserverSnapshot {
  jobSeenAt: [string, number][];
  podTerminalAt: [string, number][];
  jobTerminalAt: [string, number][];
}

type ToThread = { type: "start"; target: KubeTarget; namespace: string } | { type: "collect" } | { type: "stop" };
type FromThread = { type: "synced" } | { type: "error"; message: string } | ({ type: "snapshot" } & ObserverSnapshot);

/** Runs in the thread. */
function threadMain(): void {
  const scope = globalThis as unknown as { postMessage(m: FromThread): void; onmessage: ((ev: MessageEvent<ToThread>) => void) | null };
  let observer: TaskObserver | undefined;
  scope.onmessage = (ev) => {
    const msg = ev.data;
    if (msg.type === "start") {
      observer = new TaskObserver(new Kube(msg.target), msg.namespace);
      observer.start().then(
        () => scope.postMessage({ type: "synced" }),
        (err: Error) => scope.postMessage({ type: "error", message: err.message }),
      );
    } else if (msg.type === "collect") {
      scope.postMessage({
        type: "snapshot",
        jobSeenAt: [...(observer?.jobSeenAt ?? [])],
        podTerminalAt: [...(observer?.podTerminalAt ?? [])],
        jobTerminalAt: [...(observer?.jobTerminalAt ?? [])],
      });
    } else {
      observer?.stop();
      process.exit(0);
    }
  };
}

/** The main thread's handle on the observer thread. */
export class ObserverThread {
  private readonly worker: Worker;
  private constructor(worker: Worker) {
    this.worker = worker;
  }

  static async start(target: KubeTarget, namespace: string): Promise<ObserverThread> {
    const worker = new Worker(new URL(import.meta.url).href);
    const handle = new ObserverThread(worker);
    await handle.request({ type: "start", target, namespace }, "synced");
    return handle;
  }

  private request(msg: ToThread, expect: FromThread["type"]): Promise<FromThread> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the observer thread did not answer within 30 s")), 30_000);
      this.worker.onmessage = (ev: MessageEvent<FromThread>) => {
        clearTimeout(timer);
        if (ev.data.type === "error") reject(new Error(`harness watch: ${ev.data.message}`));
        else if (ev.data.type === expect) resolve(ev.data);
      };
      this.worker.postMessage(msg);
    });
  }

  async collect(): Promise<{ jobSeenAt: Map<string, number>; podTerminalAt: Map<string, number>; jobTerminalAt: Map<string, number> }> {
    const snap = (await this.request({ type: "collect" }, "snapshot")) as ObserverSnapshot;
    return { jobSeenAt: new Map(snap.jobSeenAt), podTerminalAt: new Map(snap.podTerminalAt), jobTerminalAt: new Map(snap.jobTerminalAt) };
  }

  stop(): void {
    this.worker.postMessage({ type: "stop" });
    setTimeout(() => this.worker.terminate(), 1_000).unref?.();
  }
}

if (!Bun.isMainThread) threadMain();
