/**
 * @module The jobs of a server-side build (lib/source_builds/source_builds.ts): `build-task` runs
 * one architecture on the configured runner with an upload token for that build only;
 * `source-build.commit` and `source-build.publish` then take the flat-manager build through the
 * same commit and publish as an uploaded one (jobs/commit.ts, jobs/publish.ts).
 */
import type { Db } from "../lib/db/db.ts";
import {
  buildStore,
  PublishedState,
  RepoState,
} from "../lib/builds/build_store.ts";
import {
  DeferJobError,
  type JobContext,
  PermanentJobError,
} from "../lib/queue/worker.ts";
import { artifactStore } from "../lib/artifacts/artifact_store.ts";

/** How long a build waits for its source archive upload before it fails. */
const SOURCE_UPLOAD_WAIT_SECONDS = 24 * 3600;
import type { Runner, RunResult } from "../lib/runners/runner.ts";
import { sourceBuildStore } from "../lib/source_builds/source_builds.ts";
import type { TokenAuthenticator } from "../lib/tokens/authenticator.ts";
import type { TokenRegistry } from "../lib/tokens/registry.ts";
import { type CommitDeps, runCommit } from "./commit.ts";
import { type PublishDeps, runPublish } from "./publish.ts";

/** What the build jobs need. */
export interface SourceBuildDeps extends CommitDeps, PublishDeps {
  db: Db;
  tokens: TokenAuthenticator;
  registry: TokenRegistry;
  runner: Runner;
}

/** Runs one architecture of build `input.sourceBuild`. */
export async function runBuildTask(
  deps: SourceBuildDeps,
  input: { sourceBuild: number; arch: string },
  { log, signal, job }: Pick<JobContext, "log" | "signal" | "job">,
): Promise<{ outcome: string }> {
  const sb = await sourceBuildStore.get(deps.db, input.sourceBuild);
  if (!sb) {
    throw new PermanentJobError(`Cannot find build ${input.sourceBuild}`);
  }
  const task = await sourceBuildStore.task(deps.db, sb.id, input.arch);
  if (!task) {
    throw new PermanentJobError(
      `Build ${sb.id} has no ${input.arch} task`,
    );
  }
  if (sb.sourceArtifactId !== null) {
    const a = await artifactStore.get(
      deps.db,
      sb.fmBuildId,
      sb.sourceArtifactId,
    );
    if (!a || a.status === "failed") {
      throw new PermanentJobError(
        `The source archive did not arrive: ${a?.error ?? "it is gone"}`,
      );
    }
    if (a.status !== "complete") {
      const waited = (Date.now() - sb.createdAt.getTime()) / 1000;
      if (waited > SOURCE_UPLOAD_WAIT_SECONDS) {
        throw new PermanentJobError(
          `The source archive was not uploaded within ${SOURCE_UPLOAD_WAIT_SECONDS} s`,
        );
      }
      throw new DeferJobError(
        `Waiting for the source archive (${a.received} of ${a.size} bytes)`,
        2,
      );
    }
  }
  await log(
    `Building ${sb.appId} for ${input.arch} on the ${deps.runner.name} runner (attempt ${job.attempts})`,
  );
  // A token that can only upload into this one build, and download from its repository (the
  // runtime and SDK come from there, and a private one asks for a token), for as long as the
  // task may run. Revoked when the task ends: the runner keeps it in the URL of its flatpak
  // remote (lib/cli/builder.ts), where it must not stay a key to a private repository.
  const now = Math.floor(Date.now() / 1000);
  const jti = `builder-${sb.id}-${input.arch}-${crypto.randomUUID()}`;
  const exp = now + sb.timeoutSeconds + 900;
  const uploadToken = await deps.tokens.sign({
    jti,
    sub: `build/${sb.fmBuildId}`,
    scope: ["upload", "download"],
    repos: [sb.repo],
    prefixes: [sb.appId],
    apps: [],
    branches: [],
    name: `builder ${sb.id}/${input.arch}`,
    exp,
  });
  let result: RunResult;
  try {
    result = await deps.runner.run({
      spec: {
        taskId: task.id,
        arch: input.arch,
        manifest: sb.manifest,
        manifestName: sb.manifestName,
        source: sb.source,
        uploadBuildUrl: `${deps.baseUrl}/api/v1/build/${sb.fmBuildId}`,
        branch: sb.branch,
        depsFrom: `${deps.baseUrl}/repo/${sb.repo}.flatpakrepo`,
      },
      uploadToken,
      resources: {
        cpu: sb.cpu,
        memory: sb.memory,
        timeoutSeconds: sb.timeoutSeconds,
      },
      log,
      signal,
    });
  } finally {
    const why = await deps.registry
      .revoke([jti], { expires: new Date(exp * 1000) })
      .then(() => undefined, (err) => err instanceof Error ? err.message : err);
    if (why !== undefined) {
      await log(`Could not revoke the task's token: ${why}`);
    }
  }
  await log(`${input.arch}: ${result.outcome}: ${result.message}`);
  switch (result.outcome) {
    case "succeeded":
      return { outcome: "succeeded" };
    case "infrastructure":
      // Retried by the queue with backoff, up to the job's attempts.
      throw new Error(result.message);
    case "cancelled":
      throw new PermanentJobError("Cancelled");
    default:
      throw new PermanentJobError(result.message);
  }
}

/** Commits the flat-manager build once every architecture has uploaded. */
export async function runSourceCommit(
  deps: SourceBuildDeps,
  input: { sourceBuild: number },
  ctx: Pick<JobContext, "log" | "signal" | "job">,
): Promise<{ refs: Record<string, string> }> {
  const sb = await sourceBuildStore.get(deps.db, input.sourceBuild);
  if (!sb) {
    throw new PermanentJobError(`Cannot find build ${input.sourceBuild}`);
  }
  const fm = await buildStore.get(deps.db, sb.fmBuildId);
  if (!fm || fm.repoState !== RepoState.Uploading) {
    throw new PermanentJobError(
      `Build ${sb.fmBuildId} is not waiting for a commit`,
    );
  }
  await deps.db.query(
    "UPDATE builds SET repo_state = $2, commit_job_id = $3 WHERE id = $1",
    [fm.id, RepoState.Committing, ctx.job.id],
  );
  await ctx.log(
    `Every architecture is in (${
      sb.arches.join(", ")
    }): committing build ${fm.id}`,
  );
  return await runCommit(deps, {
    build: fm.id,
    endoflife: null,
    endoflife_rebase: null,
    token_type: null,
  }, ctx);
}

/** Publishes the committed build (publishing was automatic). */
export async function runSourcePublish(
  deps: SourceBuildDeps,
  input: { sourceBuild: number },
  ctx: Pick<JobContext, "log" | "signal" | "job">,
): Promise<{ refs: Record<string, string>; "update-repo-job": number }> {
  const sb = await sourceBuildStore.get(deps.db, input.sourceBuild);
  if (!sb) {
    throw new PermanentJobError(`Cannot find build ${input.sourceBuild}`);
  }
  const fm = await buildStore.get(deps.db, sb.fmBuildId);
  if (!fm) throw new PermanentJobError(`Cannot find build ${sb.fmBuildId}`);
  if (fm.repoState === RepoState.Validating) {
    throw new PermanentJobError(
      `Build ${fm.id} is waiting for its checks; publish it with POST /api/v1/build/${fm.id}/publish once they pass`,
    );
  }
  if (
    fm.repoState !== RepoState.Ready ||
    fm.publishedState !== PublishedState.Unpublished
  ) {
    throw new PermanentJobError(`Build ${fm.id} is not ready to publish`);
  }
  await deps.db.query(
    "UPDATE builds SET published_state = $2, publish_job_id = $3 WHERE id = $1",
    [fm.id, PublishedState.Publishing, ctx.job.id],
  );
  return await runPublish(deps, { build: fm.id }, ctx);
}
