/** @module Configures a repository and rewrites its OSTree config (repository admins). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireRepoRole } from "../../lib/http/guards.ts";
import {
  errors,
  jsonBody,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { repoPaths, writeRepoConfig } from "../../lib/repos/repo_disk.ts";
import { type RepoSettings, repoStore } from "../../lib/repos/repo_store.ts";
import { NameParam, RepoSchema, UpdateRepoSchema } from "./schema.ts";
import type { RepoContext } from "./context.ts";

/** `PATCH /api/v1/repos/{name}`. */
export function addUpdateRepo(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, json, allowedCdnHosts }: RepoContext,
): void {
  app.openapi(
    createRoute({
      method: "patch",
      path: "/api/v1/repos/{name}",
      tags: ["repos"],
      summary: "Configure a repository (rewrites its OSTree config atomically)",
      description:
        "Needs admin on the repository. A collection ID, once set, cannot change: clients pin it.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: NameParam, body: jsonBody(UpdateRepoSchema) },
      responses: {
        200: jsonResponse("Updated", RepoSchema),
        ...errors(401, 403, 404, 409, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const { name } = c.req.valid("param");
      requireRepoRole(principal, name, "admin");
      const change = c.req.valid("json");
      allowedCdnHosts(change.cdnPurge);
      const repo = await deps.db.transaction(async (tx) => {
        const before = await repoStore.get(tx, name, { forUpdate: true });
        if (!before) {
          throw problems.notFound(`Cannot find repository "${name}"`);
        }
        if (
          change.collectionId !== undefined && before.collectionId !== null &&
          change.collectionId !== before.collectionId
        ) {
          throw problems.conflict(
            `Cannot change the collection ID of "${name}" from "${before.collectionId}": clients pin it`,
          );
        }
        const { id: _id, name: _n, createdAt: _c, updatedAt: _u, ...current } =
          before;
        const next: RepoSettings = { ...current };
        for (const [k, v] of Object.entries(change)) {
          (next as Record<string, unknown>)[k] = v;
        }
        const after = await repoStore.update(tx, before.id, next);
        // Written inside the transaction: if the rename fails the row rolls back with it.
        await writeRepoConfig(repoPaths(deps.config.dataDir).repo(name), after);
        await deps.audit.record({
          ...actorOf(principal),
          action: "repo.update",
          objectType: "repo",
          objectId: name,
          details: change,
          requestId: c.get("requestId"),
        }, tx);
        return after;
      });
      await deps.repoRows.changed(name);
      return c.json(json(repo), 200);
    },
  );
}
