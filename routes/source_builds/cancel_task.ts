/** @module Cancels one architecture of a build, which then neither commits nor publishes. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { sourceBuildStore } from "../../lib/source_builds/source_builds.ts";
import { SourceBuildSchema, TaskParam, toJson } from "./schema.ts";
import { requireBuildAccess, type SourceBuildContext } from "./context.ts";

/** `POST /api/v1/repos/{repo}/builds/{id}/tasks/{arch}/cancel`. */
export function addCancelTask(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, buildOf }: SourceBuildContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{repo}/builds/{id}/tasks/{arch}/cancel",
      tags: ["builds"],
      summary:
        "Cancel one architecture (the build then does not commit or publish)",
      security: nativeSecurity,
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
}
