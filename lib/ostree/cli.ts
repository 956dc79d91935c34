/**
 * @module Runs Debian's `ostree` and `flatpak` CLIs (ARCHITECTURE.md §5: the real tools where the
 * work is big), with output captured line by line into a job log and a clear error on failure.
 */

/** Thrown when a command exits non-zero; the message carries its stderr's tail. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number,
    readonly stderr: string,
  ) {
    super(
      `Command "${command}" exited with ${code}: ${
        stderr.trim().split("\n").slice(-5).join(" | ")
      }`,
    );
    this.name = "CommandError";
  }
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Receives each output line (stdout and stderr) as it arrives. */
  log?: (line: string) => Promise<void> | void;
  env?: Record<string, string>;
  /** Start from an empty environment: only `env` reaches the program. */
  clearEnv?: boolean;
  cwd?: string;
}

async function pump(
  stream: ReadableStream<Uint8Array>,
  sink: (line: string) => Promise<void> | void,
  keep: string[],
) {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      keep.push(line);
      await sink(line);
    }
  }
  if (buf) {
    keep.push(buf);
    await sink(buf);
  }
}

/** Runs `program args…`; resolves with stdout, or throws a {@link CommandError}. */
export async function run(
  program: string,
  args: string[],
  opts: RunOptions = {},
): Promise<string> {
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.clearEnv ? { clearEnv: true } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  }).spawn();
  const out: string[] = [];
  const err: string[] = [];
  const sink = opts.log ?? (() => {});
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout, sink, out),
    pump(child.stderr, sink, err),
  ]);
  if (!status.success) {
    throw new CommandError(
      `${program} ${args.join(" ")}`,
      status.code,
      err.join("\n"),
    );
  }
  return out.join("\n");
}

/** `ostree <args> --repo=<repo>`. */
export function ostree(
  repo: string,
  args: string[],
  opts?: RunOptions,
): Promise<string> {
  return run("ostree", [...args, `--repo=${repo}`], opts);
}
