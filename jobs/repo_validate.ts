/**
 * @module `repo.validate`: runs `ostree fsck` on a repository and checks its `config` against the
 * settings in the database (mode archive-z2, collection ID, min-free-space).
 */
import { join } from "node:path";
import type { Db } from "../lib/db/db.ts";
import { CommandError, ostree } from "../lib/ostree/cli.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { repoStore } from "../lib/repos/repo_store.ts";

export const REPO_VALIDATE_KIND = "repo.validate";

/** What a validation found. */
export interface ValidationResult {
  ok: boolean;
  problems: string[];
}

/** Validates repository `input.repo`. Problems are the result, not a job failure. */
export async function runRepoValidate(
  deps: { db: Db; dataDir: string },
  input: { repo: string },
  { log, signal }: Pick<JobContext, "log" | "signal">,
): Promise<ValidationResult> {
  const repo = await repoStore.get(deps.db, input.repo);
  if (!repo) {
    throw new PermanentJobError(`Cannot find repository "${input.repo}"`);
  }
  const dir = repoPaths(deps.dataDir).repo(repo.name);
  const problems: string[] = [];
  await log(`Checking repository "${repo.name}" at ${dir}`);
  try {
    await ostree(dir, ["fsck"], { signal, log });
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    problems.push(`ostree fsck failed: ${err.message}`);
  }
  let config: KeyFile | undefined;
  try {
    config = KeyFile.parse(await Deno.readTextFile(join(dir, "config")));
  } catch (err) {
    problems.push(
      `Cannot read config: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (config) {
    const expect: [string, string, string | undefined][] = [
      ["core", "mode", "archive-z2"],
      ["core", "repo_version", "1"],
      ["core", "collection-id", repo.collectionId ?? undefined],
      ["core", "min-free-space-size", repo.minFreeSpace],
      ["flatpak", "default-branch", repo.defaultBranch],
    ];
    for (const [group, key, want] of expect) {
      const got = config.get(group, key);
      if (got !== want) {
        problems.push(
          `config [${group}] ${key} is ${
            JSON.stringify(got ?? null)
          }, expected ${JSON.stringify(want ?? null)}`,
        );
      }
    }
  }
  for (const p of problems) await log(`Problem: ${p}`);
  await log(
    problems.length === 0
      ? "Repository is valid"
      : `${problems.length} problem(s) found`,
  );
  return { ok: problems.length === 0, problems };
}
