// client-node's typed API clients (CoreV1Api, BatchV1Api, …) for tests, sending through a
// KubeClient's own HTTP path (its auth, TLS and counters). src/ imports client-node for types
// only (test/unit/kube/no-client-node.test.ts checks); tests may use it at runtime.
import { type Configuration, createConfiguration, type RequestContext, ResponseContext, ServerConfiguration, wrapHttpLibrary } from "@kubernetes/client-node";
import type { KubeClient } from "../../src/kube/client.ts";

type ApiConstructor<T> = new (configuration: Configuration) => T;

const configurations = new WeakMap<Pick<KubeClient, "fetch" | "server">, Configuration>();

function configurationOf(client: Pick<KubeClient, "fetch" | "server">): Configuration {
  let configuration = configurations.get(client);
  if (!configuration) {
    const httpApi = wrapHttpLibrary({
      send: async (req: RequestContext): Promise<ResponseContext> => {
        const body = req.getBody();
        const res = await client.fetch(req.getUrl(), {
          method: req.getHttpMethod(),
          headers: req.getHeaders(),
          ...(body === undefined || body === null ? {} : { body: String(body) }),
          ...(req.getSignal() ? { signal: req.getSignal() as AbortSignal } : {}),
        });
        const headers: Record<string, string> = {};
        res.headers.forEach((value, name) => {
          headers[name] = value;
        });
        return new ResponseContext(res.status, headers, {
          text: () => res.text(),
          binary: async () => Buffer.from(await res.arrayBuffer()),
          stream: () => res.body,
        } as never);
      },
    });
    configuration = createConfiguration({ baseServer: new ServerConfiguration(client.server, {}), httpApi });
    configurations.set(client, configuration);
  }
  return configuration;
}

/** A typed API client (e.g. `api(admin, CoreV1Api)`) that sends through `client`. */
export function api<T>(client: Pick<KubeClient, "fetch" | "server">, cls: ApiConstructor<T>): T {
  return new cls(configurationOf(client));
}
