// The kubeconfig's TLS material, read the way client-node reads it (files included), in the
// shapes Bun's fetch `tls` option and the HTTP/2 transport (h2.ts) take.
import type { KubeConfig } from "@kubernetes/client-node";
import type { H2Tls } from "./h2.ts";

export interface BunTls {
  ca?: string | string[];
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  serverName?: string;
}

/** The kubeconfig's CA, client certificate and key (files read now), TLS verification and server name. */
export async function readBunTls(kc: KubeConfig): Promise<BunTls> {
  const opts: Record<string, unknown> = {};
  await kc.applyToHTTPSOptions(opts as never);
  const str = (v: unknown): string | undefined =>
    v === undefined || v === null ? undefined : typeof v === "string" ? v : v instanceof Uint8Array ? Buffer.from(v).toString("utf8") : String(v);
  const tls: BunTls = {};
  const ca = str(opts.ca);
  if (ca) tls.ca = ca;
  const cert = str(opts.cert);
  if (cert) tls.cert = cert;
  const key = str(opts.key);
  if (key) tls.key = key;
  if (typeof opts.rejectUnauthorized === "boolean") tls.rejectUnauthorized = opts.rejectUnauthorized;
  if (typeof opts.servername === "string" && opts.servername) tls.serverName = opts.servername;
  return tls;
}

/** The kubeconfig's TLS material as H2Tls, with an exec plugin's certificate (and its key) instead of the kubeconfig's if it gave one. */
export function toH2Tls(kcTls: BunTls, cert: string | undefined, key: string | undefined): H2Tls {
  const { ca, cert: kcCert, key: kcKey, rejectUnauthorized, serverName } = kcTls;
  const tls: H2Tls = {};
  if (ca) tls.ca = Array.isArray(ca) ? ca.join("\n") : ca;
  const c = cert ?? kcCert;
  const k = cert ? key : kcKey;
  if (c) tls.cert = c;
  if (k) tls.key = k;
  if (rejectUnauthorized !== undefined) tls.rejectUnauthorized = rejectUnauthorized;
  if (serverName) tls.servername = serverName;
  return tls;
}
