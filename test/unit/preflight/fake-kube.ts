// An in-memory stand-in for the kube client: answers the requests the preflight sends, streams
// watch events the test pushes, and records every request (deletions above all).
import { ClusterUnreachableError, type KubeFetchInit, type ServerVersion } from "../../../src/kube/client.ts";
import type { PreflightKube } from "../../../src/preflight/context.ts";

export interface FakeOptions {
  unreachable?: boolean;
  namespace?: "exists" | "missing" | "forbidden";
  /** `resource verb` pairs the SelfSubjectAccessReviews deny, e.g. "jobs delete". */
  denied?: string[];
  /** The Status the Job dry run answers with instead of success. */
  dryRunError?: { code: number; reason: string; message: string; details?: unknown };
  /** Warning header values of the dry-run answers. */
  dryRunWarnings?: string[];
  /** Forbid watching events (the reference Role grants only list). */
  eventsWatchForbidden?: boolean;
  /** Called when the real preflight Job is created. */
  onJobCreated?: (fake: FakeKube, job: { metadata: { name: string } }) => void;
}

interface Stream {
  path: string;
  query: URLSearchParams;
  push(type: string, object: unknown): void;
}

export class FakeKube implements PreflightKube {
  readonly source = "explicit file /tmp/kubeconfig";
  readonly server = "https://127.0.0.1:6443";
  readonly context = "fake";
  readonly requests: { method: string; path: string; query: string; body?: unknown }[] = [];
  readonly streams: Stream[] = [];
  readonly deleted: string[] = [];
  readonly created: string[] = [];
  /** Events listed when watching is forbidden. */
  readonly listedEvents: unknown[] = [];

  constructor(readonly opts: FakeOptions = {}) {}

  async checkReachable(): Promise<ServerVersion> {
    if (this.opts.unreachable) {
      throw new ClusterUnreachableError(`cannot reach the Kubernetes API server at ${this.server} (kubeconfig: ${this.source}): connect ECONNREFUSED`, this.source, this.server, "network");
    }
    return { gitVersion: "v1.33.1" };
  }

  /** Pushes a watch event to every open stream of `resource` (pods, events). */
  push(resource: "pods" | "events", type: string, object: unknown): void {
    for (const s of this.streams) if (s.path.endsWith(`/${resource}`)) s.push(type, object);
  }

  async fetch(pathOrUrl: string, init: KubeFetchInit = {}): Promise<Response> {
    const url = new URL(pathOrUrl, this.server);
    const method = init.method ?? "GET";
    const body = init.body ? JSON.parse(init.body) : undefined;
    this.requests.push({ method, path: url.pathname, query: url.search, body });
    const json = (status: number, obj: unknown, headers: Record<string, string> = {}) =>
      new Response(JSON.stringify(obj), { status, headers: { "content-type": "application/json", ...headers } });
    const status = (code: number, reason: string, message: string) => json(code, { kind: "Status", status: "Failure", code, reason, message });
    const p = url.pathname;

    if (url.searchParams.get("watch") === "true") {
      if (p.endsWith("/events") && this.opts.eventsWatchForbidden) {
        return status(403, "Forbidden", 'events is forbidden: User "system:serviceaccount:tasks:w" cannot watch resource "events"');
      }
      let controller!: ReadableStreamDefaultController<Uint8Array>;
      const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
      init.signal?.addEventListener("abort", () => {
        try {
          controller.error(new DOMException("aborted", "AbortError"));
        } catch {
          // closed
        }
      });
      const enc = new TextEncoder();
      this.streams.push({ path: p, query: url.searchParams, push: (type, object) => controller.enqueue(enc.encode(`${JSON.stringify({ type, object })}\n`)) });
      return new Response(stream, { status: 200 });
    }
    if (p === "/api/v1/namespaces/tasks" && method === "GET") {
      const ns = this.opts.namespace ?? "exists";
      if (ns === "missing") return status(404, "NotFound", 'namespaces "tasks" not found');
      if (ns === "forbidden") return status(403, "Forbidden", 'namespaces "tasks" is forbidden');
      return json(200, { metadata: { name: "tasks", labels: {} } });
    }
    if (p === "/apis/authentication.k8s.io/v1/selfsubjectreviews") {
      return json(201, { status: { userInfo: { username: "system:serviceaccount:tasks:w" } } });
    }
    if (p === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
      const a = body.spec.resourceAttributes;
      const key = `${a.resource}${a.subresource ? `/${a.subresource}` : ""} ${a.verb}`;
      return json(201, { status: { allowed: !(this.opts.denied ?? []).includes(key) } });
    }
    if (p === "/apis/batch/v1/namespaces/tasks/jobs" && method === "POST") {
      if (url.searchParams.get("dryRun") === "All") {
        const e = this.opts.dryRunError;
        if (e) return json(e.code, { kind: "Status", status: "Failure", ...e });
        const headers = this.opts.dryRunWarnings?.length ? { warning: this.opts.dryRunWarnings.map((w) => `299 - ${JSON.stringify(w)}`).join(", ") } : undefined;
        return json(201, body, headers);
      }
      this.created.push(body.metadata.name);
      queueMicrotask(() => this.opts.onJobCreated?.(this, body));
      return json(201, body);
    }
    if (p === "/api/v1/namespaces/tasks/secrets" && method === "POST") return json(201, body);
    if (p.startsWith("/apis/batch/v1/namespaces/tasks/jobs/") && method === "DELETE") {
      this.deleted.push(`${p.split("/").pop()} ${url.searchParams.get("propagationPolicy")}`);
      return json(200, { kind: "Status", status: "Success" });
    }
    if (p === "/api/v1/namespaces/tasks/events" && method === "GET") return json(200, { items: this.listedEvents });
    return status(404, "NotFound", `fake: no route for ${method} ${p}`);
  }
}
