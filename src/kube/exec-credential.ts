// A kubeconfig user's `exec` credential plugin, run the way kubectl (client-go) runs it.
//
// Why not client-node's ExecAuth: it runs the plugin outside any request deadline, keeps its
// stderr to itself (a "open this URL and enter the code" prompt is never seen), spawns it
// once per concurrent request at each expiry, and never refreshes a token that has no
// expirationTimestamp. Here: one run at a time shared by every request that waits for it
// (single flight), bounded by the signal of the request that started it (the plugin is
// killed when that request's deadline passes), stderr passed straight through to ours, stdin
// too when it is a terminal (kubectl's interactiveMode IfAvailable), and invalidate() for the
// caller to drop a token the API server refused with 401.
import { spawn } from "node:child_process";
import { untilAborted } from "../util/timers.ts";

/** The `exec` stanza of a kubeconfig user (kubeconfig.ts parses it). */
export interface ExecConfig {
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  apiVersion?: string;
  interactiveMode?: string;
  /** Shown when the command is not found, as kubectl does. */
  installHint?: string;
}

export interface ExecCredential {
  token?: string;
  /** PEM client certificate and key, when the plugin returns those instead of (or with) a token. */
  cert?: string;
  key?: string;
  /** ms since the epoch; undefined: valid until the API server refuses it. */
  expiresAt?: number;
}

/** The plugin failed: it could not start, exited non-zero, printed no credential, or ran past the deadline. */
export class ExecCredentialError extends Error {
  override name = "ExecCredentialError";
}

export class ExecCredentialProvider {
  readonly #exec: ExecConfig;
  #cached: ExecCredential | undefined;
  #inflight: Promise<ExecCredential> | undefined;

  constructor(exec: ExecConfig) {
    this.#exec = exec;
  }

  /** A valid credential: the cached one, the run in flight, or a new run bounded by `signal`. */
  get(signal?: AbortSignal): Promise<ExecCredential> {
    const cached = this.#cached;
    if (cached && (cached.expiresAt === undefined || cached.expiresAt > Date.now())) return Promise.resolve(cached);
    if (!this.#inflight) {
      const run = this.#run(signal);
      this.#inflight = run;
      run.then(
        (cred) => {
          if (this.#inflight === run) this.#cached = cred;
        },
        () => {},
      ).finally(() => {
        if (this.#inflight === run) this.#inflight = undefined;
      });
    }
    return untilAborted(this.#inflight, signal);
  }

  /** Forgets the cached credential if it is still the one with `token` (the API server refused it). */
  invalidate(token: string): void {
    if (this.#cached?.token === token) this.#cached = undefined;
  }

  #run(signal: AbortSignal | undefined): Promise<ExecCredential> {
    const exec = this.#exec;
    const interactive = exec.interactiveMode !== "Never" && process.stdin.isTTY === true;
    const apiVersion = exec.apiVersion || "client.authentication.k8s.io/v1";
    const env: Record<string, string | undefined> = {
      ...process.env,
      KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion, kind: "ExecCredential", spec: { interactive } }),
    };
    for (const e of exec.env ?? []) env[e.name] = e.value;
    return new Promise<ExecCredential>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const child = spawn(exec.command, exec.args ?? [], { env, stdio: [interactive ? "inherit" : "ignore", "pipe", "inherit"] });
      let stdout = "";
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => {
        child.kill("SIGTERM");
        finish(() => reject(signal?.reason));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (chunk: string) => {
        stdout += chunk;
      });
      child.on("error", (err) => {
        const hint = (err as { code?: unknown }).code === "ENOENT" && exec.installHint ? `\n${exec.installHint.trim()}` : "";
        finish(() => reject(new ExecCredentialError(`cannot run the kubeconfig exec plugin ${exec.command}: ${err.message}${hint}`, { cause: err })));
      });
      child.on("close", (code, sig) => {
        if (code !== 0) {
          finish(() => reject(new ExecCredentialError(`the kubeconfig exec plugin ${exec.command} ${code === null ? `was killed (${sig})` : `exited with code ${code}`}; its messages are above`)));
          return;
        }
        finish(() => {
          try {
            resolve(parseExecCredential(stdout, exec.command));
          } catch (err) {
            reject(err);
          }
        });
      });
    });
  }
}

/** The credential in a plugin's ExecCredential output. */
export function parseExecCredential(stdout: string, command: string): ExecCredential {
  let obj: { kind?: unknown; status?: Record<string, unknown> };
  try {
    obj = JSON.parse(stdout) as typeof obj;
  } catch {
    throw new ExecCredentialError(`the kubeconfig exec plugin ${command} printed no ExecCredential JSON on stdout`);
  }
  const status = obj?.status;
  if (obj?.kind !== "ExecCredential" || !status || typeof status !== "object") {
    throw new ExecCredentialError(`the kubeconfig exec plugin ${command} printed no ExecCredential with a status`);
  }
  const cred: ExecCredential = {};
  if (typeof status.token === "string" && status.token) cred.token = status.token;
  if (typeof status.clientCertificateData === "string" && typeof status.clientKeyData === "string") {
    cred.cert = status.clientCertificateData;
    cred.key = status.clientKeyData;
  }
  if (!cred.token && !cred.cert) throw new ExecCredentialError(`the kubeconfig exec plugin ${command} returned neither a token nor a client certificate`);
  if (typeof status.expirationTimestamp === "string") {
    const at = Date.parse(status.expirationTimestamp);
    if (Number.isNaN(at)) throw new ExecCredentialError(`the kubeconfig exec plugin ${command} returned an invalid expirationTimestamp`);
    cred.expiresAt = at;
  }
  return cred;
}

