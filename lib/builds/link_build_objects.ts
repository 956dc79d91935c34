/**
 * @module How the publish job (jobs/publish.ts) brings a committed build's objects into the main
 * repository: a hard link per object of the build's commits that the main repository lacks,
 * found by reading the commits' dirtrees natively. `flatpak build-commit-from --src-repo` did
 * the same through libostree's pull, which also re-reads every object's size for
 * `xa.download-size`: 0.65–0.74 s for an app of 5,000 files, against 0.03–0.07 s for the links
 * and 0.05 s for the commit made from the linked one (bench/upload.ts). The objects were
 * verified when they were uploaded (routes/flat_manager/upload.ts) and the build repository is
 * archive-z2 like the main one, so the bytes can be shared as they are, as `ostree pull-local`
 * does. Across file systems each object is copied instead (through the main repository's
 * `tmp/`, renamed into place).
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { commitObjects, objectPath } from "../ostree/object_graph.ts";

/**
 * Links into `main` every object of `commits` (the commit objects, their dirtrees, dirmetas and
 * files) that `main` lacks, taking it from `build`, whose objects are the build's own: the rest
 * are the main repository's already (the build repository's parent). Returns the number of
 * objects added; throws, naming it, when an object is in neither.
 *
 * Objects added stay if the publish fails later: they are unreferenced, as a failed pull's are,
 * until a prune, and another build may have been told by `missing_objects` (which looks in the
 * main repository) that it need not upload them.
 */
export async function linkBuildObjects(
  build: string,
  main: string,
  commits: readonly string[],
): Promise<number> {
  const { metadata, files } = await commitObjects([build, main], commits);
  let added = 0;
  // Files first, then the metadata from the leaves up to the commits (the reverse of the order
  // they were found in): a dirtree or commit in the main repository always has what it names,
  // even when this stops half way. One link(2) per object: it fails with EEXIST for one the
  // main repository has.
  for (const name of [...files, ...metadata.toReversed()]) {
    const from = objectPath(build, name), to = objectPath(main, name);
    const linked = link(from, to);
    if (linked === "cross-device") copy(from, to, join(main, "tmp"));
    if (linked === "missing") {
      throw new Error(
        `Cannot find object "${name}" in build repository "${build}"`,
      );
    }
    if (linked !== "exists") added++;
  }
  return added;
}

/** Hard-links `from` as `to`, unless `to` exists, `from` does not, or they are far apart. */
function link(
  from: string,
  to: string,
): "linked" | "exists" | "missing" | "cross-device" {
  try {
    Deno.linkSync(from, to);
    return "linked";
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return "exists";
    if ((err as { code?: string }).code === "EXDEV") {
      return existsSync(to) ? "exists" : "cross-device";
    }
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    if (existsSync(to)) return "exists";
    if (!existsSync(from)) return "missing";
    // `objects/XX/` comes with the first object of its prefix.
    Deno.mkdirSync(dirname(to), { recursive: true });
    return link(from, to);
  }
}

/** Copies `from` to `to` through a temporary file in `tmpDir`, so `to` is never half written. */
function copy(from: string, to: string, tmpDir: string): void {
  Deno.mkdirSync(tmpDir, { recursive: true });
  Deno.mkdirSync(dirname(to), { recursive: true });
  const tmp = join(tmpDir, `flatyard-publish-${crypto.randomUUID()}`);
  try {
    Deno.copyFileSync(from, tmp);
    Deno.renameSync(tmp, to);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
    throw err;
  }
}
