/** @module Removes a user's role on one repository (admins, and admins of that repository). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { requireRepoRole } from "../../lib/http/guards.ts";
import { errors, nativeSecurity } from "../../lib/http/openapi.ts";
import { isDowngrade } from "../../lib/users/roles.ts";
import { RepoParam, toUserJson } from "./schema.ts";
import { type UserContext, userResponse } from "./context.ts";

/** `DELETE /api/v1/users/{id}/repos/{repo}`. */
export function addRemoveRepoRole(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, mustGet, revokeTokensOf }: UserContext,
): void {
  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/v1/users/{id}/repos/{repo}",
      tags: ["users"],
      summary: "Remove a user's role on one repository",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: RepoParam },
      responses: {
        200: userResponse("Updated"),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const { id, repo } = c.req.valid("param");
      requireRepoRole(principal, repo, "admin");
      const before = await mustGet(id);
      await deps.db.transaction(async (tx) => {
        await deps.users.setRepoRole(id, repo, null, tx);
        await deps.audit.record({
          ...actorOf(principal),
          action: "user.repo_role",
          objectType: "user",
          objectId: String(id),
          details: { repo, from: before.repoRoles[repo] ?? null, to: null },
          requestId: c.get("requestId"),
        }, tx);
      });
      const after = await mustGet(id);
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
