/**
 * @module Reading and restoring refs of an archive repository, and signing the commits a step
 * produced. A failed publish puts the main repository's refs back exactly as they were, so what
 * clients see (and the next summary) never includes half a publish.
 */
import { join } from "node:path";
import { objectPath, signCommit } from "../ostree/sign.ts";
import type { Signer } from "../pgp/keys.ts";

/** The commit of `ref` in `repo`, or null when the ref does not exist. */
export async function readRef(
  repo: string,
  ref: string,
): Promise<string | null> {
  try {
    return (await Deno.readTextFile(join(repo, "refs", "heads", ref))).trim();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/** Points `ref` at `commit` (null: deletes the ref), atomically. */
export async function writeRef(
  repo: string,
  ref: string,
  commit: string | null,
): Promise<void> {
  const path = join(repo, "refs", "heads", ref);
  if (commit === null) {
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    return;
  }
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, commit + "\n");
  await Deno.rename(tmp, path);
}

/**
 * Every ref of the repository under `refs/heads`, as `ostree refs` lists them (without the
 * remote ones), read from the directory: one subprocess less per use (10 ms each).
 */
export async function listRefs(repo: string): Promise<string[]> {
  const refs: string[] = [];
  const walk = async (rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(
        Deno.readDir(join(repo, "refs", "heads", rel)),
      );
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    for (const e of entries) {
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else refs.push(path);
    }
  };
  await walk("");
  return refs.sort();
}

/**
 * Signs the tips of the refs matching `prefixes` whose commit has no detached metadata yet:
 * fresh commits from `flatpak build-commit-from`/`build-update-repo`, which Flatyard runs
 * without keys. Returns the commits it signed.
 */
export async function signUnsignedTips(
  repo: string,
  prefixes: string[],
  signer: Signer,
): Promise<string[]> {
  const signed: string[] = [];
  for (const ref of await listRefs(repo)) {
    if (!prefixes.some((p) => ref.startsWith(p))) continue;
    const commit = await readRef(repo, ref);
    if (!commit || signed.includes(commit)) continue;
    try {
      await Deno.stat(objectPath(repo, commit, "commitmeta"));
      continue;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    await signCommit(repo, commit, signer);
    signed.push(commit);
  }
  return signed;
}
