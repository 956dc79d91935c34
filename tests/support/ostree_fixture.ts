/**
 * @module A small archive repo committed by real `ostree`, and a subprocess helper that runs
 * commands in an empty environment, with optional stdin, for the lib/ostree tests.
 */
import { join } from "node:path";

/** A UTF-8 string beyond ASCII, for string values and commit bodies. */
export const utf8 = "héllo, wörld ✓ 🚀 日本語";

/** Runs a command to completion; throws with its stderr unless it succeeds. */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    env: opts.env ?? {},
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(opts.stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${text(out.stderr)}`);
  }
  return text(out.stdout);
}

/** The repo {@link ostreeRepo} makes. `await using` it to remove its temp dir. */
export interface OstreeRepo extends AsyncDisposable {
  /** The temp dir holding `tree` and `repo`. */
  dir: string;
  /** The committed tree: `hello.txt`, `sub/a.txt` and a symlink `link`. */
  tree: string;
  /** Path of the archive-z2 repository. */
  repo: string;
  /** Checksum of the commit on `test/x`. */
  commit: string;
  /** Path of the object `csum` with extension `ext` (`commit`, `dirtree`, …). */
  object: (csum: string, ext: string) => string;
}

/** A fresh archive repo in a temp dir with one commit of a small tree on `test/x`. */
export async function ostreeRepo(): Promise<OstreeRepo> {
  const dir = await Deno.makeTempDir({ prefix: "ostree-fixture-" });
  const tree = join(dir, "tree"), repo = join(dir, "r");
  await Deno.mkdir(join(tree, "sub"), { recursive: true });
  await Deno.writeTextFile(join(tree, "hello.txt"), "hi\n");
  await Deno.writeTextFile(join(tree, "sub", "a.txt"), "a\n");
  await Deno.symlink("hello.txt", join(tree, "link"));
  await run("ostree", ["init", "--mode=archive-z2", `--repo=${repo}`]);
  const commit = (await run("ostree", [
    `--repo=${repo}`,
    "commit",
    "-b",
    "test/x",
    `--tree=dir=${tree}`,
    "-s",
    "subj",
    "-m",
    utf8,
    "--add-metadata-string=version=1.0",
  ])).trim();
  const object = (csum: string, ext: string) =>
    join(repo, "objects", csum.slice(0, 2), `${csum.slice(2)}.${ext}`);
  return {
    dir,
    tree,
    repo,
    commit,
    object,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Every loose object of `repo` as `XX/<rest>.<ext>`, sorted. */
export async function objectFiles(repo: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of Deno.readDir(join(repo, "objects"))) {
    for await (const f of Deno.readDir(join(repo, "objects", d.name))) {
      out.push(`${d.name}/${f.name}`);
    }
  }
  return out.sort();
}

/** Writes `<dir>/tree`: 20 small files in `bin/` and one in `bin/sub/`; returns its path. */
export async function writeSmallTree(dir: string): Promise<string> {
  const tree = join(dir, "tree");
  await Deno.mkdir(join(tree, "bin", "sub"), { recursive: true });
  for (let i = 0; i < 20; i++) {
    await Deno.writeTextFile(join(tree, "bin", `f${i}`), `file ${i}\n`);
  }
  await Deno.writeTextFile(join(tree, "bin", "sub", "x"), "deep\n");
  return tree;
}
