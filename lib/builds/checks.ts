/**
 * @module Check rows and the build state machine around them (specs/flat-manager-api.md §1.3,
 * §4.5): a committed build with check hooks becomes Validating with one Pending check (and one
 * check job) per hook; when every check has finished (Passed, PassedWithWarnings or Failed) the
 * build becomes Ready, or Failed with `"<k> out of <n> checks failed (<names>)"`.
 */
import type { Queryable } from "../db/db.ts";
import type { JobQueue } from "../queue/queue.ts";
import { RepoState } from "./build_store.ts";
import type { RepoHooks } from "./hooks.ts";

export const CHECK_KIND = "check";
/** Below commits' default and above nothing: checks of a commit run after it, in order. */
export const CHECK_PRIORITY = 0;

/** §1.3 Check status integers. */
export const CheckStatus = {
  Pending: 0,
  Passed: 1,
  PassedWithWarnings: 2,
  Failed: 3,
  ReviewRequired: 4,
} as const;

/** §1.7 variant names, by status integer. */
export const checkStatusNames = [
  "Pending",
  "Passed",
  "PassedWithWarnings",
  "Failed",
  "ReviewRequired",
] as const;

/** A check row, in flat-manager's JSON shape (§1.3). */
export interface Check {
  check_name: string;
  build_id: number;
  job_id: number;
  status: number;
  status_reason: string | null;
  results: string | null;
}

const finished = (s: number) =>
  s === CheckStatus.Passed || s === CheckStatus.PassedWithWarnings ||
  s === CheckStatus.Failed;

export const checkStore = {
  async list(q: Queryable, buildId: number): Promise<Check[]> {
    return await q.query<Check>(
      "SELECT * FROM checks WHERE build_id = $1 ORDER BY check_name",
      [buildId],
    );
  },

  async get(
    q: Queryable,
    buildId: number,
    name: string,
  ): Promise<Check | undefined> {
    const [row] = await q.query<Check>(
      "SELECT * FROM checks WHERE build_id = $1 AND check_name = $2",
      [buildId, name],
    );
    return row;
  },

  async byJob(q: Queryable, jobId: number): Promise<Check | undefined> {
    const [row] = await q.query<Check>(
      "SELECT * FROM checks WHERE job_id = $1",
      [jobId],
    );
    return row;
  },

  /**
   * Sets a check's status and reason (and its results when given), then re-evaluates the build.
   * With `onlyIfPending`, a check that someone reviewed meanwhile keeps the reviewed status (§4.5:
   * "if the check is no longer Pending and the command exited 0, the API-set status is kept").
   */
  async update(
    q: Queryable,
    jobId: number,
    status: number,
    reason: string | null,
    results: string | undefined,
    opts: { onlyIfPending?: boolean } = {},
  ): Promise<Check | undefined> {
    const [row] = await q.query<Check>(
      `UPDATE checks SET status = $2, status_reason = $3,
         results = CASE WHEN $4::boolean THEN $5 ELSE results END
       WHERE job_id = $1${opts.onlyIfPending ? " AND status = 0" : ""}
       RETURNING *`,
      [jobId, status, reason, results !== undefined, results ?? null],
    );
    if (row) await evaluateChecks(q, row.build_id);
    return row;
  },
};

/**
 * After a successful commit: Ready when the repository has no check hooks; otherwise Validating
 * with a Pending check and a queued check job per hook, all in the caller's transaction (§4.5).
 */
export async function finishCommit(
  tx: Queryable,
  queue: JobQueue,
  buildId: number,
  hooks: RepoHooks,
): Promise<string[]> {
  const names = Object.keys(hooks.checks).sort();
  if (names.length === 0) {
    await tx.query(
      "UPDATE builds SET repo_state = $2, repo_state_reason = NULL WHERE id = $1",
      [buildId, RepoState.Ready],
    );
    return [];
  }
  await tx.query(
    "UPDATE builds SET repo_state = $2, repo_state_reason = NULL WHERE id = $1",
    [buildId, RepoState.Validating],
  );
  for (const name of names) {
    const job = await queue.enqueue(
      CHECK_KIND,
      { build: buildId, name },
      { priority: CHECK_PRIORITY, maxAttempts: 1 },
      tx,
    );
    await tx.query(
      `INSERT INTO checks (check_name, build_id, job_id) VALUES ($1, $2, $3)
       ON CONFLICT (build_id, check_name) DO UPDATE
         SET job_id = EXCLUDED.job_id, status = 0, status_reason = NULL, results = NULL`,
      [name, buildId, job.id],
    );
  }
  return names;
}

/**
 * §4.5: once every check of a Validating build has finished, the build becomes Ready, or Failed
 * naming the failed checks. A build already Failed (or not validating) is left alone.
 */
export async function evaluateChecks(
  q: Queryable,
  buildId: number,
): Promise<void> {
  const checks = await checkStore.list(q, buildId);
  if (checks.length === 0 || !checks.every((c) => finished(c.status))) return;
  const failed = checks.filter((c) => c.status === CheckStatus.Failed);
  if (failed.length === 0) {
    await q.query(
      "UPDATE builds SET repo_state = $2, repo_state_reason = NULL WHERE id = $1 AND repo_state = $3",
      [buildId, RepoState.Ready, RepoState.Validating],
    );
  } else {
    await q.query(
      "UPDATE builds SET repo_state = $2, repo_state_reason = $3 WHERE id = $1 AND repo_state = $4",
      [
        buildId,
        RepoState.Failed,
        `${failed.length} out of ${checks.length} checks failed (${
          failed.map((c) => c.check_name).join(", ")
        })`,
        RepoState.Validating,
      ],
    );
  }
}
