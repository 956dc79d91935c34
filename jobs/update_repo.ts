/**
 * @module `update-repo` (specs/flat-manager-api.md §6.4): regenerates a repository's appstream
 * branches (signed), its static deltas by the repository's policy, and last its summary and
 * summary index, signed. Clients see a publish only when the signed summary changes; if a step
 * fails, the previous summary files are put back. Coalesced: a burst of publishes joins one
 * queued run (§4.3). Last, when the repository has CDN purge hooks, it queues their
 * `cdn-purge` job (jobs/cdn_purge.ts), which runs once this job has succeeded.
 */
import { join } from "node:path";
import type { Db } from "../lib/db/db.ts";
import { updateDeltas } from "../lib/builds/deltas.ts";
import { signUnsignedTips } from "../lib/builds/repo_refs.ts";
import { run } from "../lib/ostree/cli.ts";
import { signSummaries } from "../lib/ostree/sign.ts";
import type { JobQueue } from "../lib/queue/queue.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import type { RepoKeys } from "../lib/repos/repo_keys.ts";
import { repoStore } from "../lib/repos/repo_store.ts";
import { planCdnPurge } from "../lib/repos/cdn_purge.ts";
import { CDN_PURGE_KIND } from "./cdn_purge.ts";

export const UPDATE_REPO_KIND = "update-repo";
/** Repository work is serialized per repository under this key (ARCHITECTURE.md §5). */
export const repoKey = (name: string): string => `repo:${name}`;
/** Publishes run before the update they feed (flat-manager orders publish 1, update-repo 2). */
export const PUBLISH_PRIORITY = 20;
const UPDATE_PRIORITY = 10;

/**
 * Queues the repository's update-repo job to run after job `after`, or joins the one already
 * queued (it then also waits for `after`): many publishes, one summary regeneration.
 */
export async function queueUpdateRepo(
  queue: JobQueue,
  db: Db,
  repo: string,
  after: number,
): Promise<{ id: number; joined: boolean }> {
  const [queued] = await db.query<{ id: number }>(
    `SELECT id FROM jobs WHERE kind = $1 AND status = 'queued' AND serial_key = $2 ORDER BY id LIMIT 1`,
    [UPDATE_REPO_KIND, repoKey(repo)],
  );
  if (queued) {
    await db.query(
      "INSERT INTO job_deps (job_id, depends_on) VALUES ($1, $2) ON CONFLICT DO NOTHING",
      [queued.id, after],
    );
    return { id: queued.id, joined: true };
  }
  const job = await queue.enqueue(UPDATE_REPO_KIND, { repo }, {
    serialKey: repoKey(repo),
    dependsOn: [after],
    priority: UPDATE_PRIORITY,
    maxAttempts: 3,
  });
  return { id: job.id, joined: false };
}

const SUMMARY_FILES = [
  "summary",
  "summary.sig",
  "summary.idx",
  "summary.idx.sig",
];

/** Copies the summary files aside, to put back if the update fails before they are signed. */
async function saveSummaries(repo: string): Promise<() => Promise<void>> {
  const saved = new Map<string, Uint8Array | null>();
  for (const f of SUMMARY_FILES) {
    saved.set(f, await Deno.readFile(join(repo, f)).catch(() => null));
  }
  return async () => {
    for (const [f, bytes] of saved) {
      if (bytes === null) await Deno.remove(join(repo, f)).catch(() => {});
      else await Deno.writeFile(join(repo, f), bytes);
    }
  };
}

/** Updates repository `input.repo`. */
export async function runUpdateRepo(
  deps: { db: Db; queue: JobQueue; dataDir: string; repoKeys: RepoKeys },
  input: { repo: string },
  { log, signal, job }: Pick<JobContext, "log" | "signal" | "job">,
): Promise<{
  deltas: { generated: number; retired: number; failed: number };
  "cdn-purge-job"?: number;
}> {
  const repo = await repoStore.get(deps.db, input.repo);
  if (!repo) {
    throw new PermanentJobError(`Cannot find repository "${input.repo}"`);
  }
  const dir = repoPaths(deps.dataDir).repo(repo.name);
  const signer = await deps.repoKeys.signer(repo.id, "repo");
  await log("Regenerating appstream");
  await run("flatpak", ["build-update-repo", "--no-update-summary", dir], {
    signal,
    log,
  });
  // Appstream commits are signed before their deltas are made (ostree-repos.md §3.1).
  if (signer) {
    await signUnsignedTips(dir, ["appstream/", "appstream2/"], signer);
  }
  await log("Updating static deltas");
  const deltas = await updateDeltas(dir, repo.deltaPolicy, { signal, log });
  const restore = await saveSummaries(dir);
  try {
    await log("Updating summary");
    await run("flatpak", ["build-update-repo", "--no-update-appstream", dir], {
      signal,
      log,
    });
    if (signer) {
      await signSummaries(dir, signer);
      await log(`Signed the summary with key ${signer.fingerprint}`);
    }
  } catch (err) {
    await restore();
    await log("Put the previous summary back");
    throw err;
  }
  const purgeJob = repo.cdnPurge.length > 0
    ? await queueCdnPurge(deps, repo, dir, job.id, log)
    : undefined;
  return {
    deltas: {
      generated: deltas.generated.length,
      retired: deltas.retired.length,
      failed: deltas.failed.length,
    },
    ...(purgeJob === undefined ? {} : { "cdn-purge-job": purgeJob }),
  };
}

/**
 * Queues the CDN purge of what this update changed, to run once this job has succeeded. The
 * publish is visible by now: a failure here is logged and leaves this job successful.
 */
async function queueCdnPurge(
  deps: { db: Db; queue: JobQueue },
  repo: { id: number; name: string },
  dir: string,
  after: number,
  log: (line: string) => Promise<void>,
): Promise<number | undefined> {
  try {
    const plan = await planCdnPurge(deps.db, repo, dir);
    const { id } = await deps.queue.enqueue(
      CDN_PURGE_KIND,
      { repo: repo.name, ...plan },
      {
        serialKey: `cdn:${repo.name}`,
        dependsOn: [after],
        depPolicy: "succeeded",
        maxAttempts: 1,
      },
    );
    await log(`Queued CDN purge job ${id}`);
    return id;
  } catch (err) {
    await log(
      `Could not queue the CDN purge: ${
        err instanceof Error ? err.message : String(err)
      }`,
    );
    return undefined;
  }
}
