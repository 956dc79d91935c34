/** @module Submits a manifest to build for several architectures, after checking it. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import {
  errors,
  jsonBody,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { parseManifest } from "../../lib/manifests/manifest.ts";
import {
  sourceBuildStore,
  UnknownDependencyError,
} from "../../lib/source_builds/source_builds.ts";
import {
  RepoParam,
  SourceBuildSchema,
  SubmitSchema,
  toJson,
} from "./schema.ts";
import { requireBuildAccess, type SourceBuildContext } from "./context.ts";

/** `POST /api/v1/repos/{repo}/builds`. */
export function addSubmitBuild(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, visible }: SourceBuildContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{repo}/builds",
      tags: ["builds"],
      summary: "Submit a manifest to build for several architectures",
      description:
        "Checks the manifest, then queues one build task per architecture, a commit once all succeeded and (with `publish: auto`) a publish. Invalid input is a 422 naming each field, and nothing is queued.",
      security: nativeSecurity,
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
}
