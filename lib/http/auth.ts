/**
 * @module Authentication middleware (CONVENTIONS.md rule 8): factories that fail closed and set a
 * typed `principal`. flat-manager routes take a bearer JWT only, with flat-manager's 401s; native
 * routes also take a login session (cookie or `Bearer fys_…`).
 */
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import type { Context, MiddlewareHandler } from "hono";
import type { TokenAuthenticator } from "../tokens/authenticator.ts";
import { SESSION_PREFIX, type SessionStore } from "../users/sessions.ts";
import type { AppEnv, Principal } from "./env.ts";
import { fm, problems } from "./errors.ts";

export const SESSION_COOKIE = "flatyard_session";

/** Marks a route's errors as flat-manager's shape (§0.4). Put it before any auth. */
export const flatManagerStyle = createMiddleware<AppEnv>(
  async function flatManagerStyle(c, next) {
    c.set("errorStyle", "flat-manager");
    await next();
  },
);

/** Bearer JWT, mandatory, flat-manager's messages (specs/flat-manager-api.md §2.5). */
export function flatManagerAuth(
  tokens: TokenAuthenticator,
): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async function flatManagerAuth(c, next) {
    c.set("errorStyle", "flat-manager");
    const header = c.req.header("authorization");
    if (header === undefined) throw fm.invalidToken("No Authorization header");
    c.set("principal", {
      kind: "token",
      claims: await tokens.verifyHeader(header),
    });
    await next();
  });
}

/**
 * Session cookie, `Bearer fys_…` session, or bearer JWT. A cookie-authenticated unsafe request
 * from another origin is refused (CSRF); bearer requests carry no ambient credential.
 */
export function nativeAuth(opts: NativeAuthOptions): MiddlewareHandler<AppEnv> {
  const resolve = principalResolver(opts);
  return createMiddleware<AppEnv>(async function nativeAuth(c, next) {
    const principal = await resolve(c);
    if (!principal) {
      throw problems.unauthorized(
        "Authentication required: log in, or send a bearer token",
      );
    }
    c.set("principal", principal);
    await next();
  });
}

/** Like {@link nativeAuth}, but a request with no credentials goes on anonymously (public reads). */
export function optionalNativeAuth(
  opts: NativeAuthOptions,
): MiddlewareHandler<AppEnv> {
  const resolve = principalResolver(opts);
  return createMiddleware<AppEnv>(async function optionalNativeAuth(c, next) {
    const principal = await resolve(c);
    if (principal) c.set("principal", principal);
    await next();
  });
}

export interface NativeAuthOptions {
  tokens: TokenAuthenticator;
  sessions: SessionStore;
  baseUrl: string;
}

/** The principal of a request, undefined without credentials; bad credentials throw 401/403. */
function principalResolver(opts: NativeAuthOptions) {
  const trustedOrigin = new URL(opts.baseUrl).origin;
  return async (c: Context<AppEnv>): Promise<Principal | undefined> => {
    const header = c.req.header("authorization");
    if (header !== undefined) {
      const value = header.startsWith("Bearer ") ? header.slice(7).trim() : "";
      if (value.startsWith(SESSION_PREFIX)) {
        const user = await opts.sessions.resolve(value);
        if (!user) {
          throw problems.unauthorized("Session is invalid or has expired");
        }
        return { kind: "user", user, session: value };
      }
      return { kind: "token", claims: await opts.tokens.verifyHeader(header) };
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie === undefined) return undefined;
    const user = await opts.sessions.resolve(cookie);
    if (!user) throw problems.unauthorized("Session is invalid or has expired");
    const origin = c.req.header("origin");
    if (
      !["GET", "HEAD", "OPTIONS"].includes(c.req.method) && origin !== undefined
    ) {
      const own = new URL(c.req.url).origin;
      // "null" is an opaque origin (sandboxed frame, file:): never trusted, whatever it matches.
      if (origin === "null" || (origin !== own && origin !== trustedOrigin)) {
        throw problems.forbidden(
          `Cross-origin request from "${origin}" refused`,
        );
      }
    }
    return { kind: "user", user, session: cookie };
  };
}
