/**
 * @module flat-manager's job metrics (specs/flat-manager-api.md §4.6), computed from the jobs
 * table when scraped: flat-manager counts in memory, which a restart or a second server process
 * would split, while the table holds every job of every process. flat-manager serves them as
 * OpenMetrics; Flatyard's `/metrics` stays in the Prometheus 0.0.4 text format, which names the
 * same series (the counter's `# TYPE` line says `flat_manager_jobs_total` instead of
 * `flat_manager_jobs`, and there is no `# EOF`).
 */
import type { Queryable } from "../db/db.ts";
import type { Family, FamilySource, Metrics } from "../metrics.ts";
import { fmJobKinds } from "./fm_json.ts";

/** flat-manager's `job_duration_seconds` buckets (`src/metrics.rs`). */
export const JOB_DURATION_BUCKETS = [
  1,
  5,
  15,
  30,
  60,
  120,
  300,
  600,
  1800,
  3600,
] as const;

// flat-manager's `kind` label values, by its kind integers (§0.6).
const KIND_LABELS = [
  "commit",
  "publish",
  "update_repo",
  "republish",
  "check",
  "prune",
];
const kindLabel = (kind: string) => KIND_LABELS[fmJobKinds[kind]!]!;

// A job's queue is its serialization key `repo:<name>`; anything else is the global queue.
const JOBS = `SELECT kind, status,
    CASE WHEN serial_key LIKE 'repo:%' THEN substr(serial_key, 6) ELSE 'global' END AS repo,
    extract(epoch FROM finished_at - started_at)::float8 AS seconds
  FROM jobs WHERE kind = ANY($1::text[])`;

const ACTIVE = `WITH j AS (${JOBS})
  SELECT kind, repo,
    count(*) FILTER (WHERE status = 'queued')::int AS queued,
    count(*) FILTER (WHERE status = 'running')::int AS running
  FROM j GROUP BY kind, repo ORDER BY kind, repo`;

// The bucket bounds are constants of this module, so writing them into the SQL is safe.
const FINISHED = `WITH j AS (${JOBS})
  SELECT kind, repo, CASE WHEN status = 'succeeded' THEN 'ended' ELSE 'broken' END AS status,
    count(*)::int AS total,
    count(seconds)::int AS timed,
    coalesce(sum(seconds), 0)::float8 AS sum,
    ARRAY[${
  JOB_DURATION_BUCKETS.map((b) => `count(*) FILTER (WHERE seconds <= ${b})`)
    .join(", ")
}]::int[] AS buckets
  FROM j WHERE status IN ('succeeded', 'failed', 'cancelled')
  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;

/**
 * The four families. Every (kind, repo) that has any job gets both gauges, 0 included, so a
 * drained queue reads 0 rather than vanishing. A job cancelled before it started counts as
 * broken in `jobs_total` but has no duration.
 */
export function flatManagerJobFamilies(db: Queryable): FamilySource {
  const kinds = Object.keys(fmJobKinds);
  return {
    async collect(): Promise<Family[]> {
      const [active, finished] = await Promise.all([
        db.query<
          { kind: string; repo: string; queued: number; running: number }
        >(ACTIVE, [kinds]),
        db.query<{
          kind: string;
          repo: string;
          status: string;
          total: number;
          timed: number;
          sum: number;
          buckets: number[];
        }>(FINISHED, [kinds]),
      ]);
      const jobLabels = (r: { kind: string; repo: string }) => ({
        kind: kindLabel(r.kind),
        repo: r.repo,
      });
      const resultLabels = (
        r: { kind: string; repo: string; status: string },
      ) => ({ kind: kindLabel(r.kind), status: r.status, repo: r.repo });
      return [
        {
          type: "counter",
          name: "flat_manager_jobs_total",
          help: "Total number of finished jobs.",
          samples: finished.map((r) => ({
            labels: resultLabels(r),
            value: r.total,
          })),
        },
        {
          type: "gauge",
          name: "flat_manager_jobs_in_progress",
          help: "Current number of jobs being processed.",
          samples: active.map((r) => ({
            labels: jobLabels(r),
            value: r.running,
          })),
        },
        {
          type: "gauge",
          name: "flat_manager_jobs_queued",
          help: "Current number of queued jobs.",
          samples: active.map((r) => ({
            labels: jobLabels(r),
            value: r.queued,
          })),
        },
        {
          type: "histogram",
          name: "flat_manager_job_duration_seconds",
          help: "Duration of finished jobs in seconds.",
          bounds: JOB_DURATION_BUCKETS,
          samples: finished.filter((r) => r.timed > 0).map((r) => ({
            labels: resultLabels(r),
            counts: r.buckets,
            sum: r.sum,
            count: r.timed,
          })),
        },
      ];
    },
  };
}

/** Adds the families to `metrics` (again: replaces them). */
export function registerFlatManagerJobMetrics(
  metrics: Metrics,
  db: Queryable,
): void {
  metrics.addFamilies("flat_manager_jobs", flatManagerJobFamilies(db));
}
