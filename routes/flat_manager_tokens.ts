/**
 * @module flat-manager's token endpoints, wire-exact (specs/flat-manager-api.md §2.6, §2.7):
 * `POST /api/v1/token_subset`, `POST /api/v1/tokens/get_list`, `POST /api/v1/tokens/revoke`.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { unixNow } from "../lib/clock.ts";
import type { Deps } from "../lib/deps.ts";
import { flatManagerAuth } from "../lib/http/auth.ts";
import type { AppEnv, Principal } from "../lib/http/env.ts";
import { actorOf } from "../lib/http/env.ts";
import { flatManagerValidationHook, fm } from "../lib/http/errors.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
  jsonBody,
} from "../lib/http/openapi.ts";
import type { Claims } from "../lib/tokens/claims.ts";
import { checkSubAndScope, subsetClaims } from "../lib/tokens/matching.ts";

/** §0.6: chrono NaiveDateTime, ISO-8601 without a zone, microseconds. */
export function naiveDateTime(d: Date | null): string | null {
  return d === null ? null : d.toISOString().replace("Z", "000");
}

const SubsetRequest = z.object({
  sub: z.string(),
  scope: z.array(z.string()),
  duration: z.number().int(),
  name: z.string(),
  prefixes: z.array(z.string()).optional(),
  apps: z.array(z.string()).optional(),
  repos: z.array(z.string()).optional(),
}).openapi("TokenSubsetRequest", {
  example: {
    sub: "build",
    scope: ["upload"],
    duration: 3600,
    name: "ci-upload",
    repos: ["stable"],
  },
});

const TokenIds = z.object({ token_ids: z.array(z.string()) }).openapi(
  "TokenIds",
  {
    example: { token_ids: ["4b1c…"] },
  },
);

const TokenRecord = z.object({
  token_id: z.string(),
  expires: z.string().nullable().openapi({
    example: "2025-05-01T12:34:56.789000",
  }),
  last_used: z.string().nullable(),
  revoked_at: z.string().nullable(),
}).openapi("Token", { description: "specs/flat-manager-api.md §1.6" });

function claimsOf(p: Principal): Claims {
  // flatManagerAuth only ever sets token principals.
  if (p.kind !== "token") throw fm.invalidToken("Invalid token claims");
  return p.claims;
}

/** Requires sub and scope exactly as §2.4 with flat-manager's 403 message. */
function requireSubScope(claims: Claims, sub: string, scopes: string[]): void {
  const denial = checkSubAndScope(claims, sub, scopes);
  if (denial) throw fm.insufficient(denial);
}

/** The three token routes. */
export function createFlatManagerTokenRoutes(
  deps: Pick<Deps, "tokens" | "registry" | "clock" | "audit">,
): OpenAPIHono<AppEnv> {
  const auth = flatManagerAuth(deps.tokens);
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: flatManagerValidationHook,
  });

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/token_subset",
      tags: ["flat-manager"],
      summary: "Mint a token with a subset of the caller's rights (§2.6)",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: {
        body: jsonBody(SubsetRequest),
      },
      responses: {
        200: {
          description: "The new token",
          content: {
            "application/json": {
              schema: z.object({ token: z.string() }).openapi(
                "TokenSubsetResponse",
              ),
            },
          },
        },
        ...flatManagerErrorResponses,
      },
    }),
    async (c) => {
      const parent = claimsOf(c.get("principal"));
      const child = subsetClaims(
        parent,
        c.req.valid("json"),
        unixNow(deps.clock),
      );
      // §2.6: every refusal says this, even though a token was presented.
      if (!child) throw fm.insufficient("No token presented");
      return c.json({ token: await deps.tokens.sign(child) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/tokens/get_list",
      tags: ["flat-manager"],
      summary: "Usage and revocation state of tokens by jti (§2.7)",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: {
        body: jsonBody(TokenIds),
      },
      responses: {
        200: {
          description: "Known tokens; unknown ids are skipped",
          content: { "application/json": { schema: z.array(TokenRecord) } },
        },
        ...flatManagerErrorResponses,
      },
    }),
    async (c) => {
      requireSubScope(claimsOf(c.get("principal")), "", ["tokenmanagement"]);
      const rows = await deps.registry.list(c.req.valid("json").token_ids);
      return c.json(
        rows.map((r) => ({
          token_id: r.jti,
          expires: naiveDateTime(r.expires),
          last_used: naiveDateTime(r.lastUsed),
          revoked_at: naiveDateTime(r.revokedAt),
        })),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/api/v1/tokens/revoke",
      tags: ["flat-manager"],
      summary: "Revoke tokens by jti, subsets included (§2.7)",
      security: flatManagerSecurity,
      middleware: [auth] as const,
      request: {
        body: jsonBody(TokenIds),
      },
      responses: {
        204: { description: "Revoked" },
        ...flatManagerErrorResponses,
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      requireSubScope(claimsOf(principal), "", ["tokenmanagement"]);
      const ids = c.req.valid("json").token_ids;
      await deps.registry.revoke(ids);
      for (const jti of ids) {
        await deps.audit.record({
          ...actorOf(principal),
          action: "token.revoke",
          objectType: "token",
          objectId: jti,
          requestId: c.get("requestId"),
        });
      }
      return c.body(null, 204);
    },
  );

  return app;
}
