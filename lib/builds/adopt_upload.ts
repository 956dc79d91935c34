/**
 * @module How the commit job (jobs/commit.ts) takes a build's uploaded objects into its build
 * repository: it checks that every object of the commits is there, in the upload repository or
 * the main one (the parent of both), then moves the upload's object directories into the build
 * repository, a rename each, where flat-manager pulls them over object by object (§6.1). Every
 * object reached the upload repository through the verifier of the upload route (it hashes to
 * its name) or ostree's own writes (bundle imports), so there is nothing to checksum again.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  commitObjects,
  findObject,
  type RepoChain,
} from "../ostree/object_graph.ts";

/**
 * Throws unless every object of `commits` is in one of `repos`: the metadata objects (read
 * along the way) and each `.filez` their dirtrees name. Names the first missing object.
 */
export async function checkComplete(
  repos: RepoChain,
  commits: readonly string[],
): Promise<void> {
  const { files } = await commitObjects(repos, commits);
  for (const name of files) {
    if (findObject(repos, name) === undefined) {
      throw new Error(`Cannot find object "${name}": the upload is incomplete`);
    }
  }
}

/**
 * Moves the objects of the repository `upload` into the repository `root`: each `objects/XX`
 * directory `root` lacks is renamed over whole, and the files of one it has are renamed one by
 * one (an object `root` already has stays as it is). Returns the objects and directories moved.
 */
export function adoptUploadedObjects(upload: string, root: string): number {
  const from = join(upload, "objects");
  const to = join(root, "objects");
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(from)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0; // nothing was uploaded
    throw err;
  }
  let moved = 0;
  for (const dir of entries) {
    if (!dir.isDirectory || !/^[0-9a-f]{2}$/.test(dir.name)) continue;
    const src = join(from, dir.name);
    const dst = join(to, dir.name);
    if (!existsSync(dst)) {
      Deno.renameSync(src, dst);
      moved++;
      continue;
    }
    for (const f of Deno.readDirSync(src)) {
      if (!f.isFile || existsSync(join(dst, f.name))) continue;
      Deno.renameSync(join(src, f.name), join(dst, f.name));
      moved++;
    }
  }
  return moved;
}
