/**
 * @module Build repositories on disk (specs/flat-manager-api.md §5.1): `<data>/builds/<id>`, an
 * archive repo for the committed build, and `<data>/builds/<id>/upload` for uploaded objects.
 * Both point at the main repository (`parent` symlink and `core.parent`), so objects the main
 * repository has never need uploading.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ostree } from "../ostree/cli.ts";
import { setRepoConfig } from "../ostree/repo_config.ts";

/** Where build `id` lives. */
export function buildPaths(
  dataDir: string,
  id: number,
): { root: string; upload: string; all: string } {
  const all = join(dataDir, "builds");
  const root = join(all, String(id));
  return { all, root, upload: join(root, "upload") };
}

async function initOne(
  dir: string,
  mainRepo: string,
  collectionId: string | null,
): Promise<void> {
  await ostree(dir, ["init", "--mode=archive-z2"]);
  await Deno.symlink(mainRepo, join(dir, "parent"));
  await setRepoConfig(dir, {
    "core.parent": mainRepo,
    "core.min-free-space-size": "500MB",
    // No fsync in build repositories: a build interrupted by a crash is failed and purged,
    // never served from half-written files, and the main repository keeps its fsyncs. On this
    // VM's disk the build repository's appstream commit alone spent 130 ms in them
    // (bench/upload.ts).
    "core.fsync": "false",
    ...(collectionId ? { "core.collection-id": collectionId } : {}),
  });
}

/** Creates both repositories, made complete in a temporary directory and renamed into place. */
export async function initBuildRepos(
  dataDir: string,
  id: number,
  mainRepo: string,
  repoCollectionId: string | null,
): Promise<void> {
  const paths = buildPaths(dataDir, id);
  await Deno.mkdir(paths.all, { recursive: true });
  const tmp = join(paths.all, `.init-${id}-${crypto.randomUUID()}`);
  try {
    await Deno.mkdir(tmp);
    await Promise.all([
      initOne(
        tmp,
        mainRepo,
        repoCollectionId ? `${repoCollectionId}.Build${id}` : null,
      ),
      initOne(join(tmp, "upload"), mainRepo, null),
    ]);
    await Deno.rename(tmp, paths.root);
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** Names checked between two yields to the event loop in {@link missingObjects}. */
const CHECKS_PER_TURN = 2000;

/**
 * Which of `names` (validated object file names) neither the upload nor the main repo has.
 * Synchronous `existsSync` checks, under a microsecond each: an async call per name is a
 * thread-pool round trip, and a throwing `Deno.lstatSync` costs an exception per missing name
 * (about 6 µs), while a push asks about thousands of names, most of them missing
 * (bench/upload.ts). A name whose path cannot be checked at all counts as missing: the
 * client uploads it again, which is harmless. The event loop gets
 * a turn every CHECKS_PER_TURN names, so a large batch does not stall other requests.
 */
export async function missingObjects(
  dataDir: string,
  id: number,
  names: string[],
): Promise<string[]> {
  const { upload, root } = buildPaths(dataDir, id);
  const parent = join(root, "parent");
  const missing: string[] = [];
  for (const [i, name] of names.entries()) {
    if (i > 0 && i % CHECKS_PER_TURN === 0) {
      await new Promise((r) => setTimeout(r, 0));
    }
    const rel = join("objects", name.slice(0, 2), name.slice(2));
    if (!existsSync(join(upload, rel)) && !existsSync(join(parent, rel))) {
      missing.push(name);
    }
  }
  return missing;
}
