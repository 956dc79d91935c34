/**
 * @module A server-side build as read back (lib/source_builds/source_builds.ts writes them):
 * its row, its tasks with their jobs' states, and its overall state, which is derived from
 * those jobs and never stored.
 */
import type { Queryable } from "../db/db.ts";
import type { JobStatus } from "../queue/queue.ts";
import type { TaskSource } from "../runners/runner.ts";

/** A `source_builds` row, as stored. */
export type SourceBuildRow = {
  id: number;
  repo: string;
  branch: string;
  arches: string[];
  manifest: Record<string, unknown>;
  manifest_name: string;
  app_id: string;
  runtime: string;
  runtime_version: string | null;
  sdk: string;
  command: string | null;
  permissions: Record<string, string[]>;
  module_count: number;
  source: TaskSource | null;
  priority: number;
  publish: "auto" | "manual";
  depends_on: number[];
  cpu: string;
  memory: string;
  timeout_seconds: number;
  fm_build_id: number;
  commit_job_id: number | null;
  publish_job_id: number | null;
  cancelled: boolean;
  created_by: string;
  created_at: Date;
  source_artifact_id: number | null;
};

/** A task with its job's state. */
export interface TaskView {
  id: number;
  arch: string;
  jobId: number;
  status: JobStatus;
  attempts: number;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  durationSeconds: number | null;
}

/** The overall state, read off the jobs. */
export type SourceBuildState =
  | "queued"
  | "building"
  | "committing"
  | "publishing"
  | "built"
  | "published"
  | "failed"
  | "cancelled";

export interface SourceBuild {
  id: number;
  repo: string;
  branch: string;
  arches: string[];
  manifest: Record<string, unknown>;
  manifestName: string;
  appId: string;
  runtime: string;
  runtimeVersion: string | null;
  sdk: string;
  command: string | null;
  permissions: Record<string, string[]>;
  moduleCount: number;
  source: TaskSource | null;
  priority: number;
  publish: "auto" | "manual";
  dependsOn: number[];
  cpu: string;
  memory: string;
  timeoutSeconds: number;
  fmBuildId: number;
  /** The source archive's artifact, when the sources are uploaded. */
  sourceArtifactId: number | null;
  commitJobId: number | null;
  publishJobId: number | null;
  createdBy: string;
  createdAt: Date;
  state: SourceBuildState;
  reason: string | null;
  tasks: TaskView[];
}

type JobRow = {
  id: number;
  status: JobStatus;
  result: unknown;
  attempts: number;
  error: string | null;
  started_at: Date | null;
  finished_at: Date | null;
};

function deriveState(
  r: SourceBuildRow,
  tasks: TaskView[],
  jobs: Map<number, JobRow>,
): { state: SourceBuildState; reason: string | null } {
  const commit = r.commit_job_id ? jobs.get(r.commit_job_id) : undefined;
  const publish = r.publish_job_id ? jobs.get(r.publish_job_id) : undefined;
  const failedTask = tasks.find((t) => t.status === "failed");
  if (failedTask) {
    return {
      state: "failed",
      reason: `${failedTask.arch}: ${failedTask.error ?? "failed"}`,
    };
  }
  if (r.cancelled || tasks.some((t) => t.status === "cancelled")) {
    const t = tasks.find((t) => t.status === "cancelled");
    return {
      state: "cancelled",
      reason: t?.error ?? "Cancelled",
    };
  }
  for (const [what, j] of [["Commit", commit], ["Publish", publish]] as const) {
    if (j?.status === "failed") {
      return { state: "failed", reason: `${what}: ${j.error ?? "failed"}` };
    }
    if (j?.status === "cancelled") {
      return { state: "cancelled", reason: j.error ?? "Cancelled" };
    }
  }
  if (publish?.status === "succeeded") {
    const update = jobs.get(-1);
    if (update?.status === "failed" || update?.status === "cancelled") {
      return {
        state: "failed",
        reason: `Repository update: ${update.error ?? update.status}`,
      };
    }
    return update?.status === "succeeded"
      ? { state: "published", reason: null }
      : { state: "publishing", reason: null };
  }
  if (publish?.status === "running") {
    return { state: "publishing", reason: null };
  }
  if (commit?.status === "succeeded") {
    return { state: publish ? "publishing" : "built", reason: null };
  }
  if (commit?.status === "running") {
    return { state: "committing", reason: null };
  }
  if (tasks.some((t) => t.status === "running" || t.status === "succeeded")) {
    return {
      state: tasks.every((t) => t.status === "succeeded")
        ? "committing"
        : "building",
      reason: null,
    };
  }
  return { state: "queued", reason: null };
}

/** The build as the API shows it: its row, its tasks, and its state read off their jobs. */
export async function viewSourceBuild(
  q: Queryable,
  r: SourceBuildRow,
): Promise<SourceBuild> {
  const taskRows = await q.query<{ id: number; arch: string; job_id: number }>(
    "SELECT id, arch, job_id FROM build_tasks WHERE source_build_id = $1 ORDER BY id",
    [r.id],
  );
  const ids = [
    ...taskRows.map((t) => t.job_id),
    ...(r.commit_job_id ? [r.commit_job_id] : []),
    ...(r.publish_job_id ? [r.publish_job_id] : []),
  ];
  const jobRows = await q.query<JobRow>(
    `SELECT id, status, result, attempts, error, started_at, finished_at FROM jobs
     WHERE id = ANY($1::int[])`,
    [ids],
  );
  const jobs = new Map(jobRows.map((j) => [j.id, j]));
  // A publish is visible once the update-repo job it queued has rewritten the summary.
  const publish = r.publish_job_id ? jobs.get(r.publish_job_id) : undefined;
  const updateId = (publish?.result as { "update-repo-job"?: number } | null)
    ?.["update-repo-job"];
  if (updateId !== undefined) {
    const [u] = await q.query<JobRow>(
      `SELECT id, status, result, attempts, error, started_at, finished_at FROM jobs
       WHERE id = $1`,
      [updateId],
    );
    if (u) jobs.set(-1, u);
  }
  const tasks: TaskView[] = taskRows.map((t) => {
    const j = jobs.get(t.job_id)!;
    return {
      id: t.id,
      arch: t.arch,
      jobId: t.job_id,
      status: j.status,
      attempts: j.attempts,
      error: j.error,
      startedAt: j.started_at,
      finishedAt: j.finished_at,
      durationSeconds: j.started_at
        ? ((j.finished_at ?? new Date()).getTime() - j.started_at.getTime()) /
          1000
        : null,
    };
  });
  const { state, reason } = deriveState(r, tasks, jobs);
  return {
    id: r.id,
    repo: r.repo,
    branch: r.branch,
    arches: r.arches,
    manifest: r.manifest,
    manifestName: r.manifest_name,
    appId: r.app_id,
    runtime: r.runtime,
    runtimeVersion: r.runtime_version,
    sdk: r.sdk,
    command: r.command,
    permissions: r.permissions,
    moduleCount: r.module_count,
    source: r.source,
    priority: r.priority,
    publish: r.publish,
    dependsOn: r.depends_on,
    cpu: r.cpu,
    memory: r.memory,
    timeoutSeconds: r.timeout_seconds,
    fmBuildId: r.fm_build_id,
    sourceArtifactId: r.source_artifact_id,
    commitJobId: r.commit_job_id,
    publishJobId: r.publish_job_id,
    createdBy: r.created_by,
    createdAt: r.created_at,
    state,
    reason,
    tasks,
  };
}
