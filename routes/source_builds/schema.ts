/**
 * @module Schemas of the server-side build routes (routes/source_builds/routes.ts): the
 * submission, a build with its tasks as the API shows it, and the path parameters.
 */
import { z } from "@hono/zod-openapi";
import type { SourceBuild } from "../../lib/source_builds/source_build_view.ts";

const ARCHES = ["x86_64", "aarch64", "i386", "arm"] as const;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/;

export const SubmitSchema = z.object({
  manifest: z.union([z.string(), z.record(z.string(), z.unknown())]).openapi({
    description:
      "The flatpak-builder manifest: JSON or YAML text, or a JSON object",
  }),
  manifestFormat: z.enum(["json", "yaml"]).optional(),
  manifestName: z.string().min(1).max(255).regex(
    /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._\/+-]+$/,
    "must be a relative path inside the sources",
  ).optional().openapi({
    description:
      "Where the manifest sits in the sources (its relative paths resolve from there); default `<app id>.json` at the top",
  }),
  source: z.union([
    z.object({
      git: z.object({
        url: z.string().regex(
          /^(https?|git|ssh|file):\/\/\S+$/,
          "must be an http(s), git, ssh or file URL",
        ),
        commit: z.string().regex(
          /^[0-9a-f]{40}$/,
          "must be a full commit id",
        ),
      }).strict(),
    }).strict(),
    z.object({
      archive: z.object({
        name: z.string().regex(
          /^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$/,
          "must be a file name",
        ),
        size: z.number().int().min(1).max(8 * 1024 ** 3),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256"),
      }).strict(),
    }).strict(),
  ]).optional().openapi({
    description:
      "Where the sources are: a git commit, or a source archive (tar, optionally compressed) that the client then uploads in chunks to `sourceUploadUrl`, as an artifact (the tasks wait for it). Without a source, the manifest must name every source itself (URLs, inline).",
  }),
  branch: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/).max(100)
    .optional(),
  arches: z.array(z.enum(ARCHES)).min(1).max(ARCHES.length).refine(
    (a) => new Set(a).size === a.length,
    "must not repeat an architecture",
  ),
  priority: z.number().int().min(-100).max(100).default(0),
  dependsOn: z.array(z.number().int().positive()).max(20).default([]),
  publish: z.enum(["auto", "manual"]).default("auto"),
  resources: z.object({
    cpu: z.string().regex(QUANTITY, "must be a Kubernetes quantity")
      .default("2"),
    memory: z.string().regex(QUANTITY, "must be a Kubernetes quantity")
      .default("4Gi"),
  }).strict().default({ cpu: "2", memory: "4Gi" }),
  timeoutSeconds: z.number().int().min(60).max(7 * 24 * 3600).optional(),
}).strict().openapi("SubmitBuildRequest");

export const TaskSchema = z.object({
  id: z.number().int(),
  arch: z.string(),
  jobId: z.number().int(),
  status: z.string(),
  attempts: z.number().int(),
  error: z.string().nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  durationSeconds: z.number().nullable(),
}).openapi("BuildTask");

export const SourceBuildSchema = z.object({
  id: z.number().int(),
  repo: z.string(),
  branch: z.string(),
  arches: z.array(z.string()),
  state: z.enum([
    "queued",
    "building",
    "committing",
    "publishing",
    "built",
    "published",
    "failed",
    "cancelled",
  ]),
  reason: z.string().nullable(),
  appId: z.string(),
  runtime: z.string(),
  runtimeVersion: z.string().nullable(),
  sdk: z.string(),
  command: z.string().nullable(),
  permissions: z.record(z.string(), z.array(z.string())),
  moduleCount: z.number().int(),
  source: z.unknown(),
  priority: z.number().int(),
  publish: z.enum(["auto", "manual"]),
  dependsOn: z.array(z.number().int()),
  resources: z.object({ cpu: z.string(), memory: z.string() }),
  timeoutSeconds: z.number().int(),
  flatManagerBuild: z.number().int().openapi({
    description: "The flat-manager build the architectures upload into",
  }),
  sourceUploadUrl: z.string().nullable().openapi({
    description:
      "Where to PUT the source archive in Content-Range chunks (an artifact of the build), when the sources are an archive",
  }),
  commitJobId: z.number().int().nullable(),
  publishJobId: z.number().int().nullable(),
  createdBy: z.string(),
  createdAt: z.string(),
  tasks: z.array(TaskSchema),
}).openapi("SourceBuild");

/** A build as the API shows it. */
export function toJson(
  b: SourceBuild,
  baseUrl: string,
): z.infer<typeof SourceBuildSchema> {
  return {
    id: b.id,
    repo: b.repo,
    branch: b.branch,
    arches: b.arches,
    state: b.state,
    reason: b.reason,
    appId: b.appId,
    runtime: b.runtime,
    runtimeVersion: b.runtimeVersion,
    sdk: b.sdk,
    command: b.command,
    permissions: b.permissions,
    moduleCount: b.moduleCount,
    source: b.source,
    priority: b.priority,
    publish: b.publish,
    dependsOn: b.dependsOn,
    resources: { cpu: b.cpu, memory: b.memory },
    timeoutSeconds: b.timeoutSeconds,
    flatManagerBuild: b.fmBuildId,
    sourceUploadUrl: b.sourceArtifactId === null
      ? null
      : `${baseUrl}/api/v1/build/${b.fmBuildId}/artifacts/${b.sourceArtifactId}`,
    commitJobId: b.commitJobId,
    publishJobId: b.publishJobId,
    createdBy: b.createdBy,
    createdAt: b.createdAt.toISOString(),
    tasks: b.tasks.map((t) => ({
      id: t.id,
      arch: t.arch,
      jobId: t.jobId,
      status: t.status,
      attempts: t.attempts,
      error: t.error,
      startedAt: t.startedAt?.toISOString() ?? null,
      finishedAt: t.finishedAt?.toISOString() ?? null,
      durationSeconds: t.durationSeconds,
    })),
  };
}

export const RepoParam = z.object({
  repo: z.string().openapi({ param: { name: "repo", in: "path" } }),
});
export const BuildParam = RepoParam.extend({
  id: z.coerce.number().int().positive().openapi({
    param: { name: "id", in: "path" },
  }),
});
export const TaskParam = BuildParam.extend({
  arch: z.string().openapi({ param: { name: "arch", in: "path" } }),
});
