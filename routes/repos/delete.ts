/** @module Deletes a repository: hidden at once, its data removed by a job (repository admins). */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireRepoRole } from "../../lib/http/guards.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { trashRepo } from "../../lib/repos/repo_disk.ts";
import { repoStore } from "../../lib/repos/repo_store.ts";
import { REPO_DELETE_KIND } from "../../jobs/repo_delete.ts";
import { JobSchema, toJobJson } from "../jobs.ts";
import { NameParam } from "./schema.ts";
import type { RepoContext } from "./context.ts";

/** `DELETE /api/v1/repos/{name}`. */
export function addDeleteRepo(
  app: OpenAPIHono<AppEnv>,
  { deps, auth }: RepoContext,
): void {
  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/v1/repos/{name}",
      tags: ["repos"],
      summary: "Delete a repository: hidden at once, its data removed by a job",
      description: "Needs admin on the repository and `?confirm=<name>`.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        params: NameParam,
        query: z.object({ confirm: z.string().optional() }).strict(),
      },
      responses: {
        202: jsonResponse("Deletion queued", JobSchema),
        ...errors(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const { name } = c.req.valid("param");
      requireRepoRole(principal, name, "admin");
      if (c.req.valid("query").confirm !== name) {
        throw problems.badRequest(
          `Deleting repository "${name}" needs ?confirm=${name}`,
        );
      }
      const job = await deps.db.transaction(async (tx) => {
        const repo = await repoStore.get(tx, name, { forUpdate: true });
        if (!repo) throw problems.notFound(`Cannot find repository "${name}"`);
        await repoStore.markDeleted(tx, repo.id);
        // The rename makes the name free at once; nothing serves from the trash.
        const trashPath = await trashRepo(deps.config.dataDir, name, repo.id) ??
          null;
        await deps.audit.record({
          ...actorOf(principal),
          action: "repo.delete",
          objectType: "repo",
          objectId: name,
          requestId: c.get("requestId"),
        }, tx);
        return deps.queue.enqueue(REPO_DELETE_KIND, { repo: name, trashPath }, {
          maxAttempts: 5,
        }, tx);
      });
      await deps.repoRows.changed(name);
      await deps.queue.wake();
      return c.json(toJobJson(job), 202);
    },
  );
}
