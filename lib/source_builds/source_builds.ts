/**
 * @module Server-side builds: a manifest and its sources, built once per architecture. A
 * submission becomes, in one transaction, a flat-manager build (where the builders upload), one
 * build task and `build-task` job per architecture, then a `source-build.commit` job that waits
 * for every task to succeed and, when publishing is automatic, a `source-build.publish` job after
 * it. Dependencies on other builds are job dependencies on their last job (published, or
 * committed when they publish on request). A build's state is read off its jobs, never stored
 * twice (lib/source_builds/source_build_view.ts).
 */
import type { Queryable } from "../db/db.ts";
import type { JobQueue } from "../queue/queue.ts";
import { buildStore } from "../builds/build_store.ts";
import { initBuildRepos } from "../builds/build_disk.ts";
import { repoPaths } from "../repos/repo_disk.ts";
import { artifactStore } from "../artifacts/artifact_store.ts";
import { artifactPaths } from "../artifacts/chunk_upload.ts";
import { repoKey } from "../../jobs/update_repo.ts";
import type { ManifestSummary } from "../manifests/manifest.ts";
import type { TaskSource } from "../runners/runner.ts";
import {
  type SourceBuild,
  type SourceBuildRow,
  viewSourceBuild,
} from "./source_build_view.ts";

export const BUILD_TASK_KIND = "build-task";
export const SOURCE_COMMIT_KIND = "source-build.commit";
export const SOURCE_PUBLISH_KIND = "source-build.publish";

/** Concurrency groups of build tasks: all builds, and one repository's. */
export const BUILDS_LIMIT_KEY = "builds";
export const repoBuildsLimitKey = (repo: string): string =>
  `builds:repo:${repo}`;

/** What a submission asks for (already validated). */
export interface SourceBuildRequest {
  repo: string;
  branch: string;
  arches: string[];
  manifest: Record<string, unknown>;
  manifestName: string;
  summary: ManifestSummary;
  /** A git commit, or null; an archive comes as `archive` instead. */
  source: TaskSource | null;
  /** A source archive to be uploaded into the build (chunked, as an artifact). */
  archive?: { name: string; size: number; sha256: string };
  priority: number;
  publish: "auto" | "manual";
  dependsOn: number[];
  cpu: string;
  memory: string;
  timeoutSeconds: number;
  createdBy: string;
  publicDownload: boolean;
}

/** Thrown when a dependency does not exist. */
export class UnknownDependencyError extends Error {
  override name = "UnknownDependencyError";
}

export const sourceBuildStore = {
  /**
   * Creates the build and queues its jobs, in the caller's transaction: nothing is queued unless
   * everything is.
   */
  async create(
    tx: Queryable,
    queue: JobQueue,
    req: SourceBuildRequest,
    perRepoLimit: number,
    disk: { dataDir: string; collectionId: string | null; baseUrl: string },
  ): Promise<number> {
    // The jobs each dependency ends with: its task jobs wait for them.
    const deps = await tx.query<
      { id: number; commit_job_id: number; publish_job_id: number | null }
    >(
      "SELECT id, commit_job_id, publish_job_id FROM source_builds WHERE id = ANY($1::int[])",
      [req.dependsOn],
    );
    const missing = req.dependsOn.filter((d) => !deps.some((x) => x.id === d));
    if (missing.length > 0) {
      throw new UnknownDependencyError(
        `No build ${missing.join(", ")} to depend on`,
      );
    }
    await queue.setLimit(repoBuildsLimitKey(req.repo), perRepoLimit, tx);
    const fm = await buildStore.create(tx, {
      repo: req.repo,
      appId: req.summary.appId,
      publicDownload: req.publicDownload,
      buildLogUrl: null,
      tokenName: req.createdBy,
      tokenType: null,
    });
    // Its upload and build repositories, as POST /api/v1/build makes them.
    await initBuildRepos(
      disk.dataDir,
      fm.id,
      repoPaths(disk.dataDir).repo(req.repo),
      disk.collectionId,
    );
    let source = req.source;
    let artifactId: number | null = null;
    if (req.archive) {
      const a = await artifactStore.create(tx, {
        buildId: fm.id,
        kind: "source",
        name: req.archive.name,
        size: req.archive.size,
        sha256: req.archive.sha256,
        uploader: req.createdBy,
      });
      await Deno.mkdir(artifactPaths(disk.dataDir, fm.id, a.id).dir, {
        recursive: true,
      });
      artifactId = a.id;
      source = {
        kind: "archive",
        url: `${disk.baseUrl}/api/v1/build/${fm.id}/artifacts/${a.id}/content`,
        sha256: req.archive.sha256,
      };
    }
    const [row] = await tx.query<{ id: number }>(
      `INSERT INTO source_builds (repo, branch, arches, manifest, manifest_name, app_id, runtime,
         runtime_version, sdk, command, permissions, module_count, source, priority, publish,
         depends_on, cpu, memory, timeout_seconds, fm_build_id, created_by, source_artifact_id)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13::jsonb, $14,
         $15, $16, $17, $18, $19, $20, $21, $22)
       RETURNING id`,
      [
        req.repo,
        req.branch,
        req.arches,
        JSON.stringify(req.manifest),
        req.manifestName,
        req.summary.appId,
        req.summary.runtime,
        req.summary.runtimeVersion,
        req.summary.sdk,
        req.summary.command,
        JSON.stringify(req.summary.permissions),
        req.summary.moduleCount,
        JSON.stringify(source),
        req.priority,
        req.publish,
        req.dependsOn,
        req.cpu,
        req.memory,
        req.timeoutSeconds,
        fm.id,
        req.createdBy,
        artifactId,
      ],
    );
    const id = row!.id;
    const waitFor = deps.map((d) => d.publish_job_id ?? d.commit_job_id);
    const taskJobs: number[] = [];
    for (const arch of req.arches) {
      const job = await queue.enqueue(
        BUILD_TASK_KIND,
        { sourceBuild: id, arch },
        {
          priority: req.priority,
          dependsOn: waitFor,
          depPolicy: "succeeded",
          // Infrastructure failures are retried; a build that does not compile is not.
          maxAttempts: 3,
          retryBaseSeconds: 10,
          limitKeys: [BUILDS_LIMIT_KEY, repoBuildsLimitKey(req.repo)],
        },
        tx,
      );
      await tx.query(
        "INSERT INTO build_tasks (source_build_id, arch, job_id) VALUES ($1, $2, $3)",
        [id, arch, job.id],
      );
      taskJobs.push(job.id);
    }
    const commit = await queue.enqueue(
      SOURCE_COMMIT_KIND,
      { sourceBuild: id },
      {
        priority: req.priority,
        dependsOn: taskJobs,
        depPolicy: "succeeded",
        maxAttempts: 1,
      },
      tx,
    );
    let publishJob: number | null = null;
    if (req.publish === "auto") {
      publishJob = (await queue.enqueue(
        SOURCE_PUBLISH_KIND,
        { sourceBuild: id },
        {
          priority: 20,
          dependsOn: [commit.id],
          depPolicy: "succeeded",
          serialKey: repoKey(req.repo),
          maxAttempts: 1,
        },
        tx,
      )).id;
    }
    await tx.query(
      "UPDATE source_builds SET commit_job_id = $2, publish_job_id = $3 WHERE id = $1",
      [id, commit.id, publishJob],
    );
    return id;
  },

  async get(q: Queryable, id: number): Promise<SourceBuild | undefined> {
    const [row] = await q.query<SourceBuildRow>(
      "SELECT * FROM source_builds WHERE id = $1",
      [id],
    );
    return row ? await viewSourceBuild(q, row) : undefined;
  },

  async list(
    q: Queryable,
    repo: string | undefined,
    limit: number,
  ): Promise<SourceBuild[]> {
    const rows = await q.query<SourceBuildRow>(
      repo === undefined
        ? "SELECT * FROM source_builds ORDER BY id DESC LIMIT $1"
        : "SELECT * FROM source_builds WHERE repo = $2 ORDER BY id DESC LIMIT $1",
      repo === undefined ? [limit] : [limit, repo],
    );
    const out: SourceBuild[] = [];
    for (const r of rows) out.push(await viewSourceBuild(q, r));
    return out;
  },

  /** Task `arch` of build `id`, with its job. */
  async task(
    q: Queryable,
    id: number,
    arch: string,
  ): Promise<{ id: number; jobId: number } | undefined> {
    const [row] = await q.query<{ id: number; job_id: number }>(
      "SELECT id, job_id FROM build_tasks WHERE source_build_id = $1 AND arch = $2",
      [id, arch],
    );
    return row ? { id: row.id, jobId: row.job_id } : undefined;
  },

  async markCancelled(q: Queryable, id: number): Promise<void> {
    await q.query("UPDATE source_builds SET cancelled = true WHERE id = $1", [
      id,
    ]);
  },
};
