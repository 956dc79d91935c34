/**
 * @module Server-side builds (native API): a CI job submits a flatpak-builder manifest and its
 * sources once, for several architectures; Flatyard builds each architecture as its own job on
 * the configured runner, then commits and publishes (lib/source_builds/source_builds.ts). The
 * manifest is checked before anything is queued: a bad one is a 422 with one entry per field.
 * Submitting needs write on the repository (users), or a token with the `build` scope for the
 * repository whose prefixes allow the app id (CI).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth } from "../lib/http/auth.ts";
import { actorOf, type AppEnv, type Principal } from "../lib/http/env.ts";
import { requireRepoRole } from "../lib/http/guards.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { errors, jsonBody, jsonResponse } from "../lib/http/openapi.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { parseManifest } from "../lib/manifests/manifest.ts";
import { repoStore } from "../lib/repos/repo_store.ts";
import {
  type SourceBuild,
  sourceBuildStore,
  UnknownDependencyError,
} from "../lib/source_builds/source_builds.ts";
import {
  checkSubAndScope,
  hasTokenPrefix,
  hasTokenRepo,
} from "../lib/tokens/matching.ts";
import { isAdmin } from "../lib/http/env.ts";

const ARCHES = ["x86_64", "aarch64", "i386", "arm"] as const;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/;

const SubmitSchema = z.object({
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

const TaskSchema = z.object({
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

const SourceBuildSchema = z.object({
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

function toJson(
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

/** Write access for builds: users with write on the repo; CI tokens with `build` on it. */
function requireBuildAccess(p: Principal, repo: string, appId?: string): void {
  if (p.kind === "user" || isAdmin(p)) {
    requireRepoRole(p, repo, "write");
    return;
  }
  const denial = checkSubAndScope(p.claims, "build", ["build"]) ??
    (hasTokenRepo(p.claims, repo) ? undefined : "Not matching repo in token") ??
    (appId === undefined || hasTokenPrefix(p.claims, appId)
      ? undefined
      : "App ID not matching prefix in token");
  if (denial) throw problems.forbidden(denial);
}

const RepoParam = z.object({
  repo: z.string().openapi({ param: { name: "repo", in: "path" } }),
});
const BuildParam = RepoParam.extend({
  id: z.coerce.number().int().positive().openapi({
    param: { name: "id", in: "path" },
  }),
});
const TaskParam = BuildParam.extend({
  arch: z.string().openapi({ param: { name: "arch", in: "path" } }),
});

/** The server-side build routes. */
export function createSourceBuildRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const security = [{ bearer: [] }, { session: [] }];

  async function visible(p: Principal, repo: string) {
    const r = await repoStore.get(deps.db, repo);
    if (!r || !canReadRepo(p, r)) {
      throw problems.notFound(`No repository "${repo}"`);
    }
    return r;
  }

  async function buildOf(p: Principal, repo: string, id: number) {
    await visible(p, repo);
    const b = await sourceBuildStore.get(deps.db, id);
    if (!b || b.repo !== repo) {
      throw problems.notFound(`No build ${id} in repository "${repo}"`);
    }
    return b;
  }

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{repo}/builds",
      tags: ["builds"],
      summary: "Submit a manifest to build for several architectures",
      description:
        "Checks the manifest, then queues one build task per architecture, a commit once all succeeded and (with `publish: auto`) a publish. Invalid input is a 422 naming each field, and nothing is queued.",
      security,
      middleware: [auth] as const,
      request: { params: RepoParam, body: jsonBody(SubmitSchema) },
      responses: {
        201: jsonResponse("The build, queued", SourceBuildSchema),
        ...errors(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const p = c.get("principal");
      const { repo: name } = c.req.valid("param");
      const body = c.req.valid("json");
      const repo = await visible(p, name);
      requireBuildAccess(p, name);
      const parsed = parseManifest(
        body.manifest,
        body.manifestFormat ?? "auto",
      );
      if (!parsed.ok) {
        const list = parsed.issues.map((i) => ({
          path: i.path === "(manifest)" ? "manifest" : `manifest.${i.path}`,
          message: i.message,
        }));
        throw problems.invalid(
          list.map((e) => `${e.path}: ${e.message}`).join("; "),
          list,
        );
      }
      requireBuildAccess(p, name, parsed.summary.appId);
      const { actor } = actorOf(p);
      let id: number;
      try {
        id = await deps.db.transaction((tx) =>
          sourceBuildStore.create(
            tx,
            deps.queue,
            {
              repo: name,
              branch: body.branch ?? parsed.summary.branch ??
                repo.defaultBranch,
              arches: body.arches,
              manifest: parsed.manifest,
              manifestName: body.manifestName ??
                `${parsed.summary.appId}.json`,
              summary: parsed.summary,
              source: body.source && "git" in body.source
                ? {
                  kind: "git",
                  url: body.source.git.url,
                  commit: body.source.git.commit,
                }
                : null,
              ...(body.source && "archive" in body.source
                ? { archive: body.source.archive }
                : {}),
              priority: body.priority,
              publish: body.publish,
              dependsOn: body.dependsOn,
              cpu: body.resources.cpu,
              memory: body.resources.memory,
              timeoutSeconds: body.timeoutSeconds ??
                deps.config.builds.timeoutSeconds,
              createdBy: actor,
              publicDownload: repo.public,
            },
            deps.config.builds.perRepo,
            {
              dataDir: deps.config.dataDir,
              collectionId: repo.collectionId,
              baseUrl: deps.config.baseUrl,
            },
          )
        );
      } catch (e) {
        if (e instanceof UnknownDependencyError) {
          throw problems.invalid(e.message, [{
            path: "dependsOn",
            message: e.message,
          }]);
        }
        throw e;
      }
      await deps.audit.record({
        ...actorOf(p),
        action: "build.submit",
        objectType: "build",
        objectId: String(id),
        details: {
          repo: name,
          appId: parsed.summary.appId,
          arches: body.arches,
        },
      });
      const b = await sourceBuildStore.get(deps.db, id);
      return c.json(toJson(b!, deps.config.baseUrl), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{repo}/builds",
      tags: ["builds"],
      summary: "List a repository's server-side builds, newest first",
      security,
      middleware: [auth] as const,
      request: {
        params: RepoParam,
        query: z.object({
          limit: z.coerce.number().int().min(1).max(200).default(50),
        }),
      },
      responses: {
        200: jsonResponse("The builds", z.array(SourceBuildSchema)),
        ...errors(401, 404),
      },
    }),
    async (c) => {
      const p = c.get("principal");
      const { repo } = c.req.valid("param");
      await visible(p, repo);
      const list = await sourceBuildStore.list(
        deps.db,
        repo,
        c.req.valid("query").limit,
      );
      return c.json(list.map((b) => toJson(b, deps.config.baseUrl)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{repo}/builds/{id}",
      tags: ["builds"],
      summary: "A build with each architecture's state and duration",
      security,
      middleware: [auth] as const,
      request: { params: BuildParam },
      responses: {
        200: jsonResponse("The build", SourceBuildSchema),
        ...errors(401, 404),
      },
    }),
    async (c) => {
      const { repo, id } = c.req.valid("param");
      return c.json(
        toJson(
          await buildOf(c.get("principal"), repo, id),
          deps.config.baseUrl,
        ),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{repo}/builds/{id}/cancel",
      tags: ["builds"],
      summary:
        "Cancel a whole build: every architecture, the commit and the publish",
      security,
      middleware: [auth] as const,
      request: { params: BuildParam },
      responses: {
        200: jsonResponse("The build", SourceBuildSchema),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const p = c.get("principal");
      const { repo, id } = c.req.valid("param");
      const b = await buildOf(p, repo, id);
      requireBuildAccess(p, repo, b.appId);
      await sourceBuildStore.markCancelled(deps.db, id);
      for (const t of b.tasks) await deps.queue.cancel(t.jobId);
      if (b.commitJobId) await deps.queue.cancel(b.commitJobId);
      if (b.publishJobId) await deps.queue.cancel(b.publishJobId);
      await deps.audit.record({
        ...actorOf(p),
        action: "build.cancel",
        objectType: "build",
        objectId: String(id),
        details: { repo },
      });
      return c.json(
        toJson((await sourceBuildStore.get(deps.db, id))!, deps.config.baseUrl),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{repo}/builds/{id}/tasks/{arch}/cancel",
      tags: ["builds"],
      summary:
        "Cancel one architecture (the build then does not commit or publish)",
      security,
      middleware: [auth] as const,
      request: { params: TaskParam },
      responses: {
        200: jsonResponse("The build", SourceBuildSchema),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const p = c.get("principal");
      const { repo, id, arch } = c.req.valid("param");
      const b = await buildOf(p, repo, id);
      requireBuildAccess(p, repo, b.appId);
      const task = b.tasks.find((t) => t.arch === arch);
      if (!task) throw problems.notFound(`Build ${id} has no ${arch} task`);
      await deps.queue.cancel(task.jobId);
      await deps.audit.record({
        ...actorOf(p),
        action: "build.cancel-task",
        objectType: "build",
        objectId: String(id),
        details: { repo, arch },
      });
      return c.json(
        toJson((await sourceBuildStore.get(deps.db, id))!, deps.config.baseUrl),
        200,
      );
    },
  );

  return app;
}
