/** @module Deletes a user, after revoking its tokens (admins only). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireAdmin } from "../../lib/http/guards.ts";
import { errors, nativeSecurity } from "../../lib/http/openapi.ts";
import { IdParam } from "./schema.ts";
import type { UserContext } from "./context.ts";

/** `DELETE /api/v1/users/{id}`. */
export function addDeleteUser(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, mustGet, revokeTokensOf }: UserContext,
): void {
  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/v1/users/{id}",
      tags: ["users"],
      summary: "Delete a user (revokes its tokens, ends its sessions)",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: IdParam },
      responses: {
        204: { description: "Deleted" },
        ...errors(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      requireAdmin(principal);
      const { id } = c.req.valid("param");
      // Tokens first: once the row is gone their owner is unknown.
      await mustGet(id);
      await revokeTokensOf(id, principal, c.get("requestId"), "user.delete");
      await deps.db.transaction(async (tx) => {
        await tx.query("SELECT id FROM users WHERE role = 'admin' FOR UPDATE");
        const user = await mustGet(id, tx);
        if (
          user.role === "admin" && !user.disabled &&
          await deps.users.otherActiveAdmins(id, tx) === 0
        ) {
          throw problems.conflict(
            `Cannot delete "${user.username}": it is the last enabled admin`,
          );
        }
        await deps.users.delete(id, tx);
        await deps.audit.record({
          ...actorOf(principal),
          action: "user.delete",
          objectType: "user",
          objectId: String(id),
          details: { username: user.username },
          requestId: c.get("requestId"),
        }, tx);
      });
      return c.body(null, 204);
    },
  );
}
