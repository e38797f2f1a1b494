export interface RedactUrlOptions {
  /** Also drop the query (it may carry tokens); default false. */
  dropQuery?: boolean;
  /** What an unparseable URL becomes; default "<invalid url>". */
  invalid?: string;
}

/** The URL without user info (and, if asked, without its query), for logs. */
export function redactUrl(url: string, options: RedactUrlOptions = {}): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = "";
      u.password = "";
    }
    if (options.dropQuery) u.search = "";
    return u.toString();
  } catch {
    return options.invalid ?? "<invalid url>";
  }
}

/**
 * Percent-decodes `s`, or returns it unchanged when it is not valid percent-encoding.
 * `plusAsSpace` decodes `+` as a space, as form encoding (application/x-www-form-urlencoded) does.
 */
export function safeDecode(s: string, options: { plusAsSpace?: boolean } = {}): string {
  try {
    return decodeURIComponent(options.plusAsSpace ? s.replace(/\+/g, " ") : s);
  } catch {
    return s;
  }
}
