/** @module Changes a user's global role, enabled state or password (admins only). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireAdmin } from "../../lib/http/guards.ts";
import { errors, jsonBody, nativeSecurity } from "../../lib/http/openapi.ts";
import { isDowngrade } from "../../lib/users/roles.ts";
import { IdParam, toUserJson, UpdateUser } from "./schema.ts";
import { type UserContext, userResponse } from "./context.ts";

/** `PATCH /api/v1/users/{id}`. */
export function addUpdateUser(
  app: OpenAPIHono<AppEnv>,
  { deps, auth, mustGet, revokeTokensOf }: UserContext,
): void {
  app.openapi(
    createRoute({
      method: "patch",
      path: "/api/v1/users/{id}",
      tags: ["users"],
      summary: "Change a user's global role, enabled state or password",
      description:
        "Admins only. Taking a right away revokes the user's API tokens; disabling " +
        "or a new password also ends their sessions. The last enabled admin cannot be demoted or disabled.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        params: IdParam,
        body: jsonBody(UpdateUser),
      },
      responses: {
        200: userResponse("Updated"),
        ...errors(401, 403, 404, 409, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      requireAdmin(principal);
      const { id } = c.req.valid("param");
      const change = c.req.valid("json");
      const { before, after } = await deps.db.transaction(async (tx) => {
        // Lock the admins so two concurrent demotions cannot both pass the last-admin check.
        await tx.query("SELECT id FROM users WHERE role = 'admin' FOR UPDATE");
        const before = await mustGet(id, tx);
        const losesAdmin = before.role === "admin" && !before.disabled &&
          ((change.role !== undefined && change.role !== "admin") ||
            change.disabled === true);
        if (losesAdmin && await deps.users.otherActiveAdmins(id, tx) === 0) {
          throw problems.conflict(
            `Cannot demote or disable "${before.username}": it is the last enabled admin`,
          );
        }
        const after = (await deps.users.update(id, change, tx))!;
        await deps.audit.record({
          ...actorOf(principal),
          action: "user.update",
          objectType: "user",
          objectId: String(id),
          details: {
            ...(change.role === undefined
              ? {}
              : { role: { from: before.role, to: change.role } }),
            ...(change.disabled === undefined
              ? {}
              : { disabled: change.disabled }),
            ...(change.password === undefined ? {} : { password: "changed" }),
          },
          requestId: c.get("requestId"),
        }, tx);
        return { before, after };
      });
      if (isDowngrade(before, after) || after.disabled) {
        await revokeTokensOf(id, principal, c.get("requestId"), "user.update");
      }
      if (after.disabled || change.password !== undefined) {
        await deps.sessions.endAllFor(id);
      }
      return c.json(toUserJson(after), 200);
    },
  );
}
