/** @module Creates a repository: its row and its OSTree repository on disk (global admins). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireAdmin } from "../../lib/http/guards.ts";
import {
  errors,
  jsonBody,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { initRepo } from "../../lib/repos/repo_disk.ts";
import {
  defaultDeltaPolicy,
  RepoNameTakenError,
  type RepoSettings,
  repoStore,
} from "../../lib/repos/repo_store.ts";
import { CreateRepoSchema, RepoSchema } from "./schema.ts";
import type { RepoContext } from "./context.ts";

/** `POST /api/v1/repos`. */
export function addCreateRepo(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, json, allowedCdnHosts }: RepoContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/repos",
      tags: ["repos"],
      summary:
        "Create a repository (initialises an archive-z2 OSTree repository)",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { body: jsonBody(CreateRepoSchema) },
      responses: {
        201: jsonResponse("Created", RepoSchema),
        ...errors(401, 403, 409, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      requireAdmin(principal);
      const { name, ...body } = c.req.valid("json");
      allowedCdnHosts(body.cdnPurge);
      const settings: RepoSettings = {
        title: body.title ?? null,
        description: body.description ?? null,
        homepage: body.homepage ?? null,
        iconUrl: body.iconUrl ?? null,
        collectionId: body.collectionId ?? null,
        defaultBranch: body.defaultBranch,
        public: body.public,
        deltaPolicy: body.deltaPolicy ?? defaultDeltaPolicy,
        minFreeSpace: body.minFreeSpace,
        baseUrl: body.baseUrl ?? null,
        redirectUrl: body.redirectUrl ?? null,
        cdnPurge: body.cdnPurge,
      };
      try {
        // The row and the directory appear together: a failure of either leaves neither.
        const repo = await deps.db.transaction(async (tx) => {
          const repo = await repoStore.create(tx, name, settings);
          await deps.audit.record({
            ...actorOf(principal),
            action: "repo.create",
            objectType: "repo",
            objectId: name,
            details: { ...settings },
            requestId: c.get("requestId"),
          }, tx);
          await initRepo(deps.config.dataDir, repo).catch((err) => {
            if (
              err instanceof Deno.errors.AlreadyExists ||
              (err instanceof Error && /not empty|exists/i.test(err.message))
            ) {
              throw new RepoNameTakenError(
                `Repository "${name}" already exists on disk`,
              );
            }
            throw err;
          });
          return repo;
        });
        c.header("Location", `/api/v1/repos/${name}`);
        return c.json(json(repo), 201);
      } catch (err) {
        if (err instanceof RepoNameTakenError) {
          throw problems.conflict(err.message);
        }
        throw err;
      }
    },
  );
}
