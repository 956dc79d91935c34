/** @module `GET /api/v1/audit`: the audit log, newest first, filterable (admins only). */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth } from "../lib/http/auth.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook } from "../lib/http/errors.ts";
import { requireAdmin } from "../lib/http/guards.ts";
import { errors, nativeSecurity } from "../lib/http/openapi.ts";

const AuditEntry = z.object({
  id: z.number().int(),
  at: z.string(),
  actor: z.string().openapi({ example: "user:alice" }),
  actorUserId: z.number().int().nullable(),
  action: z.string().openapi({ example: "user.create" }),
  objectType: z.string().openapi({ example: "user" }),
  objectId: z.string().openapi({ example: "2" }),
  details: z.record(z.string(), z.unknown()),
  requestId: z.string().nullable(),
}).openapi("AuditEntry");

/** The audit route. */
export function createAuditRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  return new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook }).openapi(
    createRoute({
      method: "get",
      path: "/api/v1/audit",
      tags: ["audit"],
      summary: "Read the audit log",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        query: z.object({
          objectType: z.string().max(50).optional(),
          objectId: z.string().max(200).optional(),
          action: z.string().max(100).optional(),
          actor: z.string().max(300).optional(),
          before: z.coerce.number().int().positive().optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }).strict(),
      },
      responses: {
        200: {
          description: "Entries",
          content: { "application/json": { schema: z.array(AuditEntry) } },
        },
        ...errors(401, 403, 422),
      },
    }),
    async (c) => {
      requireAdmin(c.get("principal"));
      const q = c.req.valid("query");
      const entries = await deps.audit.list({
        limit: q.limit,
        ...(q.objectType ? { objectType: q.objectType } : {}),
        ...(q.objectId ? { objectId: q.objectId } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.before ? { beforeId: q.before } : {}),
      });
      return c.json(
        entries.map((e) => ({ ...e, at: e.at.toISOString() })),
        200,
      );
    },
  );
}
