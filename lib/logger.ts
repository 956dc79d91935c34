/**
 * @module Structured JSON logging: one line per event on stderr, filtered by level. App code logs
 * through a {@link Logger} passed in `Deps`, never through `console`.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

/** A structured logger; `child` adds fields to every line it writes. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /** Whether lines at `level` are written: skip building costly fields for dropped lines. */
  enabled(level: LogLevel): boolean;
}

const rank: Record<LogLevel, number> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
};

/** A sink receives each finished record; the default writes JSON lines to stderr. */
export type LogSink = (record: LogFields) => void;

const encoder = new TextEncoder();
const stderrSink: LogSink = (record) => {
  Deno.stderr.writeSync(encoder.encode(JSON.stringify(record) + "\n"));
};

/** Creates a logger writing records at or above `level` to `sink`. */
export function createLogger(
  level: LogLevel,
  sink: LogSink = stderrSink,
  base: LogFields = {},
): Logger {
  const write = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (rank[lvl] < rank[level]) return;
    sink({
      time: new Date().toISOString(),
      level: lvl,
      msg,
      ...base,
      ...fields,
    });
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (fields) => createLogger(level, sink, { ...base, ...fields }),
    enabled: (lvl) => rank[lvl] >= rank[level],
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger("error", () => {});

/** Serializes an unknown thrown value for a log line; stacks only where asked (≥500 errors). */
export function errorFields(err: unknown, withStack = false): LogFields {
  if (err instanceof Error) {
    return withStack
      ? { error: err.message, errorName: err.name, stack: err.stack }
      : { error: err.message, errorName: err.name };
  }
  return { error: String(err) };
}
