import type { LogFields, Logger } from "../../../../src/telemetry/log.ts";

export interface CapturedLine {
  level: "debug" | "info" | "warn" | "error";
  msg: string;
  fields: LogFields;
}

/** A Logger that records lines in memory. */
export function memoryLogger(lines: CapturedLine[] = [], bound: LogFields = {}): Logger & { lines: CapturedLine[] } {
  const at =
    (level: CapturedLine["level"]) =>
    (msg: string, fields?: LogFields): void => {
      lines.push({ level, msg, fields: { ...bound, ...fields } });
    };
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (fields) => memoryLogger(lines, { ...bound, ...fields }),
    withTask: (ids) => memoryLogger(lines, { ...bound, task_id: ids.task_id, execution_id: ids.execution_id || ids.task_id }),
  };
}
