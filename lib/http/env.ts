/** @module The Hono environment: what middleware puts on the context for handlers. */
import type { Claims } from "../tokens/claims.ts";
import { ADMIN_SCOPE } from "../tokens/claims.ts";
import type { User } from "../users/users.ts";

/** Who is making a request: a logged-in user (session) or a bearer JWT. */
export type Principal =
  | { kind: "user"; user: User; session: string }
  | { kind: "token"; claims: Claims };

/** Which error format a route answers with (CONVENTIONS.md rule 7). */
export type ErrorStyle = "native" | "flat-manager";

export type AppEnv = {
  Variables: {
    requestId: string;
    errorStyle: ErrorStyle;
    /** Always set behind nativeAuth/flatManagerAuth; absent for anonymous public reads. */
    principal: Principal;
    /** Set when the response is a repository file: it gets only the file security headers. */
    fileResponse: boolean;
  };
};

/** How a principal is named in the audit log and in request logs. */
export function actorOf(
  p: Principal,
): { actor: string; actorUserId: number | null } {
  if (p.kind === "user") {
    return { actor: `user:${p.user.username}`, actorUserId: p.user.id };
  }
  return {
    actor: `token:${p.claims.name ?? "-"}${
      p.claims.jti ? `#${p.claims.jti}` : ""
    }`,
    actorUserId: null,
  };
}

/** Native administration: admin users, and tokens with the extra `admin` scope. */
export function isAdmin(p: Principal): boolean {
  return p.kind === "user"
    ? p.user.role === "admin"
    : p.claims.scope.includes(ADMIN_SCOPE);
}
