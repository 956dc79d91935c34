/**
 * @module `prune` (specs/flat-manager-api.md §6.5): deletes the objects of a main repository that
 * no ref reaches within three commits of history, after a dry run whose report goes into the
 * job log. Queued behind everything else of its repository.
 */
import { z } from "zod";
import type { Db } from "../lib/db/db.ts";
import { run } from "../lib/ostree/cli.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { repoStore } from "../lib/repos/repo_store.ts";

export const PRUNE_KIND = "prune";

/**
 * Below every other repository job (publish and republish 20, update-repo 10; higher runs
 * first): like flat-manager's order 100 (§4.2), a prune runs only when nothing else of its
 * repository is ready, so it never takes the objects of a publish from under it.
 */
export const PRUNE_PRIORITY = -100;

/** The job's payload: flat-manager's is `{}` with the repository in the job's queue column. */
export const PruneInput = z.object({ repo: z.string() });
export type PruneInput = z.infer<typeof PruneInput>;

/** Prunes repository `input.repo`. */
export async function runPrune(
  deps: { db: Db; dataDir: string },
  input: PruneInput,
  { log, signal }: Pick<JobContext, "log" | "signal">,
): Promise<Record<string, never>> {
  const repo = await repoStore.get(deps.db, input.repo);
  if (!repo) {
    throw new PermanentJobError(`Cannot find repository "${input.repo}"`);
  }
  const dir = repoPaths(deps.dataDir).repo(repo.name);
  const prune = (mode: "--prune-dry-run" | "--prune") =>
    run("flatpak", [
      "build-update-repo",
      "-v",
      "--no-update-summary",
      "--no-update-appstream",
      mode,
      "--prune-depth=3",
      dir,
    ], { signal, log });
  await log("Running prune dry-run");
  await prune("--prune-dry-run");
  await log("Running actual prune");
  await prune("--prune");
  return {};
}
