/**
 * @module Turns an `Authorization` header into verified claims: flat-manager's header rules and
 * 401 messages (specs/flat-manager-api.md §2.1, §2.5), its two secrets (`/repo` may use
 * `repo-secret`), revocation by jti and usage tracking (§2.7) through the {@link TokenRegistry}.
 */
import { type Clock, unixNow } from "../clock.ts";
import type { Claims } from "./claims.ts";
import { bearerFromHeader, signToken, TokenError, verifyToken } from "./jwt.ts";
import type { TokenRegistry } from "./registry.ts";

/** Verifies and mints tokens with the configured secrets. */
export interface TokenAuthenticator {
  /** Claims of a bearer header, or a {@link TokenError}. `repo`: verify with the repo secret. */
  verifyHeader(header: string, audience?: "api" | "repo"): Promise<Claims>;
  /** Claims of a bare token (no header parsing). */
  verify(token: string, audience?: "api" | "repo"): Promise<Claims>;
  /** Signs claims with the API secret (subset tokens are always signed with it, §2.6). */
  sign(claims: Claims): Promise<string>;
}

/** Creates the authenticator. `repoSecret` falls back to `secret`. */
export function createTokenAuthenticator(opts: {
  secret: Uint8Array;
  repoSecret?: Uint8Array | undefined;
  tokenPrefix?: string | undefined;
  registry: TokenRegistry;
  clock: Clock;
}): TokenAuthenticator {
  const verify = async (token: string, audience: "api" | "repo" = "api") => {
    const key = audience === "repo"
      ? opts.repoSecret ?? opts.secret
      : opts.secret;
    const claims = await verifyToken(token, key, unixNow(opts.clock));
    if (claims.jti) {
      if (opts.registry.isRevoked(claims.jti)) {
        throw new TokenError("Token has been revoked");
      }
      opts.registry.recordUse(claims.jti, claims.exp, opts.clock.now());
    }
    return claims;
  };
  return {
    verify,
    verifyHeader: (header, audience) =>
      verify(bearerFromHeader(header, opts.tokenPrefix), audience),
    sign: (claims) => signToken(claims, opts.secret),
  };
}
