/**
 * @module Login sessions: `POST /api/v1/auth/login`, `logout`, `me` and `password`. A user's own
 * API tokens are in api_tokens.ts.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { deleteCookie, setCookie } from "hono/cookie";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth, SESSION_COOKIE } from "../lib/http/auth.ts";
import { actorOf, type AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, Problem, problems } from "../lib/http/errors.ts";
import { requireUser } from "../lib/http/guards.ts";
import { clientIp } from "../lib/http/client_ip.ts";
import { errors, jsonBody, nativeSecurity } from "../lib/http/openapi.ts";
import { LoginLimiter } from "../lib/users/login_limiter.ts";
import { PasswordSchema, toUserJson, UserSchema } from "./users/schema.ts";

const LoginRequest = z.object({
  username: z.string().min(1).max(64).openapi({ example: "alice" }),
  password: z.string().min(1).max(1024).openapi({
    example: "correct horse battery staple",
  }),
}).strict().openapi("LoginRequest");

const LoginResponse = z.object({
  session: z.string().openapi({
    description:
      "Send as `Authorization: Bearer <session>`; also set as the session cookie",
    example: "fys_9x…",
  }),
  expiresAt: z.string().openapi({ example: "2026-11-25T08:00:00.000Z" }),
  user: UserSchema,
}).openapi("LoginResponse");

const Me = z.object({
  kind: z.enum(["user", "token"]),
  user: UserSchema.optional(),
  token: z.object({
    name: z.string().nullable(),
    sub: z.string(),
    scope: z.array(z.string()),
    repos: z.array(z.string()),
    prefixes: z.array(z.string()),
    exp: z.number().int(),
  }).optional(),
}).openapi("Me");

/** The auth routes. */
export function createAuthRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const limiter = new LoginLimiter(deps.clock);
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const secureCookie = deps.config.baseUrl.startsWith("https:");

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/auth/login",
      tags: ["auth"],
      summary: "Log in with a username and password",
      description:
        "Returns a session for the API and sets it as an HttpOnly cookie for the admin UI.",
      request: {
        body: jsonBody(LoginRequest),
      },
      responses: {
        200: {
          description: "Logged in",
          content: { "application/json": { schema: LoginResponse } },
        },
        ...errors(401, 422),
        429: {
          description: "Too many failed attempts",
          content: { "application/problem+json": { schema: z.unknown() } },
        },
      },
    }),
    async (c) => {
      const { username, password } = c.req.valid("json");
      const ip = clientIp(c, deps.config.trustProxy);
      const wait = limiter.retryAfter(username, ip);
      if (wait > 0) {
        c.header("Retry-After", String(wait));
        throw new Problem(
          429,
          "Too many requests",
          `Too many failed logins for "${username}"; try again in ${wait} s`,
        );
      }
      const user = await deps.users.authenticate(
        username.toLowerCase(),
        password,
      );
      if (!user) {
        limiter.fail(username, ip);
        throw problems.unauthorized(
          "Wrong username or password, or the account is disabled",
        );
      }
      limiter.succeed(username, ip);
      const session = await deps.sessions.create(user.id, {
        userAgent: c.req.header("user-agent"),
        ip,
      });
      setCookie(c, SESSION_COOKIE, session.token, {
        httpOnly: true,
        sameSite: "Lax",
        secure: secureCookie,
        path: "/",
        expires: session.expiresAt,
      });
      await deps.audit.record({
        actor: `user:${user.username}`,
        actorUserId: user.id,
        action: "session.create",
        objectType: "user",
        objectId: String(user.id),
        details: { ip },
        requestId: c.get("requestId"),
      });
      return c.json({
        session: session.token,
        expiresAt: session.expiresAt.toISOString(),
        user: toUserJson(user),
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/auth/logout",
      tags: ["auth"],
      summary: "End the current session",
      security: nativeSecurity,
      middleware: [auth] as const,
      responses: {
        204: { description: "Logged out" },
        ...errors(401, 403),
      },
    }),
    async (c) => {
      const p = c.get("principal");
      if (p.kind !== "user") {
        throw problems.forbidden(
          "Only a session can be logged out; revoke tokens instead",
        );
      }
      await deps.sessions.end(p.session);
      deleteCookie(c, SESSION_COOKIE, { path: "/" });
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/auth/me",
      tags: ["auth"],
      summary:
        "Who the caller is: a user and its roles, or a token and its claims",
      security: nativeSecurity,
      middleware: [auth] as const,
      responses: {
        200: {
          description: "The caller",
          content: { "application/json": { schema: Me } },
        },
        ...errors(401),
      },
    }),
    (c) => {
      const p = c.get("principal");
      if (p.kind === "user") {
        return c.json({ kind: "user" as const, user: toUserJson(p.user) }, 200);
      }
      const { name, sub, scope, repos, prefixes, exp } = p.claims;
      return c.json({
        kind: "token" as const,
        token: { name: name ?? null, sub, scope, repos, prefixes, exp },
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/api/v1/auth/password",
      tags: ["auth"],
      summary: "Change one's own password (ends the other sessions)",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        body: {
          content: {
            "application/json": {
              schema: z.object({
                currentPassword: z.string().min(1),
                newPassword: PasswordSchema,
              }).strict()
                .openapi("ChangePasswordRequest"),
            },
          },
          required: true,
        },
      },
      responses: {
        204: { description: "Changed" },
        ...errors(401, 403, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const user = requireUser(
        principal,
        "Only a logged-in user has a password",
      );
      const body = c.req.valid("json");
      if (!await deps.users.authenticate(user.username, body.currentPassword)) {
        throw problems.forbidden("The current password is wrong");
      }
      await deps.users.update(user.id, { password: body.newPassword });
      // Every session ends, this one included, so a stolen session cannot outlive the change.
      await deps.sessions.endAllFor(user.id);
      deleteCookie(c, SESSION_COOKIE, { path: "/" });
      await deps.audit.record({
        ...actorOf(principal),
        action: "user.password",
        objectType: "user",
        objectId: String(user.id),
        requestId: c.get("requestId"),
      });
      return c.body(null, 204);
    },
  );

  return app;
}
