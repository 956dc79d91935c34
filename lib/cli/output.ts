/** @module Plain output for CLI subcommands (app code logs structured lines instead). */
const encoder = new TextEncoder();

/** Writes a line to stdout. */
export function print(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/** Writes a line to stderr. */
export function printErr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}
