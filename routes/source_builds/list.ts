/** @module Lists a repository's server-side builds, newest first. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { sourceBuildStore } from "../../lib/source_builds/source_builds.ts";
import { RepoParam, SourceBuildSchema, toJson } from "./schema.ts";
import type { SourceBuildContext } from "./context.ts";

/** `GET /api/v1/repos/{repo}/builds`. */
export function addListBuilds(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, visible }: SourceBuildContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{repo}/builds",
      tags: ["builds"],
      summary: "List a repository's server-side builds, newest first",
      security: nativeSecurity,
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
}
