/**
 * @module `commit` (specs/flat-manager-api.md §6.1): checks the uploaded objects of a build are
 * complete, moves them into its build repository and makes its commits there with
 * `flatpak build-commit-from`, signs them with the repository's build key when it has one, writes the
 * build's `.flatpakref` files and summary, and removes the upload area. The build ends Ready,
 * Validating with one check job per check hook of its repository (§4.5, §6.2), or Failed with
 * the reason in its log.
 */
import { join } from "node:path";
import type { Db } from "../lib/db/db.ts";
import { buildPaths } from "../lib/builds/build_disk.ts";
import {
  adoptUploadedObjects,
  checkComplete,
} from "../lib/builds/adopt_upload.ts";
import { buildStore, RepoState } from "../lib/builds/build_store.ts";
import {
  flatpakref,
  parseFlatpakRef,
  wantsFlatpakref,
} from "../lib/builds/flatpakref.ts";
import { readRef, signUnsignedTips } from "../lib/builds/repo_refs.ts";
import { setRepoConfig } from "../lib/ostree/repo_config.ts";
import { startWriteback, type Writeback } from "../lib/builds/writeback.ts";
import { run } from "../lib/ostree/cli.ts";
import { signSummaries } from "../lib/ostree/sign.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";
import type { RepoKeys } from "../lib/repos/repo_keys.ts";
import { finishCommit } from "../lib/builds/checks.ts";
import { type HooksConfig, hooksFor } from "../lib/builds/hooks.ts";
import type { JobQueue } from "../lib/queue/queue.ts";
import { repoStore } from "../lib/repos/repo_store.ts";

export const COMMIT_KIND = "commit";

/** The job's payload, as flat-manager's (§4.2). */
export interface CommitInput {
  build: number;
  endoflife: string | null;
  endoflife_rebase: string | null;
  token_type: number | null;
}

/** What the commit job needs. */
export interface CommitDeps {
  db: Db;
  dataDir: string;
  baseUrl: string;
  repoKeys: RepoKeys;
  queue: JobQueue;
  hooks: HooksConfig;
}

/** Runs the commit of build `input.build`. */
export async function runCommit(
  deps: CommitDeps,
  input: CommitInput,
  { log, signal }: Pick<JobContext, "log" | "signal">,
): Promise<{ refs: Record<string, string> }> {
  const build = await buildStore.get(deps.db, input.build);
  if (!build) throw new PermanentJobError(`Cannot find build "${input.build}"`);
  let writeback: Writeback | undefined;
  try {
    const refs = await buildStore.refs(deps.db, build.id);
    if (refs.length === 0) throw new PermanentJobError("No refs in build");
    const paths = buildPaths(deps.dataDir, build.id);
    const firstApp = refs.map((r) => parseFlatpakRef(r.refName)).find((r) =>
      r?.kind === "app"
    )?.id;
    const result: Record<string, string> = {};
    // Moved in, not copied (lib/builds/adopt_upload.ts): for a 200 MB app the copy was most of
    // the commit's time. The upload repository stays the source of build-commit-from, its
    // objects now found through its parent, the build repository: a source with no collection
    // ID, as flatpak wants (the build repository's own commit binding is checked against it).
    adoptUploadedObjects(paths.upload, paths.root);
    // The uploaded bytes go to disk beside the commit's CPU work, not in the publish's syncfs.
    writeback = startWriteback(paths.root);
    await setRepoConfig(paths.upload, { "core.parent": paths.root });
    for (const ref of refs) {
      await log(`Committing ref ${ref.refName} (${ref.commit})`);
      // Every object there, in the build repository or the main one (its parent), as
      // flat-manager's pull would fail on a missing one.
      await checkComplete([paths.root, join(paths.root, "parent")], [
        ref.commit,
      ]);
      // Every object is in the build repository or its parent already: the pull copies none,
      // and the new commit object is all that is written.
      await run("flatpak", [
        "build-commit-from",
        "--timestamp=NOW",
        "--no-update-summary",
        "--force",
        "--disable-fsync",
        ...(input.endoflife ? [`--end-of-life=${input.endoflife}`] : []),
        ...(input.endoflife_rebase && firstApp
          ? [`--end-of-life-rebase=${firstApp}=${input.endoflife_rebase}`]
          : []),
        ...(input.token_type !== null
          ? [`--token-type=${input.token_type}`]
          : []),
        `--src-repo=${paths.upload}`,
        `--src-ref=${ref.commit}`,
        paths.root,
        ref.refName,
      ], { signal, log });
      const commit = await readRef(paths.root, ref.refName);
      if (!commit) {
        throw new Error(`Ref ${ref.refName} is missing after its commit`);
      }
      result[ref.refName] = commit;
    }
    const repo = await repoStore.get(deps.db, build.repo);
    const signer = repo
      ? await deps.repoKeys.signer(repo.id, "build")
      : undefined;
    if (signer) await signUnsignedTips(paths.root, Object.keys(result), signer);
    const keyring = repo
      ? await deps.repoKeys.keyring(repo.id, "build")
      : undefined;
    for (const ref of refs) {
      const r = parseFlatpakRef(ref.refName);
      if (!r || !wantsFlatpakref(ref.refName)) continue;
      await Deno.writeTextFile(
        join(paths.root, `${r.id}.flatpakref`),
        flatpakref({
          id: r.id,
          branch: r.branch,
          title: `${r.id} build nr ${build.id}`,
          isRuntime: r.kind === "runtime",
          url: `${deps.baseUrl}/build-repo/${build.id}`,
          gpgKey: keyring,
        }),
      );
    }
    await log("running build-update-repo");
    await run("flatpak", ["build-update-repo", paths.root], { signal, log });
    if (signer) {
      await signUnsignedTips(paths.root, ["appstream/", "appstream2/"], signer);
      await signSummaries(paths.root, signer);
    }
    const flushed = await writeback.done;
    if (!flushed.ok) {
      await log(
        `Could not write the uploaded objects to disk early: ${flushed.why}`,
      );
    }
    await log("Removing upload directory");
    await Deno.remove(paths.upload, { recursive: true });
    const checks = await deps.db.transaction((tx) =>
      finishCommit(tx, deps.queue, build.id, hooksFor(deps.hooks, build.repo))
    );
    if (checks.length > 0) {
      await log(`Queued check jobs: ${checks.join(", ")}`);
    }
    return { refs: result };
  } catch (err) {
    await writeback?.done; // no process outlives its job
    const reason = err instanceof Error ? err.message : String(err);
    await buildStore.setRepoState(deps.db, build.id, RepoState.Failed, reason);
    // A build that does not commit will not commit on a second try: no retry.
    throw err instanceof PermanentJobError
      ? err
      : new PermanentJobError(reason);
  }
}
