/**
 * @module Login sessions and a user's own API tokens: `POST /api/v1/auth/login`, `logout`, `me`,
 * `password`, and `/api/v1/auth/tokens` to mint (within the user's own roles), list and revoke.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { deleteCookie, setCookie } from "hono/cookie";
import { unixNow } from "../lib/clock.ts";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth, SESSION_COOKIE } from "../lib/http/auth.ts";
import { actorOf, type AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, Problem, problems } from "../lib/http/errors.ts";
import { requireUser } from "../lib/http/guards.ts";
import { clientIp } from "../lib/http/client_ip.ts";
import { errors, jsonBody, nativeSecurity } from "../lib/http/openapi.ts";
import { type Claims, knownScopes } from "../lib/tokens/claims.ts";
import { LoginLimiter } from "../lib/users/login_limiter.ts";
import { mintDenials } from "../lib/users/roles.ts";
import {
  PasswordSchema,
  RepoNameSchema,
  toUserJson,
  UserSchema,
} from "./users_schema.ts";

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

const MintRequest = z.object({
  name: z.string().min(1).max(100).openapi({ example: "github-actions" }),
  scope: z.array(z.enum(knownScopes)).min(1).openapi({
    example: ["build", "upload", "publish", "jobs"],
  }),
  repos: z.array(RepoNameSchema).min(1).or(z.tuple([z.literal("")])).openapi({
    description:
      'Repository names the token may touch, or `[""]` for all of them',
    example: ["stable"],
  }),
  prefixes: z.array(z.string()).optional().openapi({
    example: ["org.example"],
  }),
  apps: z.array(z.string()).optional(),
  sub: z.string().regex(
    /^(build(\/\d+)?)?$/,
    'must be "build", "build/<id>" or ""',
  ).default("build"),
  expiresInDays: z.number().int().min(1).optional().openapi({ example: 90 }),
  tokenType: z.string().max(50).default("app"),
}).strict().openapi("MintTokenRequest");

const OwnToken = z.object({
  jti: z.string(),
  name: z.string().nullable(),
  claims: z.record(z.string(), z.unknown()).nullable(),
  createdAt: z.string(),
  expires: z.string().nullable(),
  lastUsed: z.string().nullable(),
  useCount: z.number().int(),
  revokedAt: z.string().nullable(),
}).openapi("ApiToken");

const MintResponse = z.object({
  token: z.string().openapi({ description: "The JWT; shown once" }),
  jti: z.string(),
  expiresAt: z.string(),
}).openapi("MintTokenResponse");

type TokenRow = {
  jti: string;
  name: string | null;
  claims: Record<string, unknown> | null;
  created_at: Date;
  expires: Date | null;
  last_used: Date | null;
  use_count: number;
  revoked_at: Date | null;
};

const iso = (d: Date | null) => d?.toISOString() ?? null;

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

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/auth/tokens",
      tags: ["auth"],
      summary: "Mint an API token within one's own roles",
      description:
        "Each scope needs a role: `download` needs read, the build scopes need write, " +
        'on every repository named (all, for `""`); `tokenmanagement` and `admin` need the global ' +
        "admin role. A wider request is refused with the reasons.",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: {
        body: jsonBody(MintRequest),
      },
      responses: {
        201: {
          description: "Minted",
          content: { "application/json": { schema: MintResponse } },
        },
        ...errors(401, 403, 422),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const user = requireUser(
        principal,
        "Only a logged-in user can mint tokens here; tokens use POST /api/v1/token_subset",
      );
      const body = c.req.valid("json");
      const maxDays = deps.config.maxTokenDays;
      const days = body.expiresInDays ?? Math.min(30, maxDays);
      if (days > maxDays) {
        throw problems.invalid(`expiresInDays: at most ${maxDays}`, [{
          path: "expiresInDays",
          message: `at most ${maxDays}`,
        }]);
      }
      const jti = crypto.randomUUID();
      const claims: Claims = {
        sub: body.sub,
        exp: unixNow(deps.clock) + days * 86400,
        name: `${user.username}/${body.name}`,
        jti,
        scope: body.scope,
        prefixes: body.prefixes ?? [""],
        apps: body.apps ?? [],
        repos: body.repos,
        branches: [],
        token_type: body.tokenType,
      };
      const denials = mintDenials(user, claims);
      if (denials.length > 0) {
        throw new Problem(
          403,
          "Forbidden",
          `Cannot mint a token wider than your roles: ${denials.join("; ")}`,
          { denials },
        );
      }
      await deps.db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO tokens (jti, expires, owner_user_id, name, claims) VALUES ($1, $2, $3, $4, $5::jsonb)`,
          [
            jti,
            new Date(claims.exp * 1000),
            user.id,
            claims.name,
            JSON.stringify(claims),
          ],
        );
        await deps.audit.record({
          ...actorOf(principal),
          action: "token.create",
          objectType: "token",
          objectId: jti,
          details: {
            name: claims.name,
            scope: claims.scope,
            repos: claims.repos,
            exp: claims.exp,
          },
          requestId: c.get("requestId"),
        }, tx);
      });
      return c.json({
        token: await deps.tokens.sign(claims),
        jti,
        expiresAt: new Date(claims.exp * 1000).toISOString(),
      }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/auth/tokens",
      tags: ["auth"],
      summary: "List one's own API tokens (never the token values)",
      security: nativeSecurity,
      middleware: [auth] as const,
      responses: {
        200: {
          description: "Tokens",
          content: { "application/json": { schema: z.array(OwnToken) } },
        },
        ...errors(401, 403),
      },
    }),
    async (c) => {
      const user = requireUser(
        c.get("principal"),
        "Only a logged-in user owns tokens",
      );
      await deps.registry.flush();
      const rows = await deps.db.query<TokenRow>(
        `SELECT jti, name, claims, created_at, expires, last_used, use_count, revoked_at
         FROM tokens WHERE owner_user_id = $1 ORDER BY created_at DESC`,
        [user.id],
      );
      return c.json(rows.map(ownTokenJson), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/api/v1/auth/tokens/{jti}",
      tags: ["auth"],
      summary: "Revoke one of one's own tokens (admins: anyone's)",
      security: nativeSecurity,
      middleware: [auth] as const,
      request: { params: z.object({ jti: z.string().min(1).max(200) }) },
      responses: {
        204: { description: "Revoked" },
        ...errors(401, 403, 404),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const user = requireUser(
        principal,
        "Only a logged-in user owns tokens; use POST /api/v1/tokens/revoke",
      );
      const { jti } = c.req.valid("param");
      const [row] = await deps.db.query<{ owner_user_id: number | null }>(
        "SELECT owner_user_id FROM tokens WHERE jti = $1",
        [jti],
      );
      if (!row || (row.owner_user_id !== user.id && user.role !== "admin")) {
        throw problems.notFound(`Cannot find token "${jti}"`);
      }
      await deps.registry.revoke([jti]);
      await deps.audit.record({
        ...actorOf(principal),
        action: "token.revoke",
        objectType: "token",
        objectId: jti,
        requestId: c.get("requestId"),
      });
      return c.body(null, 204);
    },
  );

  return app;
}

function ownTokenJson(r: TokenRow) {
  return {
    jti: r.jti,
    name: r.name,
    claims: r.claims,
    createdAt: r.created_at.toISOString(),
    expires: iso(r.expires),
    lastUsed: iso(r.last_used),
    useCount: r.use_count,
    revokedAt: iso(r.revoked_at),
  };
}
