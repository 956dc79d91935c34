/** @module Lists every user (admins only). */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import { requireAdmin } from "../../lib/http/guards.ts";
import { errors, nativeSecurity } from "../../lib/http/openapi.ts";
import { toUserJson, UserSchema } from "./schema.ts";
import type { UserContext } from "./context.ts";

/** `GET /api/v1/users`. */
export function addListUsers(
  app: OpenAPIHono<AppEnv>,
  { deps, auth }: UserContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/users",
      tags: ["users"],
      summary: "List users",
      security: nativeSecurity,
      middleware: [auth] as const,
      responses: {
        200: {
          description: "Users",
          content: { "application/json": { schema: z.array(UserSchema) } },
        },
        ...errors(401, 403),
      },
    }),
    async (c) => {
      requireAdmin(c.get("principal"));
      return c.json((await deps.users.list()).map(toUserJson), 200);
    },
  );
}
