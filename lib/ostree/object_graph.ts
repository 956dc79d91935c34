/**
 * @module The object graph of commits in archive-z2 OSTree repositories, read natively: each
 * commit's `.dirtree`/`.dirmeta` metadata objects and the `.filez` objects its dirtrees name.
 * Objects are looked up along a chain of repositories, as libostree follows `core.parent`: the
 * first that has one. The push client reads its local repository with it
 * (lib/client/local_repo.ts); the commit job checks an upload is complete before adopting it
 * (lib/builds/adopt_upload.ts).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { decode } from "./gvariant.ts";

const COMMIT = "(a{sv}aya(say)sstayay)";
const DIRTREE = "(a(say)a(sayay))";

/** A repository, or repositories searched in order (a repository, then its parent). */
export type RepoChain = string | readonly string[];

/** Lowercase hex of `b`. */
export const hex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function checksum(bytes: unknown, what: string): string {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) {
    throw new Error(`Cannot read ${what}: not a 32-byte checksum`);
  }
  return hex(bytes);
}

/** `objects/XX/<rest>.<ext>` of an object name `<64 hex>.<ext>`. */
export function objectPath(repoPath: string, name: string): string {
  return join(repoPath, "objects", name.slice(0, 2), name.slice(2));
}

/** The first repository of `repos` that has the object `name`, or undefined. */
export function findObject(repos: RepoChain, name: string): string | undefined {
  for (const repo of typeof repos === "string" ? [repos] : repos) {
    if (existsSync(objectPath(repo, name))) return repo;
  }
  return undefined;
}

async function readObject(repos: RepoChain, name: string): Promise<Uint8Array> {
  const chain = typeof repos === "string" ? [repos] : repos;
  for (const repo of chain) {
    try {
      return await Deno.readFile(objectPath(repo, name));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  throw new Error(
    `Cannot find object "${name}" in repo "${chain.join('" or "')}"`,
  );
}

/** The file entries `[name, checksum]` and subdirectories `[name, tree, meta]` of a dirtree. */
export async function readDirtree(
  repos: RepoChain,
  checksumHex: string,
): Promise<{ files: string[]; dirs: [string, string][] }> {
  const name = `${checksumHex}.dirtree`;
  const [files, dirs] = decode(DIRTREE, await readObject(repos, name)) as [
    [string, Uint8Array][],
    [string, Uint8Array, Uint8Array][],
  ];
  return {
    files: files.map(([, c]) => checksum(c, name)),
    dirs: dirs.map(([, t, m]) => [checksum(t, name), checksum(m, name)]),
  };
}

/**
 * The parent of `commit` as `ostree rev-parse <commit>^` gives it: undefined when the commit has
 * none, or when its object is not in the repository (pruned).
 */
export async function commitParent(
  repos: RepoChain,
  commit: string,
): Promise<string | undefined> {
  const name = `${commit}.commit`;
  let bytes: Uint8Array;
  try {
    bytes = await readObject(repos, name);
  } catch {
    return undefined;
  }
  const parent = (decode(COMMIT, bytes) as unknown[])[1];
  return parent instanceof Uint8Array && parent.length === 0
    ? undefined
    : checksum(parent, name);
}

/**
 * The metadata objects of `commits`, in discovery order without duplicates (§5.2 step 3):
 * `<commit>.commit`, then depth first from the root each `.dirmeta` and `.dirtree`. A dirtree
 * already seen is not walked again, as in the Python client's `local_needed_metadata_dirtree`.
 * With them, what {@link fileObjects} gives for them, from the same reading of each dirtree.
 */
export async function commitObjects(
  repos: RepoChain,
  commits: Iterable<string>,
): Promise<{ metadata: string[]; files: string[] }> {
  const objects = new Set<string>();
  const files = new Set<string>();
  const walk = async (tree: string, meta: string): Promise<void> => {
    objects.add(`${meta}.dirmeta`);
    if (objects.has(`${tree}.dirtree`)) return;
    objects.add(`${tree}.dirtree`);
    // Files in the order fileObjects lists them: dirtrees in discovery order.
    const dirtree = await readDirtree(repos, tree);
    for (const f of dirtree.files) files.add(`${f}.filez`);
    for (const [t, m] of dirtree.dirs) await walk(t, m);
  };
  for (const rev of commits) {
    const name = `${rev}.commit`;
    objects.add(name);
    const fields = decode(
      COMMIT,
      await readObject(repos, name),
    ) as unknown[];
    await walk(checksum(fields[6], name), checksum(fields[7], name));
  }
  return { metadata: [...objects], files: [...files] };
}

/** The metadata objects of `commits` ({@link commitObjects}). */
export async function metadataObjects(
  repos: RepoChain,
  commits: Iterable<string>,
): Promise<string[]> {
  return (await commitObjects(repos, commits)).metadata;
}

/**
 * The `.filez` objects named by every `.dirtree` among `metadata` (§5.2 step 5: all of them,
 * not just the ones the server lacks), in order without duplicates.
 */
export async function fileObjects(
  repos: RepoChain,
  metadata: Iterable<string>,
): Promise<string[]> {
  const objects = new Set<string>();
  for (const name of metadata) {
    if (!name.endsWith(".dirtree")) continue;
    const { files } = await readDirtree(repos, name.slice(0, -8));
    for (const f of files) objects.add(`${f}.filez`);
  }
  return [...objects];
}
