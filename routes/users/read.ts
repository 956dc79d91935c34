/** @module One user, for admins and for the user itself. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import { requireAdmin } from "../../lib/http/guards.ts";
import { errors, nativeSecurity } from "../../lib/http/openapi.ts";
import { IdParam, toUserJson } from "./schema.ts";
import { type UserContext, userResponse } from "./context.ts";

/** `GET /api/v1/users/{id}`. */
export function addReadUser(
  app: OpenAPIHono<AppEnv>,
  { auth, mustGet }: UserContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/users/{id}",
      tags: ["users"],
      summary: "Get a user (admins; anyone for themselves)",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: IdParam },
      responses: {
        200: userResponse("The user"),
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const { id } = c.req.valid("param");
      if (!(principal.kind === "user" && principal.user.id === id)) {
        requireAdmin(principal);
      }
      return c.json(toUserJson(await mustGet(id)), 200);
    },
  );
}
