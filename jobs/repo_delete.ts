/** @module `repo.delete`: removes a deleted repository's data from the trash. */
import { join, relative } from "node:path";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";

export const REPO_DELETE_KIND = "repo.delete";

/** The job's input: where the repository's data was moved. */
export interface RepoDeleteInput {
  repo: string;
  trashPath: string | null;
}

/** Deletes the trashed directory; refuses any path outside the trash. */
export async function runRepoDelete(
  deps: { dataDir: string },
  input: RepoDeleteInput,
  { log }: Pick<JobContext, "log">,
): Promise<{ removed: boolean }> {
  if (input.trashPath === null) {
    await log(`Repository "${input.repo}" had no data on disk`);
    return { removed: false };
  }
  const trash = repoPaths(deps.dataDir).trash;
  const rel = relative(trash, input.trashPath);
  if (
    rel === "" || rel.startsWith("..") || rel.includes("/") ||
    join(trash, rel) !== input.trashPath
  ) {
    throw new PermanentJobError(
      `Refusing to delete "${input.trashPath}": not a directory in the trash`,
    );
  }
  await Deno.remove(input.trashPath, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await log(`Removed the data of repository "${input.repo}"`);
  return { removed: true };
}
