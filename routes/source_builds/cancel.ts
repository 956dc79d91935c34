/** @module Cancels a whole server-side build: every architecture, the commit and the publish. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { sourceBuildStore } from "../../lib/source_builds/source_builds.ts";
import { BuildParam, SourceBuildSchema, toJson } from "./schema.ts";
import { requireBuildAccess, type SourceBuildContext } from "./context.ts";

/** `POST /api/v1/repos/{repo}/builds/{id}/cancel`. */
export function addCancelBuild(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, buildOf }: SourceBuildContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{repo}/builds/{id}/cancel",
      tags: ["builds"],
      summary:
        "Cancel a whole build: every architecture, the commit and the publish",
      security: nativeSecurity,
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
}
