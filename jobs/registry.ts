/**
 * @module The job handlers a worker runs, by kind: each parses its payload (a job row may be
 * older than the code, or written by another version) and calls a `run<Kind>` from jobs/.
 */
import { z } from "zod";
import type { Deps } from "../lib/deps.ts";
import {
  type JobContext,
  type JobHandler,
  PermanentJobError,
} from "../lib/queue/worker.ts";
import { MAINTENANCE_KIND, runMaintenance } from "./maintenance.ts";
import { REPO_DELETE_KIND, runRepoDelete } from "./repo_delete.ts";
import { REPO_VALIDATE_KIND, runRepoValidate } from "./repo_validate.ts";
import { COMMIT_KIND, runCommit } from "./commit.ts";
import { PUBLISH_KIND, runPublish } from "./publish.ts";
import { runUpdateRepo, UPDATE_REPO_KIND } from "./update_repo.ts";
import { REPUBLISH_KIND, RepublishInput, runRepublish } from "./republish.ts";
import { PRUNE_KIND, PruneInput, runPrune } from "./prune.ts";
import { CHECK_KIND, runCheck } from "./check.ts";
import {
  runBuildTask,
  runSourceCommit,
  runSourcePublish,
} from "./source_build.ts";
import {
  BUILD_TASK_KIND,
  SOURCE_COMMIT_KIND,
  SOURCE_PUBLISH_KIND,
} from "../lib/source_builds/source_builds.ts";
import { localRunner } from "../lib/runners/local.ts";
import { KubernetesRunner } from "../lib/runners/kubernetes.ts";
import type { Runner } from "../lib/runners/runner.ts";
import { join } from "node:path";
import { CDN_PURGE_KIND, CdnPurgeInput, runCdnPurge } from "./cdn_purge.ts";
import {
  ARTIFACT_IMPORT_KIND,
  ArtifactImportInput,
  runArtifactImport,
} from "./artifact_import.ts";

/** A handler whose payload is checked against `schema` first; a bad payload is not retried. */
function parsed<S extends z.ZodType>(
  kind: string,
  schema: S,
  run: (input: z.infer<S>, ctx: JobContext) => Promise<unknown>,
): JobHandler {
  return (payload, ctx) => {
    const input = schema.safeParse(payload);
    if (!input.success) {
      throw new PermanentJobError(
        `Invalid ${kind} payload: ${
          input.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`)
            .join("; ")
        }`,
      );
    }
    return run(input.data, ctx);
  };
}

/** Every job kind Flatyard runs; `runner` overrides the configured build runner (tests). */
export function createJobHandlers(
  deps: Deps,
  opts: { runner?: Runner } = {},
): Record<string, JobHandler> {
  const dataDir = deps.config.dataDir;
  const pipeline = {
    db: deps.db,
    queue: deps.queue,
    dataDir,
    baseUrl: deps.config.baseUrl,
    repoKeys: deps.repoKeys,
    hooks: deps.config.hooks,
  };
  let runner = opts.runner;
  const builds = () => {
    const k8s = deps.config.kubernetes;
    runner ??= deps.config.runner === "kubernetes"
      ? new KubernetesRunner({
        namespace: k8s.namespace,
        image: k8s.image!,
        kubeConfig: k8s.kubeconfig
          ? { kind: "file", path: k8s.kubeconfig }
          : { kind: "in-cluster" },
        security: k8s.security,
        logger: deps.logger,
      })
      : localRunner({
        workRoot: join(dataDir, "runner", "tasks"),
        flatpakUserDir: join(dataDir, "runner", "flatpak"),
      });
    return {
      ...pipeline,
      tokens: deps.tokens,
      registry: deps.registry,
      runner,
    };
  };
  return {
    [COMMIT_KIND]: parsed(
      COMMIT_KIND,
      z.object({
        build: z.number().int(),
        endoflife: z.string().nullable(),
        endoflife_rebase: z.string().nullable(),
        token_type: z.number().int().nullable(),
      }),
      (input, ctx) => runCommit(pipeline, input, ctx),
    ),
    [BUILD_TASK_KIND]: parsed(
      BUILD_TASK_KIND,
      z.object({ sourceBuild: z.number().int(), arch: z.string() }),
      (input, ctx) => runBuildTask(builds(), input, ctx),
    ),
    [SOURCE_COMMIT_KIND]: parsed(
      SOURCE_COMMIT_KIND,
      z.object({ sourceBuild: z.number().int() }),
      (input, ctx) => runSourceCommit(builds(), input, ctx),
    ),
    [SOURCE_PUBLISH_KIND]: parsed(
      SOURCE_PUBLISH_KIND,
      z.object({ sourceBuild: z.number().int() }),
      (input, ctx) => runSourcePublish(builds(), input, ctx),
    ),
    [CHECK_KIND]: parsed(
      CHECK_KIND,
      z.object({ build: z.number().int(), name: z.string() }),
      (input, ctx) => runCheck(pipeline, input, ctx),
    ),
    [PUBLISH_KIND]: parsed(
      PUBLISH_KIND,
      z.object({ build: z.number().int() }),
      (input, ctx) => runPublish(pipeline, input, ctx),
    ),
    [REPUBLISH_KIND]: parsed(
      REPUBLISH_KIND,
      RepublishInput,
      (input, ctx) => runRepublish(pipeline, input, ctx),
    ),
    [PRUNE_KIND]: parsed(
      PRUNE_KIND,
      PruneInput,
      (input, ctx) => runPrune(pipeline, input, ctx),
    ),
    [ARTIFACT_IMPORT_KIND]: parsed(
      ARTIFACT_IMPORT_KIND,
      ArtifactImportInput,
      (input, ctx) => runArtifactImport({ db: deps.db, dataDir }, input, ctx),
    ),
    [UPDATE_REPO_KIND]: parsed(
      UPDATE_REPO_KIND,
      z.object({ repo: z.string() }),
      (input, ctx) => runUpdateRepo(pipeline, input, ctx),
    ),
    [CDN_PURGE_KIND]: parsed(
      CDN_PURGE_KIND,
      CdnPurgeInput,
      (input, ctx) =>
        runCdnPurge(
          {
            db: deps.db,
            baseUrl: deps.config.baseUrl,
            retry: deps.config.cdnPurge,
            secrets: deps.config.cdnPurge.secrets,
            hosts: deps.config.cdnPurge.hosts,
          },
          input,
          ctx,
        ),
    ),
    [MAINTENANCE_KIND]: parsed(
      MAINTENANCE_KIND,
      z.object({}),
      (input, ctx) => runMaintenance(deps, input, ctx),
    ),
    [REPO_DELETE_KIND]: parsed(
      REPO_DELETE_KIND,
      z.object({ repo: z.string(), trashPath: z.string().nullable() }),
      (input, ctx) => runRepoDelete({ dataDir }, input, ctx),
    ),
    [REPO_VALIDATE_KIND]: parsed(
      REPO_VALIDATE_KIND,
      z.object({ repo: z.string() }),
      (input, ctx) => runRepoValidate({ db: deps.db, dataDir }, input, ctx),
    ),
  };
}
