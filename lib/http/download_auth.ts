/**
 * @module Credentials on downloads of repository files: the token in an `Authorization` header
 * (bearer, or basic auth with the token as the password, as flatpak sends a remote URL's
 * credentials), the principal it names, and the `GPGKey` value of `.flatpakrepo` and
 * `.flatpakref` files.
 */
import { toBase64 } from "../base64.ts";
import type { TokenAuthenticator } from "../tokens/authenticator.ts";
import { TokenError } from "../tokens/jwt.ts";
import type { Principal } from "./env.ts";

/**
 * The token of an `Authorization` header on a download: `Bearer <token>`, or basic auth with
 * the token as the password (flatpak sends credentials from a remote's URL that way). A token
 * may start with the configured prefix (specs/flat-manager-api.md §2.1). "invalid" for a header
 * that carries no token.
 */
export function downloadToken(
  header: string,
  tokenPrefix?: string,
): string | "invalid" {
  let token: string | undefined;
  if (header.startsWith("Bearer ")) token = header.slice(7).trim();
  else if (header.startsWith("Basic ")) {
    try {
      const decoded = atob(header.slice(6).trim());
      token = decoded.slice(decoded.indexOf(":") + 1);
    } catch {
      return "invalid";
    }
  }
  if (!token) return "invalid";
  if (tokenPrefix && token.startsWith(tokenPrefix)) {
    token = token.slice(tokenPrefix.length);
  }
  return token === "" ? "invalid" : token;
}

/** Binary keyring bytes as a `.flatpakrepo`/`.flatpakref` `GPGKey` value. */
export function gpgKeyValue(keyring: Uint8Array): string {
  return toBase64(keyring);
}

/**
 * The principal of a download's `Authorization` header: none without one, "invalid" for a bad
 * one (a download token is optional, but a bad one is an error: specs/flat-manager-api.md §2.5).
 */
export async function downloadPrincipal(
  header: string | undefined,
  tokens: TokenAuthenticator,
  tokenPrefix: string | undefined,
): Promise<Principal | undefined | "invalid"> {
  if (!header) return undefined;
  const token = downloadToken(header, tokenPrefix);
  if (token === "invalid") return "invalid";
  try {
    return { kind: "token", claims: await tokens.verify(token, "repo") };
  } catch (err) {
    if (err instanceof TokenError) return "invalid";
    throw err;
  }
}
