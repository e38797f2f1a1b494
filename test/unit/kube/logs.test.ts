// The tail of a container log (src/kube/logs.ts TailBuffer): the cut that keeps the last
// maxBytes must not leave part of a registered secret at its edge, where the redactor, which
// matches whole values, can no longer find it.
import { describe, expect, test } from "bun:test";
import { TailBuffer, truncationMarker } from "../../../src/kube/logs.ts";
import { MIN_SECRET_LENGTH, REDACTED, SecretRegistry } from "../../../src/telemetry/secrets.ts";

const TOKEN = "ghp_4Tq9ZxVbN2mLpR7sW1yK8dHcJ3fUeA6o"; // 36 characters
const encoder = new TextEncoder();

/** Every substring of `secret` of at least MIN_SECRET_LENGTH characters found in `text`. */
function leakedFragments(text: string, secret: string): string[] {
  const found: string[] = [];
  for (let len = MIN_SECRET_LENGTH; len <= secret.length; len++) {
    for (let i = 0; i + len <= secret.length; i++) if (text.includes(secret.slice(i, i + len))) found.push(secret.slice(i, i + len));
  }
  return found;
}

describe("TailBuffer cut and secrets", () => {
  // Issue 15 item 7: a 1 MiB cut landing mid-token left 22 of its 32 characters in the log.
  test("a cut through a registered secret leaves no part of it, at every cut position", () => {
    const registry = new SecretRegistry();
    registry.register(TOKEN);
    const log = `export GITHUB_TOKEN=${TOKEN}\nstep 2 failed\n`;
    const start = log.indexOf(TOKEN);
    for (let cut = start + 1; cut < start + TOKEN.length; cut++) {
      const tail = new TailBuffer(log.length - cut);
      // Two chunks, split inside the token too.
      tail.push(encoder.encode(log.slice(0, start + 5)));
      tail.push(encoder.encode(log.slice(start + 5)));
      const text = tail.text(registry);
      const body = text.slice(text.indexOf("\n") + 1);
      expect(text.startsWith(truncationMarker(cut))).toBe(true);
      // What the logger writes: whole values redacted.
      const written = registry.redact(text);
      const fragments = leakedFragments(written, TOKEN);
      if (fragments.length > 0) throw new Error(`cut at ${cut}: ${JSON.stringify(fragments[0])} of the token is in ${JSON.stringify(written)}`);
      expect(body.endsWith("step 2 failed\n")).toBe(true);
      if (cut - start <= TOKEN.length - MIN_SECRET_LENGTH) expect(body.startsWith(REDACTED)).toBe(true);
    }
  });

  test("a cut elsewhere keeps the text as it is", () => {
    const registry = new SecretRegistry();
    registry.register(TOKEN);
    const tail = new TailBuffer(10);
    tail.push(encoder.encode("0123456789abcdefghij"));
    expect(tail.text(registry)).toBe(`${truncationMarker(10)}\nabcdefghij`);
    const whole = new TailBuffer(100);
    whole.push(encoder.encode(`x ${TOKEN.slice(1)}`));
    // Nothing was cut, so nothing at the start is a partial secret.
    expect(whole.text(registry)).toBe(`x ${TOKEN.slice(1)}`);
  });
});
