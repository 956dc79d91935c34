/**
 * @module The job queue, in Postgres (ARCHITECTURE.md §5): jobs with a kind, JSON payload,
 * priority, `run_after`, dependencies and an optional serialization key; claimed with
 * `FOR UPDATE SKIP LOCKED` under a lease that workers renew and that a dead worker loses.
 * The bus only wakes workers and carries live log lines and cancellations.
 */
import type { Bus } from "../bus/bus.ts";
import {
  type Db,
  type Queryable,
  sqlState,
  UNIQUE_VIOLATION,
} from "../db/db.ts";
import { type JobLogChunk, readJobLog } from "./job_log.ts";
import {
  columns,
  type Job,
  type JobRow,
  type JobStatus,
  toJob,
} from "./job.ts";

export type { Job, JobStatus } from "./job.ts";
export { terminalStatuses } from "./job.ts";

/** How to queue a job. */
export interface EnqueueOptions {
  /** Higher runs first; ties run in id order. Default 0. */
  priority?: number;
  /** Not before this many seconds from now. */
  delaySeconds?: number;
  /** At most one running job per key, across all workers (e.g. a repository name). */
  serialKey?: string;
  /** Runs only after these jobs have ended. */
  dependsOn?: readonly number[];
  /** `succeeded`: cancelled instead when a dependency fails or is cancelled. Default `finished`. */
  depPolicy?: "finished" | "succeeded";
  /** Tries before the job fails for good, counting the first. Default 3. */
  maxAttempts?: number;
  /** Retry n waits `retryBaseSeconds × 2^(n-1)`, at most 10 minutes. Default 5. */
  retryBaseSeconds?: number;
  /** Concurrency groups: not claimed while one of these keys is at its limit (setLimit). */
  limitKeys?: readonly string[];
}

/** Bus channels the queue uses. */
export const channels = {
  wake: "jobs.wake",
  cancel: "jobs.cancel",
  log: (id: number) => `job.${id}.log`,
  status: (id: number) => `job.${id}.status`,
} as const;

// Retry n waits base × 2^(n-1) seconds, capped at ten minutes.
const backoff =
  "make_interval(secs => LEAST(600, retry_base_seconds * power(2, attempts - 1)))";

/** What happened to a job a worker reported as failed. */
export type FailOutcome = "retrying" | "failed" | "lost";

/** The queue's operations, for the API (enqueue, inspect, cancel) and for workers (claim …). */
export class JobQueue {
  constructor(private readonly db: Db, private readonly bus: Bus) {}

  /**
   * Queues a job. Pass `tx` to queue it in the same transaction as related writes; the wake-up
   * is then sent by {@link wake} after the commit (a worker woken earlier would not see it).
   */
  async enqueue(
    kind: string,
    payload: unknown,
    options: EnqueueOptions = {},
    tx?: Queryable,
  ): Promise<Job> {
    const insert = async (q: Queryable) => {
      const [row] = await q.query<{ id: number }>(
        `INSERT INTO jobs (kind, payload, priority, run_after, serial_key, dep_policy,
           max_attempts, retry_base_seconds, limit_keys)
         VALUES ($1, $2::jsonb, $3, now() + make_interval(secs => $4), $5, $6, $7, $8, $9)
         RETURNING id`,
        [
          kind,
          JSON.stringify(payload ?? {}),
          options.priority ?? 0,
          options.delaySeconds ?? 0,
          options.serialKey ?? null,
          options.depPolicy ?? "finished",
          options.maxAttempts ?? 3,
          options.retryBaseSeconds ?? 5,
          [...(options.limitKeys ?? [])],
        ],
      );
      const id = row!.id;
      if (options.dependsOn && options.dependsOn.length > 0) {
        await q.query(
          `INSERT INTO job_deps (job_id, depends_on)
           SELECT $1, d FROM unnest($2::int[]) AS d ON CONFLICT DO NOTHING`,
          [id, [...options.dependsOn]],
        );
      }
      const [job] = await q.query<JobRow>(
        `SELECT ${columns} FROM jobs WHERE id = $1`,
        [id],
      );
      return toJob(job!);
    };
    if (tx) return insert(tx);
    const job = await this.db.transaction(insert);
    await this.wake();
    return job;
  }

  /** Tells idle workers to look for work now rather than at their next poll. */
  async wake(): Promise<void> {
    await this.bus.publish(channels.wake, "");
  }

  async get(id: number): Promise<Job | undefined> {
    const [row] = await this.db.query<JobRow>(
      `SELECT ${columns} FROM jobs WHERE id = $1`,
      [id],
    );
    return row ? toJob(row) : undefined;
  }

  /** Newest first, optionally filtered; `beforeId` pages. */
  async list(
    filter: {
      status?: JobStatus;
      kind?: string;
      beforeId?: number;
      limit?: number;
    } = {},
  ): Promise<Job[]> {
    const rows = await this.db.query<JobRow>(
      `SELECT ${columns} FROM jobs
       WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)
         AND ($3::int IS NULL OR id < $3)
       ORDER BY id DESC LIMIT $4`,
      [
        filter.status ?? null,
        filter.kind ?? null,
        filter.beforeId ?? null,
        filter.limit ?? 50,
      ],
    );
    return rows.map(toJob);
  }

  /**
   * Cancels a job: a queued one at once; a running one is asked to stop (its worker aborts the
   * job's signal and records the cancellation). Returns the job as it is now, or undefined.
   */
  async cancel(id: number): Promise<Job | undefined> {
    const [row] = await this.db.query<{ status: JobStatus }>(
      `UPDATE jobs SET
         status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
         finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
         error = CASE WHEN status = 'queued' THEN 'Cancelled before it started' ELSE error END,
         cancel_requested = (status = 'running')
       WHERE id = $1 AND status IN ('queued', 'running')
       RETURNING status`,
      [id],
    );
    if (row?.status === "running") {
      await this.bus.publish(channels.cancel, String(id));
    }
    if (row?.status === "cancelled") await this.publishStatus(id, "cancelled");
    return this.get(id);
  }

  /** Appends text to a job's log and fans it out live; returns the byte offset it starts at. */
  async appendLog(id: number, text: string): Promise<number> {
    if (text === "") return (await this.get(id))?.logBytes ?? 0;
    const [row] = await this.db.query<{ start_byte: number }>(
      `WITH grown AS (
         UPDATE jobs SET log_bytes = log_bytes + octet_length($2::text) WHERE id = $1
         RETURNING log_bytes - octet_length($2::text) AS start_byte)
       INSERT INTO job_logs (job_id, start_byte, text)
       SELECT $1, start_byte, $2 FROM grown RETURNING start_byte`,
      [id, text],
    );
    if (!row) throw new Error(`Cannot find job "${id}"`);
    const chunk: JobLogChunk = { offset: row.start_byte, text };
    await this.bus.publish(channels.log(id), JSON.stringify(chunk));
    return row.start_byte;
  }

  /** The log from byte `offset` (rounded to a character boundary), and the offset after it. */
  readLog(id: number, offset = 0): Promise<{ text: string; next: number }> {
    return readJobLog(this.db, id, offset);
  }

  /** Sets (or, with `null`, removes) how many jobs of a concurrency group may run at once. */
  async setLimit(
    key: string,
    maxRunning: number | null,
    tx: Queryable = this.db,
  ): Promise<void> {
    if (maxRunning === null) {
      await tx.query("DELETE FROM job_limits WHERE key = $1", [key]);
      return;
    }
    await tx.query(
      `INSERT INTO job_limits (key, max_running) VALUES ($1, $2)
       ON CONFLICT (key) DO UPDATE SET max_running = EXCLUDED.max_running`,
      [key, maxRunning],
    );
  }

  // --- worker side -------------------------------------------------------------------------

  /**
   * Claims the next runnable job of one of `kinds` for `workerId`: queued, due, every
   * dependency ended, and no running job with the same serialization key.
   */
  async claim(
    workerId: string,
    kinds: readonly string[],
    leaseSeconds: number,
  ): Promise<Job | undefined> {
    for (let tries = 0; tries < 5; tries++) {
      try {
        // One claim at a time across processes, so concurrency limits (`limit_keys`) hold.
        const row = await this.db.transaction(async (tx) => {
          await tx.query("SELECT pg_advisory_xact_lock(7418207)");
          const [r] = await tx.query<{ id: number }>(
            `WITH next AS (
               SELECT j.id FROM jobs j
               WHERE j.status = 'queued' AND j.run_after <= now() AND j.kind = ANY($1::text[])
                 AND NOT EXISTS (
                   SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.depends_on
                   WHERE d.job_id = j.id AND (p.status IN ('queued', 'running')
                     OR (j.dep_policy = 'succeeded' AND p.status IN ('failed', 'cancelled'))))
                 AND (j.serial_key IS NULL OR NOT EXISTS (
                   SELECT 1 FROM jobs r WHERE r.status = 'running' AND r.serial_key = j.serial_key))
                 AND NOT EXISTS (
                   SELECT 1 FROM unnest(j.limit_keys) AS k(key)
                   JOIN job_limits l ON l.key = k.key
                   WHERE (SELECT count(*) FROM jobs r
                          WHERE r.status = 'running' AND k.key = ANY(r.limit_keys)) >= l.max_running)
               ORDER BY j.priority DESC, j.id
               LIMIT 1
               FOR UPDATE OF j SKIP LOCKED)
             UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $2,
               lease_expires_at = now() + make_interval(secs => $3),
               started_at = coalesce(started_at, now()), error = NULL
             FROM next WHERE jobs.id = next.id
             RETURNING jobs.id`,
            [[...kinds], workerId, leaseSeconds],
          );
          return r;
        });
        if (!row) return undefined;
        await this.publishStatus(row.id, "running");
        return await this.get(row.id);
      } catch (err) {
        // Two workers raced for jobs sharing a serialization key: the unique index let one win.
        if (sqlState(err) === UNIQUE_VIOLATION) continue;
        throw err;
      }
    }
    return undefined;
  }

  /** Renews a lease. `ok` false: the lease was lost (expired and reclaimed); stop the job. */
  async heartbeat(
    id: number,
    workerId: string,
    leaseSeconds: number,
  ): Promise<{ ok: boolean; cancelRequested: boolean }> {
    const [row] = await this.db.query<{ cancel_requested: boolean }>(
      `UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
       WHERE id = $1 AND lease_owner = $2 AND status = 'running'
       RETURNING cancel_requested`,
      [id, workerId, leaseSeconds],
    );
    return {
      ok: row !== undefined,
      cancelRequested: row?.cancel_requested ?? false,
    };
  }

  /** Records success; false if the lease had been lost (the result is then dropped). */
  async complete(
    id: number,
    workerId: string,
    result: unknown,
  ): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE jobs SET status = 'succeeded', result = $3::jsonb, finished_at = now(),
         lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING id`,
      [id, workerId, JSON.stringify(result ?? null)],
    );
    if (rows.length > 0) await this.ended(id, "succeeded");
    return rows.length > 0;
  }

  /**
   * Records a failure: retried after a backoff while attempts remain and it is not `permanent`,
   * otherwise failed for good.
   */
  async fail(
    id: number,
    workerId: string,
    error: string,
    options: { permanent?: boolean } = {},
  ): Promise<FailOutcome> {
    const [row] = await this.db.query<{ status: JobStatus }>(
      `UPDATE jobs SET
         status = CASE WHEN $4 OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
         run_after = CASE WHEN $4 OR attempts >= max_attempts THEN run_after
                          ELSE now() + ${backoff} END,
         finished_at = CASE WHEN $4 OR attempts >= max_attempts THEN now() END,
         error = $3, lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_owner = $2 AND status = 'running'
       RETURNING status`,
      [id, workerId, error, options.permanent ?? false],
    );
    if (!row) return "lost";
    if (row.status === "failed") {
      await this.ended(id, "failed");
      return "failed";
    }
    await this.publishStatus(id, "queued");
    return "retrying";
  }

  /**
   * Hands a running job back to the queue without counting the attempt (worker shutdown, or a
   * job waiting for something: then not before `delaySeconds`).
   */
  async release(
    id: number,
    workerId: string,
    delaySeconds = 0,
  ): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0),
         lease_owner = NULL, lease_expires_at = NULL,
         run_after = now() + make_interval(secs => $3)
       WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING id`,
      [id, workerId, delaySeconds],
    );
    if (rows.length > 0) await this.ended(id, "queued");
    return rows.length > 0;
  }

  /** Records that a running job stopped because it was cancelled. */
  async markCancelled(id: number, workerId: string): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE jobs SET status = 'cancelled', finished_at = now(), error = 'Cancelled while running',
         lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING id`,
      [id, workerId],
    );
    if (rows.length > 0) await this.ended(id, "cancelled");
    return rows.length > 0;
  }

  /**
   * Gives the jobs of dead workers (lease expired) another attempt after the backoff, or fails
   * them once their attempts are used up; a cancellation asked of a dead worker completes here.
   */
  async recoverExpiredLeases(): Promise<{ id: number; status: JobStatus }[]> {
    const rows = await this.db.query<{ id: number; status: JobStatus }>(
      `UPDATE jobs SET
         status = CASE WHEN cancel_requested THEN 'cancelled'
                       WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
         run_after = CASE WHEN cancel_requested OR attempts >= max_attempts THEN run_after
                          ELSE now() + ${backoff} END,
         finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN now() END,
         error = 'Worker ' || coalesce(lease_owner, '?') || ' stopped renewing its lease during attempt '
           || attempts || ' (crashed or stalled)',
         lease_owner = NULL, lease_expires_at = NULL
       WHERE status = 'running' AND lease_expires_at < now()
       RETURNING id, status`,
    );
    for (const r of rows) {
      if (r.status === "queued") await this.publishStatus(r.id, r.status);
      else await this.ended(r.id, r.status);
    }
    return rows;
  }

  /** Cancels queued jobs with policy `succeeded` whose dependency failed or was cancelled. */
  async cancelBlockedDependents(): Promise<number[]> {
    const rows = await this.db.query<{ id: number }>(
      `UPDATE jobs j SET status = 'cancelled', finished_at = now(),
         error = 'Dependency job ' || (
           SELECT min(p.id) FROM job_deps d JOIN jobs p ON p.id = d.depends_on
           WHERE d.job_id = j.id AND p.status IN ('failed', 'cancelled')) || ' did not succeed'
       WHERE j.status = 'queued' AND j.dep_policy = 'succeeded' AND EXISTS (
         SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.depends_on
         WHERE d.job_id = j.id AND p.status IN ('failed', 'cancelled'))
       RETURNING j.id`,
    );
    for (const r of rows) await this.ended(r.id, "cancelled");
    return rows.map((r) => r.id);
  }

  /** Counts per kind and status (for /metrics). */
  counts(): Promise<{ kind: string; status: JobStatus; count: number }[]> {
    return this.db.query(
      "SELECT kind, status, count(*)::int AS count FROM jobs GROUP BY kind, status ORDER BY 1, 2",
    );
  }

  private async ended(id: number, status: JobStatus): Promise<void> {
    await this.publishStatus(id, status);
    // A job's end may unblock dependents: let idle workers look now.
    await this.wake();
  }

  private async publishStatus(id: number, status: JobStatus): Promise<void> {
    await this.bus.publish(channels.status(id), status);
  }
}
