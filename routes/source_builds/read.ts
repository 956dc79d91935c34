/** @module One server-side build, with each architecture's state and duration. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { BuildParam, SourceBuildSchema, toJson } from "./schema.ts";
import type { SourceBuildContext } from "./context.ts";

/** `GET /api/v1/repos/{repo}/builds/{id}`. */
export function addReadBuild(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, buildOf }: SourceBuildContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{repo}/builds/{id}",
      tags: ["builds"],
      summary: "A build with each architecture's state and duration",
      security: nativeSecurity,
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
}
