/**
 * @module `push`: uploads the refs of a local archive-z2 repository into a flat-manager build and
 * optionally commits and publishes it, in the request order of the Python `flat-manager-client`
 * (specs/flat-manager-api.md §5.4).
 */
import { apiUrlOf, FlatManagerClient } from "./flat_manager_client.ts";
import { FlatManagerApiError } from "./flat_manager_errors.ts";
import {
  type Build,
  CheckStatus,
  type Job,
  jobResults,
  RepoState,
} from "./flat_manager_types.ts";
import type { Transport } from "./http_transport.ts";
import {
  assertArchiveRepo,
  commitObjects,
  deltaFiles,
  objectFiles,
  resolveRefs,
  type UploadFile,
} from "./local_repo.ts";
import { type RetryOptions, sleep as realSleep } from "./retry.ts";
import {
  type PushProgress,
  uploadAll,
  uploadBatches,
} from "./upload_objects.ts";
import { waitForJob, type WaitForJobOptions } from "./wait_for_job.ts";
import { MAX_WAIT_SECONDS } from "../http/prefer_wait.ts";

export type { PushProgress } from "./upload_objects.ts";

/** Delay between `GET <build>/extended` polls while the build is committing (§5.4 step 9). */
export const COMMITTING_POLL_MS = 2000;

export interface PushOptions {
  /** `.../api/v1/build/<id>`. */
  buildUrl: string;
  token: string;
  /** A local archive-z2 repository. */
  repoPath: string;
  /** Refs to push; default every `app/`, `runtime/` and `screenshots/` ref. */
  refs?: string[];
  /** Commit after uploading, and wait for the commit job and its checks. */
  commit?: boolean;
  /** Commit and publish. */
  publish?: boolean;
  /** Wait for the publish job. */
  wait?: boolean;
  /** Wait for the publish job, then for the update-repo job it queued. */
  waitUpdate?: boolean;
  extraIds?: string[];
  buildLogUrl?: string;
  /** Globs (`fnmatch`) of app ids whose from-scratch deltas are not uploaded. */
  ignoreDelta?: string[];
  endoflife?: string;
  endoflifeRebase?: string;
  tokenType?: number;
  onProgress?: (p: PushProgress) => void;
  log?: (line: string) => void;
  /** Default: `node:http` (Deno's `fetch` cannot send the GET bodies the API needs). */
  transport?: Transport;
  retry?: RetryOptions;
  /** Upload requests in flight at once within a phase; flat-manager's clients use 1. */
  uploadConcurrency?: number;
  /** Sleeps of the job polls; injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Seconds each poll may be held on the server until the job or build moves (`Prefer: wait`,
   * lib/http/prefer_wait.ts); flat-manager ignores it. Default 10; 0 polls plainly.
   */
  pollWait?: number;
}

/** A job the push waited for or started, with its `Location` and parsed `results`. */
export interface PushedJob {
  job: Job;
  location: string;
  results: Record<string, unknown>;
}

/** What `push` ends with: the build as finally fetched, and the jobs it ran. */
export interface PushResult {
  build: Build;
  commitJob?: PushedJob;
  publishJob?: PushedJob;
  updateJob?: PushedJob;
}

/** A check of the build failed (§5.4 step 10). */
export class FailedCheckError extends Error {
  override name = "FailedCheckError";
}

/** Pushes a local repository into a build (§5.4), then commits and publishes as asked. */
export async function push(opts: PushOptions): Promise<PushResult> {
  const log = opts.log ?? (() => {});
  const sleep = opts.sleep ?? realSleep;
  const buildUrl = opts.buildUrl.replace(/\/+$/, "");
  using client = new FlatManagerClient({
    token: opts.token,
    log,
    ...(opts.transport ? { transport: opts.transport } : {}),
    ...(opts.retry ? { retry: opts.retry } : {}),
  });
  const wait = opts.pollWait ?? MAX_WAIT_SECONDS;
  const poll = { log, sleep, ...(wait > 0 ? { wait } : {}) };

  await assertArchiveRepo(opts.repoPath);
  const refs = await resolveRefs(opts.repoPath, opts.refs);
  log(`Uploading refs to ${buildUrl}: ${JSON.stringify([...refs.keys()])}`);

  // §5.2 steps 3–6: metadata first, then the file objects of every dirtree.
  // Both lists from one walk; they are asked about in the protocol's order below.
  const { metadata, files } = await commitObjects(opts.repoPath, refs.values());
  log(`Refs contain ${metadata.length} metadata objects`);
  const missingMetadata = await client.missingObjects(buildUrl, metadata);
  log(`Remote missing ${missingMetadata.length} of those`);
  log(`Has ${files.length} file objects for those`);
  const missingFiles = await client.missingObjects(
    buildUrl,
    files,
    opts.uploadConcurrency ?? 1,
  );
  log(`Remote missing ${missingFiles.length} of those`);

  // §5.2 step 7: file objects before metadata, so a stored commit always has its tree.
  const groups: [PushProgress["phase"], UploadFile[][]][] = [
    ["files", uploadBatches(objectFiles(opts.repoPath, missingFiles))],
    [
      "metadata",
      uploadBatches(objectFiles(opts.repoPath, missingMetadata)),
    ],
  ];
  const deltas = await deltaFiles(opts.repoPath, refs, opts.ignoreDelta, log);
  // §5.2 step 8: every delta part in one request.
  if (deltas.length > 0) groups.push(["deltas", [deltas]]);
  await uploadAll(
    client,
    buildUrl,
    groups,
    log,
    opts.onProgress,
    opts.uploadConcurrency ?? 1,
  );

  // §5.2 steps 9–10.
  for (const [ref, commit] of refs) {
    log(`Creating ref ${ref} with commit ${commit}`);
    await client.createBuildRef(buildUrl, ref, commit, opts.buildLogUrl);
  }
  if (opts.extraIds && opts.extraIds.length > 0) {
    log(`Adding extra ids ${JSON.stringify(opts.extraIds)}`);
    await client.addExtraIds(buildUrl, opts.extraIds);
  }

  const result: Omit<PushResult, "build"> = {};
  if (opts.commit || opts.publish) {
    log(`Committing build ${buildUrl}`);
    const started = await client.commit(buildUrl, {
      ...(opts.endoflife !== undefined ? { endoflife: opts.endoflife } : {}),
      ...(opts.endoflifeRebase !== undefined
        ? { endoflifeRebase: opts.endoflifeRebase }
        : {}),
      ...(opts.tokenType !== undefined ? { tokenType: opts.tokenType } : {}),
    });
    // §5.4 steps 9–11: a commit is always waited for, checks included.
    await waitForChecks(client, buildUrl, poll);
    log("Waiting for commit job");
    const job = await waitForJob(client, started.location, poll);
    result.commitJob = {
      job,
      location: started.location,
      results: jobResults(job),
    };
  }
  if (opts.publish) {
    const published = await publishBuild(client, buildUrl, log);
    if (published) {
      let job = published.value;
      if (opts.wait || opts.waitUpdate) {
        log("Waiting for publish job");
        job = await waitForJob(client, published.location, poll);
      }
      const results = jobResults(job);
      result.publishJob = { job, location: published.location, results };
      const updateId = results["update-repo-job"];
      if (typeof updateId === "number") {
        log(`Queued repo update job ${updateId}`);
        const url = `${apiUrlOf(buildUrl)}/job/${updateId}`;
        let update: Job;
        if (opts.waitUpdate) {
          log("Waiting for repo update job");
          update = await waitForJob(client, url, poll);
        } else update = await client.getJob(url);
        result.updateJob = {
          job: update,
          location: url,
          results: jobResults(update),
        };
      }
    }
  }
  return { build: await client.getBuild(buildUrl), ...result };
}

/** §5.4 steps 9–10: wait while committing, follow each check job, fail on a failed check. */
async function waitForChecks(
  client: FlatManagerClient,
  buildUrl: string,
  poll: WaitForJobOptions & Required<Pick<WaitForJobOptions, "sleep">>,
): Promise<void> {
  const { log = () => {}, sleep, wait } = poll;
  let { value: ext, held } = await client.pollBuildExtended(buildUrl, wait);
  while (ext && ext.build.repo_state === RepoState.Committing) {
    // A held answer already waited on the server (`Prefer: wait`).
    if (!held) await sleep(COMMITTING_POLL_MS);
    ({ value: ext, held } = await client.pollBuildExtended(buildUrl, wait));
  }
  const checks = ext?.checks ?? [];
  if (checks.length === 0) return;
  for (const check of checks) {
    log(`Waiting for check ${check.check_name}`);
    const url = `${buildUrl}/check/${encodeURIComponent(check.check_name)}/job`;
    await waitForJob(client, url, poll);
  }
  ext = await client.getBuildExtended(buildUrl);
  const failed = (ext?.checks ?? []).filter((c) =>
    c.status === CheckStatus.Failed
  );
  if (failed.length > 0) {
    throw new FailedCheckError(
      `Build ${buildUrl} failed checks: ${
        failed.map((c) => c.check_name).join(", ")
      }`,
    );
  }
}

const ALREADY = new Set(["published", "publishing", "validating"]);

/**
 * `POST publish`. A 400 whose `current-state` is published, publishing or validating counts as
 * success with nothing to wait for, as both clients treat it (§3.2); returns null then.
 */
async function publishBuild(
  client: FlatManagerClient,
  buildUrl: string,
  log: (line: string) => void,
): Promise<{ value: Job; location: string } | null> {
  log(`Publishing build ${buildUrl}`);
  try {
    return await client.publish(buildUrl);
  } catch (e) {
    const state = e instanceof FlatManagerApiError && e.status === 400
      ? e.currentState
      : undefined;
    if (state === undefined || !ALREADY.has(state)) throw e;
    log(`The build is already ${state}, not publishing it again`);
    return null;
  }
}
