/**
 * @module `republish` (specs/flat-manager-api.md §6.5): makes new commits of an app's refs already
 * in a main repository, optionally marked end-of-life (or end-of-life with a rebase to another
 * app), signs them with the repository key before any delta can be made from them, and queues
 * (or joins) the repository's update-repo job. If anything fails, the refs are put back as they
 * were, as a failed publish does.
 */
import { join } from "node:path";
import { z } from "zod";
import {
  type HooksConfig,
  hooksFor,
  runPublishHook,
} from "../lib/builds/hooks.ts";
import type { Db } from "../lib/db/db.ts";
import { deltaDir, existingDeltas } from "../lib/ostree/static_deltas.ts";
import { parseFlatpakRef } from "../lib/builds/flatpakref.ts";
import {
  listRefs,
  readRef,
  signUnsignedTips,
  writeRef,
} from "../lib/builds/repo_refs.ts";
import { setRepoConfig } from "../lib/ostree/repo_config.ts";
import { ostree, run } from "../lib/ostree/cli.ts";
import type { JobQueue } from "../lib/queue/queue.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import type { RepoKeys } from "../lib/repos/repo_keys.ts";
import { repoStore } from "../lib/repos/repo_store.ts";
import { queueUpdateRepo } from "./update_repo.ts";

export const REPUBLISH_KIND = "republish";

/**
 * The job's payload: flat-manager's contents (§4.2) plus the repository, which flat-manager keeps
 * in the job's queue column and Flatyard in its payload (the serial key is for scheduling only).
 */
export const RepublishInput = z.object({
  repo: z.string(),
  app: z.string(),
  endoflife: z.string().nullable(),
  endoflife_rebase: z.string().nullable(),
});
export type RepublishInput = z.infer<typeof RepublishInput>;

/** What the republish job needs. */
export interface RepublishDeps {
  db: Db;
  queue: JobQueue;
  dataDir: string;
  repoKeys: RepoKeys;
  hooks: HooksConfig;
}

/**
 * A scratch archive repository whose parent is the main one, so it stores only the new commit
 * objects (flat-manager keeps intermediate commits out of the main repository this way).
 */
async function scratchRepo(main: string): Promise<string> {
  const root = join(main, "tmp", "republish-repos");
  await Deno.mkdir(root, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: root });
  await ostree(dir, ["init", "--mode=archive-z2"]);
  await Deno.symlink(main, join(dir, "parent"));
  await setRepoConfig(dir, { "core.parent": main });
  return dir;
}

/** Republishes the `app/<input.app>/…` refs of repository `input.repo`. */
export async function runRepublish(
  deps: RepublishDeps,
  input: RepublishInput,
  { log, signal, job }: Pick<JobContext, "log" | "signal" | "job">,
): Promise<{ "update-repo-job": number }> {
  const repo = await repoStore.get(deps.db, input.repo);
  if (!repo) {
    throw new PermanentJobError(`Cannot find repository "${input.repo}"`);
  }
  const main = repoPaths(deps.dataDir).repo(repo.name);
  // Exactly this app's refs. flat-manager lists refs by the string prefix `app/<app>`, which
  // also takes `app/<app>Suffix/…`: apps the token's prefix check never allowed.
  const refs = (await listRefs(main)).filter((ref) => {
    const r = parseFlatpakRef(ref);
    return r?.kind === "app" && r.id === input.app;
  });
  if (refs.length === 0) {
    throw new PermanentJobError(
      `Cannot find app "${input.app}" in repository "${repo.name}"`,
    );
  }
  const before = new Map<string, string | null>();
  for (const ref of refs) before.set(ref, await readRef(main, ref));
  const deltasBefore = await existingDeltas(main);
  let scratch: string | undefined;
  try {
    scratch = await scratchRepo(main);
    for (const ref of refs) {
      await log(`Re-publishing ${ref}`);
      // --force: a new commit even though nothing changed (the point is new commit metadata).
      await run("flatpak", [
        "build-commit-from",
        "--force",
        "--no-update-summary",
        "--disable-fsync",
        `--src-repo=${main}`,
        `--src-ref=${ref}`,
        scratch,
        ref,
      ], { signal, log });
    }
    // §6.5 step 3: the publish hook sees the scratch repository, with no build id.
    await runPublishHook(hooksFor(deps.hooks, repo.name), {
      cwd: scratch,
      buildId: null,
      signal,
      log,
    });
    await log(`Republishing refs to repo ${repo.name}`);
    // No --force: a ref whose tree and metadata are unchanged keeps its commit ("no change").
    // No signing options either: Flatyard signs natively below (specs/ostree-repos.md §3.1).
    await run("flatpak", [
      "build-commit-from",
      "--no-update-summary",
      ...(input.endoflife ? [`--end-of-life=${input.endoflife}`] : []),
      ...(input.endoflife_rebase
        ? [`--end-of-life-rebase=${input.app}=${input.endoflife_rebase}`]
        : []),
      `--src-repo=${scratch}`,
      main,
    ], { signal, log });
    const fresh = new Set<string>();
    for (const ref of refs) {
      const commit = await readRef(main, ref);
      if (!commit) throw new Error(`Ref ${ref} is missing after the republish`);
      if (commit !== before.get(ref)) fresh.add(commit);
    }
    const signer = await deps.repoKeys.signer(repo.id, "repo");
    if (signer) {
      const signed = await signUnsignedTips(main, refs, signer);
      await log(
        `Signed ${signed.length} commit(s) with key ${signer.fingerprint}`,
      );
    } else {
      await log(
        `Repository "${repo.name}" has no signing key: its commits stay unsigned`,
      );
    }
    // Deltas flatpak copied for the new commits embed their commit metadata from before the
    // signing and would fail GPG checks (ostree-repos.md §3.1): update-repo remakes them.
    for (const name of await existingDeltas(main)) {
      if (deltasBefore.has(name) || !fresh.has(name.split("-").at(-1)!)) {
        continue;
      }
      await Deno.remove(join(main, "deltas", deltaDir(name)), {
        recursive: true,
      });
    }
    const update = await queueUpdateRepo(
      deps.queue,
      deps.db,
      repo.name,
      job.id,
    );
    await log(
      update.joined
        ? `Piggy-backed on existing update job ${update.id}`
        : `Queued repository update job ${update.id}`,
    );
    return { "update-repo-job": update.id };
  } catch (err) {
    for (const [ref, commit] of before) await writeRef(main, ref, commit);
    await log(
      "Restored the repository's refs as they were before this republish",
    );
    const reason = err instanceof Error ? err.message : String(err);
    throw err instanceof PermanentJobError
      ? err
      : new PermanentJobError(reason);
  } finally {
    if (scratch) {
      await Deno.remove(scratch, { recursive: true }).catch((err) =>
        log(
          `Could not remove the temporary repository: ${
            err instanceof Error ? err.message : String(err)
          }`,
        )
      );
    }
  }
}
