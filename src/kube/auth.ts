// The request headers of a kubeconfig user, as client-go sets them: a bearer token (static,
// from a token file re-read as it rotates, or an oidc auth-provider's id-token), basic auth,
// and impersonation. Client certificates are TLS (tls.ts); exec plugins are exec-credential.ts.
import { readFileSync } from "node:fs";
import type { KubeUser } from "./kubeconfig-file.ts";
import { KubeconfigError } from "./kubeconfig.ts";
import { describeError } from "../util/errors.ts";

/** How long a token file's content is used before it is read again (client-go: one minute). */
export const TOKEN_FILE_REREAD_MS = 60_000;

export class UserAuth {
  readonly #user: KubeUser | undefined;
  readonly #source: string;
  readonly #now: () => number;
  /** Basic auth and impersonation: fixed for the user. */
  readonly #fixed: Record<string, string> = {};
  #fileToken: { value: string; readAt: number } | undefined;
  /** The oidc id-token's `exp` in ms, if it has one. */
  readonly #oidcExpiresAt: number | undefined;

  constructor(user: KubeUser | undefined, source: string, now: () => number = Date.now) {
    this.#user = user;
    this.#source = source;
    this.#now = now;
    if (!user) return;
    if (user.username || user.password) this.#fixed.Authorization = `Basic ${Buffer.from(`${user.username ?? ""}:${user.password ?? ""}`).toString("base64")}`;
    if (user.impersonate) this.#fixed["Impersonate-User"] = user.impersonate;
    if (user.impersonateUid) this.#fixed["Impersonate-Uid"] = user.impersonateUid;
    const group = user.impersonateGroups?.[0];
    if (group) this.#fixed["Impersonate-Group"] = group;
    for (const [key, values] of Object.entries(user.impersonateExtra ?? {})) {
      // The key is percent-encoded as client-go does (header names cannot carry every character).
      if (values[0] !== undefined) this.#fixed[`Impersonate-Extra-${encodeURIComponent(key)}`] = values[0];
    }
    const idToken = user.authProvider?.name === "oidc" ? user.authProvider.config["id-token"] : undefined;
    if (idToken) this.#oidcExpiresAt = jwtExpiry(idToken);
  }

  #last: { token: string | undefined; headers: Readonly<Record<string, string>> } | undefined;

  /** The headers of a request now (not to be modified); throws KubeconfigError when no usable token can be had. */
  headers(): Readonly<Record<string, string>> {
    const token = this.#token();
    if (!this.#last || this.#last.token !== token) this.#last = { token, headers: token ? { ...this.#fixed, Authorization: `Bearer ${token}` } : this.#fixed };
    return this.#last.headers;
  }

  #token(): string | undefined {
    const user = this.#user;
    if (!user) return undefined;
    // client-go: the tokenFile's last successful read takes precedence over `token`.
    if (user.tokenFile) return this.#readTokenFile(user.tokenFile, user.token);
    if (user.token) return user.token;
    const idToken = user.authProvider?.config["id-token"];
    if (idToken) {
      if (this.#oidcExpiresAt !== undefined && this.#oidcExpiresAt <= this.#now()) {
        throw new KubeconfigError(
          `user ${user.name} (${user.origin}): the oidc auth-provider's id-token expired at ${new Date(this.#oidcExpiresAt).toISOString()}; ` +
            `oz-worker does not refresh oidc tokens: log in again (kubectl gets a new one), or better, use an exec plugin such as kubelogin ` +
            `(https://github.com/int128/kubelogin), which refreshes it for every request`,
          this.#source,
        );
      }
      return idToken;
    }
    return undefined;
  }

  #readTokenFile(file: string, fallback: string | undefined): string {
    const now = this.#now();
    const cached = this.#fileToken;
    if (cached && now - cached.readAt < TOKEN_FILE_REREAD_MS) return cached.value;
    let value: string;
    try {
      value = readFileSync(file, "utf8").trim();
    } catch (err) {
      // A file being replaced: keep the last token read (client-go does the same).
      const last = cached?.value ?? fallback;
      if (last) return last;
      throw new KubeconfigError(`user ${this.#user!.name} (${this.#user!.origin}): cannot read its tokenFile ${file}: ${describeError(err)}`, this.#source, {
        cause: err,
      });
    }
    if (!value && (cached?.value ?? fallback)) return (cached?.value ?? fallback)!;
    this.#fileToken = { value, readAt: now };
    return value;
  }
}

/** The `exp` claim of a JWT in ms since the epoch; undefined if it is not a JWT or has none. */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (!payload || token.split(".").length !== 3) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
