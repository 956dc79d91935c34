/**
 * @module User administration: accounts and global roles (admins only), per-repository roles
 * (admins, and admins of that repository). Any change that takes a right away revokes the
 * user's API tokens, which may carry the old rights; the last enabled admin cannot be removed.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth } from "../lib/http/auth.ts";
import { actorOf, type AppEnv, type Principal } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { requireAdmin, requireRepoRole } from "../lib/http/guards.ts";
import { errors, jsonBody, nativeSecurity } from "../lib/http/openapi.ts";
import type { Queryable } from "../lib/db/db.ts";
import { globalRoles, isDowngrade, repoRoles } from "../lib/users/roles.ts";
import { type User, UsernameTakenError } from "../lib/users/users.ts";
import {
  PasswordSchema,
  RepoNameSchema,
  toUserJson,
  UsernameSchema,
  UserSchema,
} from "./users_schema.ts";

const IdParam = z.object({
  id: z.coerce.number().int().positive().openapi({
    param: { name: "id", in: "path" },
    example: 2,
  }),
});
const RepoParam = IdParam.extend({
  repo: RepoNameSchema.openapi({ param: { name: "repo", in: "path" } }),
});

const CreateUser = z.object({
  username: UsernameSchema,
  password: PasswordSchema,
  role: z.enum(globalRoles).default("viewer"),
}).strict().openapi("CreateUserRequest");

const UpdateUser = z.object({
  role: z.enum(globalRoles).optional(),
  disabled: z.boolean().optional(),
  password: PasswordSchema.optional(),
}).strict().refine(
  (b) => Object.keys(b).length > 0,
  "must change at least one field",
).openapi("UpdateUserRequest");

const SetRepoRole = z.object({ role: z.enum(repoRoles) }).strict().openapi(
  "SetRepoRoleRequest",
);

const userResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: UserSchema } },
});

/** The user routes. */
export function createUserRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  async function mustGet(id: number, q?: Queryable): Promise<User> {
    const user = await deps.users.get(id, q);
    if (!user) throw problems.notFound(`Cannot find user "${id}"`);
    return user;
  }

  /** Revokes every live token the user owns (after a downgrade, a disable or a delete). */
  async function revokeTokensOf(
    userId: number,
    principal: Principal,
    requestId: string,
    why: string,
  ) {
    const rows = await deps.db.query<{ jti: string }>(
      "SELECT jti FROM tokens WHERE owner_user_id = $1 AND revoked_at IS NULL",
      [userId],
    );
    if (rows.length === 0) return;
    await deps.registry.revoke(rows.map((r) => r.jti));
    for (const r of rows) {
      await deps.audit.record({
        ...actorOf(principal),
        action: "token.revoke",
        objectType: "token",
        objectId: r.jti,
        details: { reason: why },
        requestId,
      });
    }
  }

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

  return app;
}
