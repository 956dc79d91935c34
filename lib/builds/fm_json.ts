/**
 * @module flat-manager's response objects, field for field and in order (specs/flat-manager-api.md
 * §1): Build, BuildRef, Job. Native job kinds and statuses map onto flat-manager's integers.
 */
import type { Job } from "../queue/job.ts";
import type { Build, BuildRef } from "./build_store.ts";

/** §0.6: chrono NaiveDateTime, ISO-8601 without a zone, microseconds. */
export function naiveDateTime(d: Date): string {
  return d.toISOString().replace("Z", "000");
}

/** Build (§1.1); the reason and job id fields are omitted, not null, when unset. */
export function buildJson(b: Build): Record<string, unknown> {
  return {
    id: b.id,
    created: naiveDateTime(b.createdAt),
    repo_state: b.repoState,
    ...(b.repoStateReason === null
      ? {}
      : { repo_state_reason: b.repoStateReason }),
    published_state: b.publishedState,
    ...(b.publishedStateReason === null
      ? {}
      : { published_state_reason: b.publishedStateReason }),
    ...(b.commitJobId === null ? {} : { commit_job_id: b.commitJobId }),
    ...(b.publishJobId === null ? {} : { publish_job_id: b.publishJobId }),
    repo: b.repo,
    extra_ids: b.extraIds,
    app_id: b.appId,
    public_download: b.publicDownload,
    build_log_url: b.buildLogUrl,
    token_name: b.tokenName,
    token_type: b.tokenType,
  };
}

/** BuildRef (§1.2). */
export function buildRefJson(r: BuildRef): Record<string, unknown> {
  return {
    id: r.id,
    build_id: r.buildId,
    ref_name: r.refName,
    commit: r.commit,
    build_log_url: r.buildLogUrl,
  };
}

/** flat-manager's job kinds (§0.6); a native kind it does not know shows as -1. */
export const fmJobKinds: Record<string, number> = {
  commit: 0,
  publish: 1,
  "update-repo": 2,
  republish: 3,
  check: 4,
  prune: 5,
};

const fmStatus = {
  queued: 0,
  running: 1,
  succeeded: 2,
  failed: 3,
  cancelled: 3,
} as const;

/**
 * Job (§1.5) with `log`: the log from the client's `log-offset` (JobQueue.readLog rounds it to
 * a character boundary, §5.6). `results` is a JSON **string**, absent until the job ends (the
 * Python client calls json.loads on it).
 */
export function jobJson(job: Job, log: string): Record<string, unknown> {
  const ended = job.status === "succeeded" || job.status === "failed" ||
    job.status === "cancelled";
  const results = job.status === "succeeded"
    ? JSON.stringify(job.result ?? {})
    : JSON.stringify({ "error-message": job.error ?? "Job failed" });
  const startAfter =
    job.status === "queued" && job.runAfter.getTime() > Date.now()
      ? {
        secs_since_epoch: Math.floor(job.runAfter.getTime() / 1000),
        nanos_since_epoch: (job.runAfter.getTime() % 1000) * 1_000_000,
      }
      : null;
  return {
    id: job.id,
    kind: fmJobKinds[job.kind] ?? -1,
    status: fmStatus[job.status],
    contents: JSON.stringify(job.payload),
    ...(ended ? { results } : {}),
    log,
    start_after: startAfter,
    repo: job.serialKey?.startsWith("repo:") ? job.serialKey.slice(5) : null,
  };
}
