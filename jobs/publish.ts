/**
 * @module `publish` (specs/flat-manager-api.md §6.3): imports a committed build into its main
 * repository (its objects hard-linked in, each commit remade there by `flatpak
 * build-commit-from`), serialized per repository (`repo:<name>`), signs the new commits with the
 * repository key before any delta can be made from them (specs/ostree-repos.md §3.1), writes
 * the `.flatpakref` files, queues (or joins) the repository's update-repo job, and removes the
 * build's files. If anything fails, the main repository's refs are put back as they were, so
 * the next summary never shows half a publish.
 */
import { join } from "node:path";
import type { Db } from "../lib/db/db.ts";
import { buildPaths } from "../lib/builds/build_disk.ts";
import { buildStore, PublishedState } from "../lib/builds/build_store.ts";
import { flatpakref, parseFlatpakRef } from "../lib/builds/flatpakref.ts";
import {
  listRefs,
  readRef,
  signUnsignedTips,
  writeRef,
} from "../lib/builds/repo_refs.ts";
import { linkBuildObjects } from "../lib/builds/link_build_objects.ts";
import { run } from "../lib/ostree/cli.ts";
import type { JobQueue } from "../lib/queue/queue.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import type { RepoKeys } from "../lib/repos/repo_keys.ts";
import { repoStore, repoUrl } from "../lib/repos/repo_store.ts";
import { queueUpdateRepo } from "./update_repo.ts";
import {
  type HooksConfig,
  hooksFor,
  runPublishHook,
} from "../lib/builds/hooks.ts";

export const PUBLISH_KIND = "publish";

/** What the publish job needs. */
export interface PublishDeps {
  db: Db;
  queue: JobQueue;
  dataDir: string;
  baseUrl: string;
  repoKeys: RepoKeys;
  hooks: HooksConfig;
}

/** Publishes build `input.build`. */
export async function runPublish(
  deps: PublishDeps,
  input: { build: number },
  { log, signal, job }: Pick<JobContext, "log" | "signal" | "job">,
): Promise<{ refs: Record<string, string>; "update-repo-job": number }> {
  const build = await buildStore.get(deps.db, input.build);
  if (!build) throw new PermanentJobError(`Cannot find build "${input.build}"`);
  const before = new Map<string, string | null>();
  let main: string | undefined;
  try {
    const repo = await repoStore.get(deps.db, build.repo);
    if (!repo) {
      throw new PermanentJobError(
        `Repository "${build.repo}" no longer exists`,
      );
    }
    main = repoPaths(deps.dataDir).repo(repo.name);
    const src = buildPaths(deps.dataDir, build.id).root;
    const refs = (await buildStore.refs(deps.db, build.id)).filter((r) =>
      parseFlatpakRef(r.refName)
    );
    for (const r of refs) before.set(r.refName, await readRef(main, r.refName));

    // §6.3 step 1: the hook may rewrite the build repo; a failure stops before the import.
    await runPublishHook(hooksFor(deps.hooks, repo.name), {
      cwd: src,
      buildId: build.id,
      signal,
      log,
    });
    await log(`Importing build ${build.id} into repository "${repo.name}"`);
    const extraIds = repo.collectionId
      ? build.extraIds.map((x) =>
        `--extra-collection-id=${repo.collectionId}.${x}`
      )
      : [];
    // The refs `build-commit-from --src-repo` would take: every app/ and runtime/ ref.
    const imports: [string, string][] = [];
    for (const ref of await listRefs(src)) {
      if (!ref.startsWith("app/") && !ref.startsWith("runtime/")) continue;
      imports.push([ref, (await readRef(src, ref))!]);
    }
    // The build's objects are linked in natively (lib/builds/link_build_objects.ts), and each
    // new commit is made from the build's one inside the main repository: no pull, and the
    // build commit's xa.download-size (computed by the commit job's build-commit-from over the
    // same tree) is kept. The ref bindings and the collection binding are rewritten for the
    // main repository as before, and the commit transaction's syncfs makes the links durable.
    const linked = await linkBuildObjects(src, main, imports.map(([, c]) => c));
    await log(`Linked ${linked} new objects into the repository`);
    for (const [ref, commit] of imports) {
      await run("flatpak", [
        "build-commit-from",
        "--force",
        "--no-update-summary",
        ...extraIds,
        `--src-ref=${commit}`,
        main,
        ref,
      ], { signal, log });
    }
    const result: Record<string, string> = {};
    for (const r of refs) {
      const commit = await readRef(main, r.refName);
      if (!commit) {
        throw new Error(`Ref ${r.refName} is missing after the import`);
      }
      result[r.refName] = commit;
    }
    const signer = await deps.repoKeys.signer(repo.id, "repo");
    if (signer) {
      const signed = await signUnsignedTips(main, Object.keys(result), signer);
      await log(
        `Signed ${signed.length} commit(s) with key ${signer.fingerprint}`,
      );
    } else {
      await log(
        `Repository "${repo.name}" has no signing key: its commits stay unsigned`,
      );
    }
    await Deno.mkdir(join(main, "appstream"), { recursive: true });
    const keyring = await deps.repoKeys.keyring(repo.id, "repo");
    for (const r of refs) {
      const p = parseFlatpakRef(r.refName)!;
      if (p.kind !== "app") continue;
      const text = flatpakref({
        id: p.id,
        branch: p.branch,
        title: `${p.id} from ${repo.title ?? repo.name}`,
        isRuntime: false,
        url: repoUrl(repo, deps.baseUrl),
        gpgKey: keyring,
        collectionId: repo.collectionId,
        suggestRemoteName: repo.name,
        runtimeRepo: `${deps.baseUrl}/repo/${repo.name}.flatpakrepo`,
      });
      await Deno.writeTextFile(
        join(main, "appstream", `${p.id}.flatpakref`),
        text,
      );
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
    await Deno.remove(buildPaths(deps.dataDir, build.id).root, {
      recursive: true,
    }).catch((err) =>
      log(
        `Could not remove the build directory: ${
          err instanceof Error ? err.message : String(err)
        }`,
      )
    );
    await deps.db.query(
      "UPDATE builds SET published_state = $2, published_state_reason = NULL WHERE id = $1",
      [
        build.id,
        PublishedState.Published,
      ],
    );
    return { refs: result, "update-repo-job": update.id };
  } catch (err) {
    if (main) {
      for (const [ref, commit] of before) await writeRef(main, ref, commit);
      if (before.size > 0) {
        await log(
          "Restored the repository's refs as they were before this publish",
        );
      }
    }
    const reason = err instanceof Error ? err.message : String(err);
    await deps.db.query(
      "UPDATE builds SET published_state = $2, published_state_reason = $3 WHERE id = $1",
      [
        build.id,
        PublishedState.Failed,
        reason,
      ],
    );
    throw err instanceof PermanentJobError
      ? err
      : new PermanentJobError(reason);
  }
}
