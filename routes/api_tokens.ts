/**
 * @module A user's own API tokens, `/api/v1/auth/tokens`: mint (only within the user's roles),
 * list (never the token values) and revoke.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { unixNow } from "../lib/clock.ts";
import type { Deps } from "../lib/deps.ts";
import { nativeAuth } from "../lib/http/auth.ts";
import { actorOf, type AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, Problem, problems } from "../lib/http/errors.ts";
import { requireUser } from "../lib/http/guards.ts";
import { errors, jsonBody, nativeSecurity } from "../lib/http/openapi.ts";
import { type Claims, knownScopes } from "../lib/tokens/claims.ts";
import { mintDenials } from "../lib/users/roles.ts";
import { RepoNameSchema } from "./users/schema.ts";

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

/** The API token routes. */
export function createApiTokenRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

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
