/** @module Starts the validation of a repository: an `ostree fsck` job (repository admins). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireRepoRole } from "../../lib/http/guards.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { repoStore } from "../../lib/repos/repo_store.ts";
import { REPO_VALIDATE_KIND } from "../../jobs/repo_validate.ts";
import { JobSchema, toJobJson } from "../jobs.ts";
import { NameParam } from "./schema.ts";
import type { RepoContext } from "./context.ts";

/** `POST /api/v1/repos/{name}/validate`. */
export function addValidateRepo(
  app: OpenAPIHono<AppEnv>,
  { deps, auth }: RepoContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos/{name}/validate",
      tags: ["repos"],
      summary: "Start a validation: ostree fsck and a check of the config",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: NameParam },
      responses: {
        202: jsonResponse("Validation queued", JobSchema),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const { name } = c.req.valid("param");
      requireRepoRole(principal, name, "admin");
      if (!await repoStore.get(deps.db, name)) {
        throw problems.notFound(`Cannot find repository "${name}"`);
      }
      const job = await deps.queue.enqueue(REPO_VALIDATE_KIND, { repo: name }, {
        serialKey: `repo:${name}`,
        maxAttempts: 1,
      });
      await deps.audit.record({
        ...actorOf(principal),
        action: "repo.validate",
        objectType: "repo",
        objectId: name,
        details: { job: job.id },
        requestId: c.get("requestId"),
      });
      return c.json(toJobJson(job), 202);
    },
  );
}
