// A cluster's `socks5://` proxy-url under Node and Deno: an undici Agent whose connections are
// tunnelled through the SOCKS5 proxy (RFC 1928; username/password from the URL, RFC 1929),
// with the cluster's TLS on top.
//
// Why not undici's own Socks5ProxyAgent: it sets the TLS server name to the API server's host
// even when that is an IP address, which Deno refuses ("options.servername must not be an IP
// address") and Node deprecates; and it prints an experimental warning on first use.
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { Agent, buildConnector } from "undici";
import type { H2Tls } from "./h2.ts";

const REPLIES: Readonly<Record<number, string>> = {
  1: "general failure",
  2: "connection not allowed by its rules",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

/** How long connecting through the proxy may take (undici's own connect timeout). */
const CONNECT_TIMEOUT_MS = 10_000;

/** An undici Agent (of the class given: undici loads lazily) that reaches every origin through the SOCKS5 proxy at `proxyUrl`. */
export function socks5Agent(AgentClass: typeof Agent, proxyUrl: string, tls: H2Tls): Agent {
  const proxy = new URL(proxyUrl);
  const connect: buildConnector.connector = (opts, callback) => {
    const port = Number(opts.port) || (opts.protocol === "https:" ? 443 : 80);
    const host = unbracket(opts.hostname);
    const socket = netConnect(Number(proxy.port) || 1080, unbracket(proxy.hostname));
    socket.setKeepAlive(true, 30_000);
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy(new Error(`no connection through the SOCKS5 proxy ${proxy.host} within ${CONNECT_TIMEOUT_MS / 1000} s`)));
    const fail = (err: Error) => {
      socket.destroy();
      callback(err, null);
    };
    socks5Handshake(socket, proxy, host, port).then(() => {
      if (opts.protocol !== "https:") {
        socket.setTimeout(0);
        callback(null, socket);
        return;
      }
      // No SNI for an IP address (RFC 6066); `host` is what the certificate is checked against then.
      const servername = tls.servername ?? (isIP(host) ? undefined : host);
      const secure = tlsConnect({ ...tls, socket, host, ...(servername ? { servername } : {}) });
      secure.once("error", fail);
      secure.once("secureConnect", () => {
        secure.off("error", fail);
        socket.setTimeout(0);
        callback(null, secure);
      });
    }, fail);
  };
  return new AgentClass({ connect });
}

/** Greets the proxy, authenticates if the URL has credentials, and asks it to CONNECT to host:port. */
async function socks5Handshake(socket: Socket, proxy: URL, host: string, port: number): Promise<void> {
  const read = (n: number) => readBytes(socket, n, `the SOCKS5 proxy ${proxy.host}`);
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  socket.write(Buffer.from(user ? [5, 2, 0, 2] : [5, 1, 0]));
  const [version, method] = await read(2);
  if (version !== 5) throw new Error(`the proxy at ${proxy.host} is not a SOCKS5 proxy`);
  if (method === 2) {
    socket.write(Buffer.concat([Buffer.from([1, Buffer.byteLength(user)]), Buffer.from(user), Buffer.from([Buffer.byteLength(pass)]), Buffer.from(pass)]));
    if ((await read(2))[1] !== 0) throw new Error(`the SOCKS5 proxy ${proxy.host} refused the username and password of the proxy-url`);
  } else if (method !== 0) {
    throw new Error(`the SOCKS5 proxy ${proxy.host} wants an authentication method oz-worker does not offer${user ? "" : "; put a username and password in the proxy-url"}`);
  }
  const ipv = isIP(host);
  const address =
    ipv === 4
      ? Buffer.from([1, ...host.split(".").map(Number)])
      : ipv === 6
        ? Buffer.concat([Buffer.from([4]), ipv6Bytes(host)])
        : Buffer.concat([Buffer.from([3, Buffer.byteLength(host)]), Buffer.from(host)]);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  socket.write(Buffer.concat([Buffer.from([5, 1, 0]), address, portBytes]));
  const head = await read(4);
  if (head[1] !== 0) throw new Error(`the SOCKS5 proxy ${proxy.host} could not connect to ${host}:${port}: ${REPLIES[head[1]!] ?? `reply ${head[1]}`}`);
  // The bound address that follows: IPv4, a length-prefixed name, or IPv6; then the port.
  const rest = head[3] === 1 ? 4 : head[3] === 4 ? 16 : (await read(1))[0]!;
  await read(rest + 2);
}

/** The next n bytes of `socket`, read in paused mode so that nothing after the handshake is consumed. */
function readBytes(socket: Socket, n: number, what: string): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const cleanup = () => {
      socket.off("readable", attempt);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onError);
    };
    const attempt = () => {
      const chunk = socket.read(n) as Buffer | null;
      if (chunk === null) return;
      cleanup();
      if (chunk.length < n) reject(new Error(`${what} closed the connection during the handshake`));
      else resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`${what} closed the connection during the handshake`));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    socket.on("readable", attempt);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onError);
    attempt();
  });
}

/** A URL's hostname keeps an IPv6 address in brackets. */
const unbracket = (hostname: string) => hostname.replace(/^\[(.*)\]$/, "$1");

function ipv6Bytes(host: string): Buffer {
  const [head = "", tail = ""] = host.split("::");
  const groups = (s: string) => (s ? s.split(":") : []);
  const h = groups(head);
  const t = groups(tail);
  const all = host.includes("::") ? [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t] : h;
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16) || 0, i * 2));
  return out;
}
