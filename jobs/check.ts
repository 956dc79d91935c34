/**
 * @module `check` (specs/flat-manager-api.md §6.2): runs one check hook of a committed build, in
 * the build's directory with `FLAT_MANAGER_BUILD_ID` and `FLAT_MANAGER_JOB_ID` set, and records
 * the outcome on its check row: exit 0 → Passed (unless the hook already reviewed itself through
 * the API), non-zero → Failed, or ReviewRequired for a reviewable hook. The job itself ends
 * successfully either way; a hook that is not configured or cannot start fails the job and
 * leaves the check Pending until someone reviews it (§4.5).
 */
import type { Db } from "../lib/db/db.ts";
import { buildPaths } from "../lib/builds/build_disk.ts";
import { CheckStatus, checkStore } from "../lib/builds/checks.ts";
import { type HooksConfig, hooksFor, runHook } from "../lib/builds/hooks.ts";
import { buildStore } from "../lib/builds/build_store.ts";
import { type JobContext, PermanentJobError } from "../lib/queue/worker.ts";

export { CHECK_KIND } from "../lib/builds/checks.ts";

/** What the check job needs. */
export interface CheckDeps {
  db: Db;
  dataDir: string;
  baseUrl: string;
  hooks: HooksConfig;
}

/** Runs check `input.name` of build `input.build`. */
export async function runCheck(
  deps: CheckDeps,
  input: { build: number; name: string },
  { log, signal, job }: Pick<JobContext, "log" | "signal" | "job">,
): Promise<Record<string, never>> {
  const build = await buildStore.get(deps.db, input.build);
  if (!build) throw new PermanentJobError(`Cannot find build "${input.build}"`);
  const check = await checkStore.get(deps.db, build.id, input.name);
  if (!check || check.job_id !== job.id) {
    throw new PermanentJobError(
      `Build ${build.id} has no check "${input.name}" for job ${job.id}`,
    );
  }
  const hook = hooksFor(deps.hooks, build.repo).checks[input.name];
  if (!hook) {
    throw new PermanentJobError(
      `No check hook "${input.name}" is configured for repository "${build.repo}"; review the check to go on`,
    );
  }
  await log(`Running check ${input.name}: ${JSON.stringify(hook.command)}`);
  let outcome;
  try {
    outcome = await runHook(hook.command, {
      cwd: buildPaths(deps.dataDir, build.id).root,
      env: {
        FLAT_MANAGER_BUILD_ID: String(build.id),
        FLAT_MANAGER_JOB_ID: String(job.id),
        FLATYARD_URL: deps.baseUrl,
      },
      signal,
      log,
    });
  } catch (e) {
    throw new PermanentJobError(
      `Check command ${JSON.stringify(hook.command)} could not start: ${
        (e as Error).message
      }`,
    );
  }
  if (outcome.code === 0) {
    const updated = await checkStore.update(
      deps.db,
      job.id,
      CheckStatus.Passed,
      null,
      undefined,
      { onlyIfPending: true },
    );
    await log(
      updated
        ? `Check ${input.name} passed`
        : `Check ${input.name} exited 0; it was reviewed meanwhile, that status is kept`,
    );
  } else {
    const status = hook.reviewable
      ? CheckStatus.ReviewRequired
      : CheckStatus.Failed;
    const reason = `Check command ${
      JSON.stringify(hook.command)
    } exited unsuccessfully: ${outcome.code}, stderr: ${outcome.stderr}`;
    await checkStore.update(deps.db, job.id, status, reason, undefined);
    await log(
      hook.reviewable
        ? `Check ${input.name} needs a review: ${reason}`
        : `Check ${input.name} failed: ${reason}`,
    );
  }
  return {};
}
