/** @module The latest validation job of a repository, with its result (repository admins). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireRepoRole } from "../../lib/http/guards.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { REPO_VALIDATE_KIND } from "../../jobs/repo_validate.ts";
import { JobSchema, toJobJson } from "../jobs.ts";
import { NameParam } from "./schema.ts";
import type { RepoContext } from "./context.ts";

/** `GET /api/v1/repos/{name}/validation`. */
export function addRepoValidation(
  app: OpenAPIHono<AppEnv>,
  { deps, auth }: RepoContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/validation",
      tags: ["repos"],
      summary: "The latest validation job of a repository, with its result",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: NameParam },
      responses: {
        200: jsonResponse("The latest validation", JobSchema),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      requireRepoRole(c.get("principal"), name, "admin");
      const [row] = await deps.db.query<{ id: number }>(
        `SELECT id FROM jobs WHERE kind = $1 AND payload->>'repo' = $2 ORDER BY id DESC LIMIT 1`,
        [REPO_VALIDATE_KIND, name],
      );
      if (!row) {
        throw problems.notFound(
          `Repository "${name}" has not been validated yet`,
        );
      }
      return c.json(toJobJson((await deps.queue.get(row.id))!), 200);
    },
  );
}
