// The kubeconfig's TLS material (CA, client certificate and key: files read when asked, so
// rotated files are picked up), in the shapes Bun's fetch `tls` option and the HTTP/2 transport
// (h2.ts) take, and the undici dispatcher that tunnels through a cluster's proxy-url.
import { readFileSync } from "node:fs";
import type { Dispatcher } from "undici";
import type { H2Tls } from "./h2.ts";
import type { KubeCluster, KubeUser } from "./kubeconfig-file.ts";
import { KubeconfigError } from "./kubeconfig.ts";
import { socks5Agent } from "./socks5.ts";
import { loadUndici } from "./undici.ts";
import { describeError } from "../util/errors.ts";

export interface BunTls {
  ca?: string | string[];
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  serverName?: string;
}

/** The cluster's and user's TLS settings; `source` names the kubeconfig in errors. */
export interface TlsSettings {
  cluster: KubeCluster;
  user: KubeUser | undefined;
  source: string;
}

/** A file's or the inline data's PEM; the file is read now. Its errors name the field and the entry. */
function pem(file: string | undefined, data: string | undefined, fieldName: string, entry: string, s: TlsSettings): string | undefined {
  if (!file) return data;
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new KubeconfigError(`${entry}: cannot read its ${fieldName} ${file}: ${describeError(err)}`, s.source, { cause: err });
  }
}

/** The CA, client certificate and key (files read now), TLS verification and server name. */
export function readTls(s: TlsSettings): BunTls {
  const { cluster, user } = s;
  const tls: BunTls = {};
  const ca = pem(cluster.caFile, cluster.caData, "certificate-authority", `cluster ${cluster.name} (${cluster.origin})`, s);
  if (ca) tls.ca = ca;
  if (user) {
    const entry = `user ${user.name} (${user.origin})`;
    const cert = pem(user.certFile, user.certData, "client-certificate", entry, s);
    if (cert) tls.cert = cert;
    const key = pem(user.keyFile, user.keyData, "client-key", entry, s);
    if (key) tls.key = key;
  }
  // Unset: each runtime's default, which honours NODE_TLS_REJECT_UNAUTHORIZED.
  if (cluster.skipTLSVerify) tls.rejectUnauthorized = false;
  if (cluster.tlsServerName) tls.serverName = cluster.tlsServerName;
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

/**
 * Under Node and Deno: the dispatcher to the cluster through its proxy-url, with the cluster's
 * TLS on the tunnelled connection: undici's ProxyAgent (HTTP CONNECT) for an http or https
 * proxy, socks5.ts for a socks5 one.
 */
export async function proxyDispatcher(proxyUrl: string, tls: H2Tls): Promise<Dispatcher> {
  const { Agent, ProxyAgent } = await loadUndici();
  return proxyUrl.startsWith("socks5:") ? socks5Agent(Agent, proxyUrl, tls) : new ProxyAgent({ uri: proxyUrl, requestTls: tls });
}
