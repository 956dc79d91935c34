/** @module Creates a user (admins only). */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { actorOf, type AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { requireAdmin } from "../../lib/http/guards.ts";
import { errors, jsonBody, nativeSecurity } from "../../lib/http/openapi.ts";
import { UsernameTakenError } from "../../lib/users/users.ts";
import { CreateUser, toUserJson } from "./schema.ts";
import { type UserContext, userResponse } from "./context.ts";

/** `POST /api/v1/users`. */
export function addCreateUser(
  app: OpenAPIHono<AppEnv>,
  { deps, auth }: UserContext,
): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/users",
      tags: ["users"],
      summary: "Create a user",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        body: jsonBody(CreateUser),
      },
      responses: {
        201: userResponse("Created"),
        ...errors(401, 403, 409, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      requireAdmin(principal);
      const body = c.req.valid("json");
      try {
        const user = await deps.db.transaction(async (tx) => {
          const user = await deps.users.create(body, tx);
          await deps.audit.record({
            ...actorOf(principal),
            action: "user.create",
            objectType: "user",
            objectId: String(user.id),
            details: { username: user.username, role: user.role },
            requestId: c.get("requestId"),
          }, tx);
          return user;
        });
        c.header("Location", `/api/v1/users/${user.id}`);
        return c.json(toUserJson(user), 201);
      } catch (err) {
        if (err instanceof UsernameTakenError) {
          throw problems.conflict(err.message);
        }
        throw err;
      }
    },
  );
}
