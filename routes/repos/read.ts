/** @module One repository, for whoever may read it. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { NameParam, RepoSchema } from "./schema.ts";
import type { RepoContext } from "./context.ts";

/** `GET /api/v1/repos/{name}`. */
export function addReadRepo(
  app: OpenAPIHono<AppEnv>,
  { maybeAuth, json, readable }: RepoContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}",
      tags: ["repos"],
      summary: "Get a repository",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: { params: NameParam },
      responses: {
        200: jsonResponse("The repository", RepoSchema),
        ...errors(401, 404),
      },
    }),
    async (c) =>
      c.json(json(await readable(c, c.req.valid("param").name)), 200),
  );
}
