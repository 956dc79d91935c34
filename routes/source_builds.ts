/**
 * @module Server-side builds (native API): a CI job submits a flatpak-builder manifest and its
 * sources once, for several architectures; Flatyard builds each architecture as its own job on
 * the configured runner, then commits and publishes (lib/source_builds/source_builds.ts). The
 * manifest is checked before anything is queued: a bad one is a 422 with one entry per field.
 * Submitting needs write on the repository (users), or a token with the `build` scope for the
 * repository whose prefixes allow the app id (CI).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import {
  BuildParam,
  RepoParam,
  SourceBuildSchema,
  SubmitSchema,
  TaskParam,
  toJson,
} from "./source_builds_schema.ts";
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
  sourceBuildStore,
  UnknownDependencyError,
} from "../lib/source_builds/source_builds.ts";
import {
  checkSubAndScope,
  hasTokenPrefix,
  hasTokenRepo,
} from "../lib/tokens/matching.ts";
import { isAdmin } from "../lib/http/env.ts";

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
