/**
 * @module Schemas of the objects flat-manager answers with (specs/flat-manager-api.md §1), as the
 * client reads them: the fields it relies on are checked, every other field is kept.
 */
import { z } from "zod";

const int = z.number().int();

/** §1.1. */
export const BuildSchema = z.looseObject({
  id: int,
  repo_state: int,
  published_state: int,
  repo: z.string().optional(),
  app_id: z.string().nullable().optional(),
  extra_ids: z.array(z.string().nullable()).optional(),
  repo_state_reason: z.string().optional(),
  published_state_reason: z.string().optional(),
  commit_job_id: int.optional(),
  publish_job_id: int.optional(),
});
export type Build = z.infer<typeof BuildSchema>;

/** §1.2. */
export const BuildRefSchema = z.looseObject({
  id: int,
  build_id: int,
  ref_name: z.string(),
  commit: z.string(),
  build_log_url: z.string().nullable().optional(),
});
export type BuildRef = z.infer<typeof BuildRefSchema>;

/** §1.3. */
export const CheckSchema = z.looseObject({
  check_name: z.string(),
  build_id: int.optional(),
  job_id: int.optional(),
  status: int,
  status_reason: z.string().nullable().optional(),
  results: z.string().nullable().optional(),
});
export type Check = z.infer<typeof CheckSchema>;

/** §1.4. */
export const BuildExtendedSchema = z.looseObject({
  build: BuildSchema,
  build_refs: z.array(BuildRefSchema).optional(),
  checks: z.array(CheckSchema).optional(),
});
export type BuildExtended = z.infer<typeof BuildExtendedSchema>;

/** §1.5: `results` is a string holding JSON, omitted until the job ends. */
export const JobSchema = z.looseObject({
  id: int,
  kind: int.optional(),
  status: int,
  contents: z.string().optional(),
  results: z.string().optional(),
  log: z.string().default(""),
  start_after: z.object({ secs_since_epoch: z.number() }).loose().nullable()
    .optional(),
  repo: z.string().nullable().optional(),
});
export type Job = z.infer<typeof JobSchema>;

/** Job `status` values (§0.6). */
export const JobStatus = { New: 0, Started: 1, Ended: 2, Broken: 3 } as const;

/** Build `repo_state` values (§0.6). */
export const RepoState = {
  Uploading: 0,
  Committing: 1,
  Ready: 2,
  Failed: 3,
  Purging: 4,
  Purged: 5,
  Validating: 6,
} as const;

/** Check `status` values (§0.6). */
export const CheckStatus = {
  Pending: 0,
  Passed: 1,
  PassedWithWarnings: 2,
  Failed: 3,
  ReviewRequired: 4,
} as const;

/** A job's `results` string parsed, as the clients reparse it; `{}` while unset (§1.5). */
export function jobResults(job: Job): Record<string, unknown> {
  if (job.results === undefined) return {};
  const r: unknown = JSON.parse(job.results);
  return r && typeof r === "object" && !Array.isArray(r)
    ? r as Record<string, unknown>
    : {};
}
