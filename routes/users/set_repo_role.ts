/** @module Sets a user's role on one repository (admins, and admins of that repository). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { requireRepoRole } from "../../lib/http/guards.ts";
import { errors, jsonBody, nativeSecurity } from "../../lib/http/openapi.ts";
import { isDowngrade } from "../../lib/users/roles.ts";
import { RepoParam, SetRepoRole, toUserJson } from "./schema.ts";
import { type UserContext, userResponse } from "./context.ts";

/** `PUT /api/v1/users/{id}/repos/{repo}`. */
export function addSetRepoRole(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, mustGet, revokeTokensOf }: UserContext,
): void {
  app.openapi(
    createRoute({
      method: "put",
      path: "/api/v1/users/{id}/repos/{repo}",
      tags: ["users"],
      summary: "Set a user's role on one repository",
      description: "Admins, and admins of that repository.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        params: RepoParam,
        body: jsonBody(SetRepoRole),
      },
      responses: {
        200: userResponse("Updated"),
        ...errors(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const { id, repo } = c.req.valid("param");
      requireRepoRole(principal, repo, "admin");
      const { role } = c.req.valid("json");
      const { before, after } = await deps.db.transaction(async (tx) => {
        const before = await mustGet(id, tx);
        await deps.users.setRepoRole(id, repo, role, tx);
        await deps.audit.record({
          ...actorOf(principal),
          action: "user.repo_role",
          objectType: "user",
          objectId: String(id),
          details: { repo, from: before.repoRoles[repo] ?? null, to: role },
          requestId: c.get("requestId"),
        }, tx);
        return { before, after: (await deps.users.get(id, tx))! };
      });
      if (isDowngrade(before, after)) {
        await revokeTokensOf(
          id,
          principal,
          c.get("requestId"),
          "user.repo_role",
        );
      }
      return c.json(toUserJson(after), 200);
    },
  );
}
