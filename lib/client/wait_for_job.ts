/**
 * @module The clients' job poll loop (specs/flat-manager-api.md §4.4): fetch the job with the
 * log offset printed so far, print new log lines as `| ` lines, back off while nothing changes,
 * tolerate a few errors, and end on status 2 (success) or 3 (failure). Against Flatyard the polls
 * may be held until the job moves (`Prefer: wait`), so its end is seen when it happens.
 */
import { ConnectionError } from "./http_transport.ts";
import type { FlatManagerClient } from "./flat_manager_client.ts";
import { FlatManagerApiError } from "./flat_manager_errors.ts";
import { type Job, JobStatus } from "./flat_manager_types.ts";
import { sleep as realSleep } from "./retry.ts";

/** The job ended Broken (status 3). */
export class FailedJobError extends Error {
  override name = "FailedJobError";
  constructor(readonly url: string, readonly job: Job) {
    super(`Job ${job.id} at ${url} failed`);
  }
}

/** Errors in a row the loop ignores; the next one is thrown (§4.4 step 3). */
export const MAX_IGNORED_ERRORS = 5;

/** Sleep after a poll, by polls since the log last grew (§4.4 step 4). */
export function pollDelayMs(pollsSinceChange: number): number {
  if (pollsSinceChange <= 1) return 1_000;
  if (pollsSinceChange < 5) return 3_000;
  if (pollsSinceChange < 15) return 5_000;
  if (pollsSinceChange < 30) return 10_000;
  return 60_000;
}

export interface WaitForJobOptions {
  /** Receives each printed line, without its newline. */
  log?: (line: string) => void;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Injectable for tests: the time in milliseconds since the epoch. */
  now?: () => number;
  /**
   * Seconds a poll may be held on the server until the job moves (`Prefer: wait`); a held
   * answer is followed by the next poll at once instead of a sleep. Unset: plain polling.
   */
  wait?: number;
}

const utf8 = new TextEncoder();

/**
 * Polls `jobUrl` until the job ends. Returns the final job on success, throws
 * {@link FailedJobError} on failure. The log offset counts bytes as the Rust client does: the
 * server slices bytes, and the Python client's character count misfires on non-ASCII logs
 * (§5.6). Connection errors count toward the error limit with non-2xx answers, so a server
 * that is gone ends the wait instead of looping forever.
 */
export async function waitForJob(
  client: FlatManagerClient,
  jobUrl: string,
  opts: WaitForJobOptions = {},
): Promise<Job> {
  const log = opts.log ?? (() => {});
  const sleep = opts.sleep ?? realSleep;
  const now = opts.now ?? Date.now;
  let printed = 0;
  let sinceChange = 0;
  let errors = 0;
  let reportedDelay = false;
  let oldStatus: number = JobStatus.New;
  while (true) {
    let job: Job | undefined;
    let held = false;
    try {
      ({ value: job, held } = await client.pollJob(jobUrl, printed, {
        retry: false,
        ...(opts.wait ? { wait: opts.wait } : {}),
      }));
    } catch (e) {
      const status = e instanceof FlatManagerApiError ? e.status : undefined;
      if (status === undefined && !(e instanceof ConnectionError)) throw e;
      sinceChange = 4; // ramps the delay up faster, as both clients do
      if (++errors > MAX_IGNORED_ERRORS) throw e;
      log(
        status === undefined
          ? `Connection error getting job log (${
            (e as Error).message
          }), ignoring`
          : `Unexpected response ${status} getting job log, ignoring`,
      );
    }
    if (job) {
      errors = 0;
      if (job.status === JobStatus.New && !reportedDelay) {
        reportedDelay = true;
        const after = job.start_after?.secs_since_epoch;
        const wait = after === undefined ? 0 : after - now() / 1000;
        if (wait > 0) {
          log(`Waiting ${Math.floor(wait)} seconds before starting job`);
        }
      }
      if (job.status > JobStatus.New && oldStatus === JobStatus.New) {
        log("/ Job was started");
      }
      oldStatus = job.status;
      if (job.log.length > 0) {
        sinceChange = 0;
        for (const line of job.log.replace(/\n$/, "").split("\n")) {
          log(`| ${line}`);
        }
        printed += utf8.encode(job.log).length;
      } else sinceChange++;
      if (job.status === JobStatus.Ended) {
        log("\\ Job completed successfully");
        return job;
      }
      if (job.status >= JobStatus.Broken) {
        log("\\ Job failed");
        throw new FailedJobError(jobUrl, job);
      }
    }
    // A held poll already waited on the server for the job to move.
    if (!held) await sleep(pollDelayMs(sinceChange));
  }
}
