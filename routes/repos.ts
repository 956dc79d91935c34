/**
 * @module Repositories (native API): create (global admin), list and read (by visibility),
 * configure (repository admin), delete (with confirmation: hidden at once, data removed by a
 * job), and validate (an `ostree fsck` job and its result).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth, optionalNativeAuth } from "../lib/http/auth.ts";
import { actorOf, type AppEnv, type Principal } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { requireAdmin, requireRepoRole } from "../lib/http/guards.ts";
import {
  errors,
  jsonBody,
  jsonResponse,
  nativeSecurity,
} from "../lib/http/openapi.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import {
  initRepo,
  repoPaths,
  trashRepo,
  writeRepoConfig,
} from "../lib/repos/repo_disk.ts";
import {
  type CdnPurgeHook,
  defaultDeltaPolicy,
  type Repo,
  RepoNameTakenError,
  type RepoSettings,
  repoStore,
} from "../lib/repos/repo_store.ts";
import { hookHost, hostAllowed } from "../lib/repos/cdn_purge.ts";
import { REPO_DELETE_KIND } from "../jobs/repo_delete.ts";
import { REPO_VALIDATE_KIND } from "../jobs/repo_validate.ts";
import { JobSchema, toJobJson } from "./jobs.ts";
import {
  CreateRepoSchema,
  RepoName,
  RepoSchema,
  toRepoJson,
  UpdateRepoSchema,
} from "./repos_schema.ts";

const NameParam = z.object({
  name: RepoName.openapi({
    param: { name: "name", in: "path" },
    example: "stable",
  }),
});

/** The principal, or undefined on an anonymous request (optional auth). */
export function maybePrincipal(c: Context<AppEnv>): Principal | undefined {
  return c.var.principal as Principal | undefined;
}

/** The repository routes. */
export function createRepoRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const authOpts = {
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  };
  const auth = nativeAuth(authOpts);
  const maybeAuth = optionalNativeAuth(authOpts);
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const json = (r: Repo) => toRepoJson(r, deps.config.baseUrl);

  /** Refuses purge hooks whose host the operator's FLATYARD_CDN_HOSTS does not allow. */
  function allowedCdnHosts(hooks: readonly CdnPurgeHook[] | undefined): void {
    const allowed = deps.config.cdnPurge.hosts;
    const refused = (hooks ?? []).flatMap((hook, i) => {
      const host = hookHost(hook);
      return hostAllowed(host, allowed) ? [] : [{
        path: `cdnPurge.${i}.url`,
        message: `host "${host}" is not one FLATYARD_CDN_HOSTS allows (${
          allowed!.join(", ")
        })`,
      }];
    });
    if (refused.length > 0) {
      throw problems.invalid(
        "Cannot call a CDN purge host the server does not allow",
        refused,
      );
    }
  }

  /** A live repository the caller may read; a private one it may not read is "not found". */
  async function readable(c: Context<AppEnv>, name: string): Promise<Repo> {
    const repo = await repoStore.get(deps.db, name);
    if (!repo || !canReadRepo(maybePrincipal(c), repo)) {
      throw problems.notFound(`Cannot find repository "${name}"`);
    }
    return repo;
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos",
      tags: ["repos"],
      summary:
        "List the repositories the caller may read (public ones without credentials)",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      responses: {
        200: jsonResponse("Repositories", z.array(RepoSchema)),
        ...errors(401),
      },
    }),
    async (c) => {
      const p = maybePrincipal(c);
      return c.json(
        (await repoStore.list(deps.db)).filter((r) => canReadRepo(p, r)).map(
          json,
        ),
        200,
      );
    },
  );

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

  return app;
}
