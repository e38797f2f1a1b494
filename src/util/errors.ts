/** An error's message (or the value as text): the short form for log fields and messages. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A one-line description of a thrown value, including nested causes' codes. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const parts = [err.message || err.name];
  let cause: unknown = (err as { cause?: unknown }).cause;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && !err.message.includes(code)) parts.push(code);
  for (let i = 0; cause instanceof Error && i < 3; i++) {
    const c = cause as Error & { code?: unknown };
    parts.push(typeof c.code === "string" && !c.message.includes(c.code) ? `${c.message} (${c.code})` : c.message);
    cause = (c as { cause?: unknown }).cause;
  }
  return parts.filter(Boolean).join(": ");
}
