/**
 * @module What the user operations (routes/users/routes.ts) share: authentication, the lookup
 * of a user, the revocation of its tokens, and the user response.
 */
import type { MiddlewareHandler } from "hono";
import type { Deps } from "../../lib/deps.ts";
import { nativeAuth } from "../../lib/http/auth.ts";
import { actorOf, type AppEnv, type Principal } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import type { Queryable } from "../../lib/db/db.ts";
import type { User } from "../../lib/users/users.ts";
import { UserSchema } from "./schema.ts";

/** A response holding one user, in the OpenAPI document. */
export const userResponse = (description: string): {
  description: string;
  content: { "application/json": { schema: typeof UserSchema } };
} => ({
  description,
  content: { "application/json": { schema: UserSchema } },
});

/** The helpers of the user operations, built once per app. */
export interface UserContext {
  deps: Deps;
  auth: MiddlewareHandler<AppEnv>;
  mustGet(id: number, q?: Queryable): Promise<User>;
  /** Revokes every live token the user owns (after a downgrade, a disable or a delete). */
  revokeTokensOf(
    userId: number,
    principal: Principal,
    requestId: string,
    why: string,
  ): Promise<void>;
}

export function userContext(deps: Deps): UserContext {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });

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

  return { deps, auth, mustGet, revokeTokensOf };
}
