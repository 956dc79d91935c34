/**
 * @module HS256 JWTs with jose, as flat-manager signs and checks them (specs/flat-manager-api.md
 * §2.1): only HS256, `exp` required and checked here with no leeway, `nbf`/`iat` ignored, and
 * any decode, signature or shape failure reported as `Invalid token claims`.
 */
import { compactVerify, type JWTPayload, SignJWT } from "jose";
import { type Claims, claimsSchema } from "./claims.ts";

/** A 401 from the token layer, with one of flat-manager's messages (§2.5). */
export class TokenError extends Error {
  override name = "TokenError";
}

/** Signs claims with header `{"alg":"HS256","typ":"JWT"}`. Null optional claims are kept. */
export async function signToken(
  claims: Claims,
  secret: Uint8Array,
): Promise<string> {
  // Through JSON: drops undefined claims and keeps nulls, as serde writes `Option::None`.
  const payload = JSON.parse(JSON.stringify(claims)) as JWTPayload;
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(secret);
}

const decoder = new TextDecoder();

/**
 * Verifies the signature and decodes the claims; `now` is unix seconds. Throws {@link TokenError}
 * `Invalid token claims` or `Token is expired`. Revocation is checked by the caller.
 */
export async function verifyToken(
  token: string,
  secret: Uint8Array,
  now: number,
): Promise<Claims> {
  let payload: unknown;
  try {
    const verified = await compactVerify(token, secret, {
      algorithms: ["HS256"],
    });
    payload = JSON.parse(decoder.decode(verified.payload));
  } catch {
    throw new TokenError("Invalid token claims");
  }
  const parsed = claimsSchema.safeParse(payload);
  if (!parsed.success) throw new TokenError("Invalid token claims");
  if (parsed.data.exp < now) throw new TokenError("Token is expired");
  return parsed.data;
}

/**
 * Extracts the token from an `Authorization` header value the way flat-manager's middleware
 * does (§2.1, §2.5), stripping the optional configured prefix. Throws {@link TokenError}.
 */
export function bearerFromHeader(header: string, tokenPrefix?: string): string {
  if (header.length < 8) throw new TokenError("Header length too short");
  // actix's HeaderValue::to_str: visible ASCII only.
  if (!/^[\t\x20-\x7e]*$/.test(header)) {
    throw new TokenError("Cannot convert header to string");
  }
  const space = header.indexOf(" ");
  const scheme = space === -1 ? header : header.slice(0, space);
  if (scheme !== "Bearer") throw new TokenError("Token scheme is not Bearer");
  let token = header.slice(space + 1);
  if (token.trim() === "") throw new TokenError("No token value in header");
  if (tokenPrefix && token.startsWith(tokenPrefix)) {
    token = token.slice(tokenPrefix.length);
  }
  return token;
}
