/** @module The job record: its type, statuses, and how a `jobs` row maps to it. */

export type JobStatus =
  | "queued"
  | "running"
  | "succeeded"
  | "failed"
  | "cancelled";
export const terminalStatuses: readonly JobStatus[] = [
  "succeeded",
  "failed",
  "cancelled",
];

/** A job row. */
export interface Job {
  id: number;
  kind: string;
  payload: unknown;
  status: JobStatus;
  priority: number;
  runAfter: Date;
  serialKey: string | null;
  depPolicy: "finished" | "succeeded";
  dependsOn: number[];
  attempts: number;
  maxAttempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  cancelRequested: boolean;
  result: unknown;
  error: string | null;
  logBytes: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** A `jobs` row with its dependencies, as the queries select it. */
export type JobRow = {
  id: number;
  kind: string;
  payload: unknown;
  status: JobStatus;
  priority: number;
  run_after: Date;
  serial_key: string | null;
  dep_policy: "finished" | "succeeded";
  depends_on: number[] | null;
  attempts: number;
  max_attempts: number;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  cancel_requested: boolean;
  result: unknown;
  error: string | null;
  log_bytes: number;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
};

/** The select list that yields a {@link JobRow}. */
export const columns =
  `jobs.*, ARRAY(SELECT depends_on FROM job_deps WHERE job_id = jobs.id
  ORDER BY depends_on) AS depends_on`;

/** Maps a row to a {@link Job}. */
export function toJob(r: JobRow): Job {
  return {
    id: r.id,
    kind: r.kind,
    payload: r.payload,
    status: r.status,
    priority: r.priority,
    runAfter: r.run_after,
    serialKey: r.serial_key,
    depPolicy: r.dep_policy,
    dependsOn: r.depends_on ?? [],
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    cancelRequested: r.cancel_requested,
    result: r.result,
    error: r.error,
    logBytes: r.log_bytes,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}
