/**
 * @module Repositories on disk: `<data>/repos/<name>`, archive-z2 OSTree repositories created
 * with `ostree init` (specs/ostree-repos.md §1.1) whose `config` Flatyard keeps in step with the
 * database, rewritten atomically (write a temporary file, then rename over).
 */
import { join } from "node:path";
import { KeyFile } from "../ostree/keyfile.ts";
import { ostree } from "../ostree/cli.ts";
import { editRepoConfig } from "../ostree/repo_config.ts";
import type { Repo } from "./repo_store.ts";

/** Where repositories live, and where deleted ones wait for removal. */
export function repoPaths(dataDir: string): {
  root: string;
  repo: (name: string) => string;
  trash: string;
} {
  return {
    root: join(dataDir, "repos"),
    repo: (name: string) => join(dataDir, "repos", name),
    trash: join(dataDir, "trash"),
  };
}

/** Sets the config keys Flatyard manages (§1.2), leaving every other key as it is. */
export function applyConfig(kf: KeyFile, repo: Repo): KeyFile {
  kf.set("core", "repo_version", "1");
  kf.set("core", "mode", "archive-z2");
  kf.set("core", "min-free-space-size", repo.minFreeSpace);
  // A percentage would apply alongside the size if both were set: the size is the one setting.
  kf.set("core", "min-free-space-percent", undefined);
  kf.set("core", "collection-id", repo.collectionId ?? undefined);
  kf.set("flatpak", "title", repo.title ?? undefined);
  // Comment is the one-line form (flatpak shows it in lists); Description the full text.
  kf.set("flatpak", "comment", repo.description?.split("\n")[0] ?? undefined);
  kf.set("flatpak", "description", repo.description ?? undefined);
  kf.set("flatpak", "homepage", repo.homepage ?? undefined);
  kf.set("flatpak", "icon", repo.iconUrl ?? undefined);
  kf.set("flatpak", "default-branch", repo.defaultBranch);
  kf.set("flatpak", "redirect-url", repo.redirectUrl ?? undefined);
  return kf;
}

/** Rewrites `<dir>/config` atomically from the repository's settings. */
export function writeRepoConfig(dir: string, repo: Repo): Promise<void> {
  return editRepoConfig(dir, (kf) => void applyConfig(kf, repo));
}

/**
 * Creates the repository at its final path: `ostree init` in a temporary sibling directory, the
 * config written, then one rename, so a half-made repository is never visible.
 */
export async function initRepo(dataDir: string, repo: Repo): Promise<string> {
  const paths = repoPaths(dataDir);
  await Deno.mkdir(paths.root, { recursive: true });
  const tmp = join(paths.root, `.init-${crypto.randomUUID()}`);
  try {
    await ostree(tmp, [
      "init",
      "--mode=archive-z2",
      ...(repo.collectionId ? [`--collection-id=${repo.collectionId}`] : []),
    ]);
    await writeRepoConfig(tmp, repo);
    await Deno.rename(tmp, paths.repo(repo.name));
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw err;
  }
  return paths.repo(repo.name);
}

/** Moves a repository's data to the trash (at once) and returns where; a job removes it. */
export async function trashRepo(
  dataDir: string,
  name: string,
  id: number,
): Promise<string | undefined> {
  const paths = repoPaths(dataDir);
  await Deno.mkdir(paths.trash, { recursive: true });
  const to = join(paths.trash, `${name}-${id}-${Date.now()}`);
  try {
    await Deno.rename(paths.repo(name), to);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  return to;
}
