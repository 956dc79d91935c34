/**
 * @module Subprocess helper for the flatpak fixture builder: runs a tool to completion and fails
 * with its command line and stderr tail, so a broken fixture build says which step broke.
 */

/** Options for {@link exec}. */
export interface ExecOptions {
  /** Variables added to (or overriding) the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
}

/** Runs `program args…`; resolves with stdout, or throws naming the command and its stderr. */
export async function exec(
  program: string,
  args: string[],
  opts: ExecOptions = {},
): Promise<string> {
  const out = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  }).output();
  const decoder = new TextDecoder();
  if (!out.success) {
    const tail = decoder.decode(out.stderr).trim().split("\n").slice(-15);
    throw new Error(
      `Command "${program} ${args.join(" ")}" exited with ${out.code}:\n${
        tail.join("\n")
      }`,
    );
  }
  return decoder.decode(out.stdout);
}
