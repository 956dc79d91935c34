/**
 * @module The security headers of every response, and the request ID. The lists are applied by
 * the app's middleware and by the repository-file fast path (routes/repo_files.ts), so the two
 * cannot drift apart.
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./env.ts";

/** Sent with every response, repository files included. */
export const FILE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Strict-Transport-Security": "max-age=15552000; includeSubDomains",
  "X-Content-Type-Options": "nosniff",
};

/**
 * Sent with every response but repository files (the set `hono/secure-headers` sends by
 * default, and our CSP). These govern documents: how a page may be framed, what it may load,
 * which origins may read it. Repository files are never documents, and other sites (a web app
 * catalog, say) may fetch a public repository's files; a pull makes thousands of requests, each
 * of which would carry these ~700 bytes.
 */
export const DOCUMENT_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Origin-Agent-Cluster": "?1",
  "Referrer-Policy": "no-referrer",
  "X-DNS-Prefetch-Control": "off",
  "X-Download-Options": "noopen",
  "X-Frame-Options": "SAMEORIGIN",
  "X-Permitted-Cross-Domain-Policies": "none",
  "X-XSS-Protection": "0",
  "Content-Security-Policy": [
    "default-src 'self'",
    "img-src 'self' data:",
    "style-src 'self' 'unsafe-inline'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
  ].join("; "),
};

/**
 * Sets the security headers on every response, replacing what a handler set: the file set on
 * repository files (`c.var.fileResponse`), both sets on everything else.
 */
export function securityHeaders(): MiddlewareHandler<AppEnv> {
  return async function securityHeaders(c, next) {
    await next();
    for (const [name, value] of Object.entries(FILE_SECURITY_HEADERS)) {
      c.res.headers.set(name, value);
    }
    if (c.get("fileResponse")) return;
    for (const [name, value] of Object.entries(DOCUMENT_SECURITY_HEADERS)) {
      c.res.headers.set(name, value);
    }
  };
}

/** The longest request ID taken from a client. */
const REQUEST_ID_MAX = 255;

/**
 * The ID of a request: the client's `X-Request-Id` when it is short and plain (letters, digits,
 * `_`, `-`, `=`), so a proxy's ID follows the request through our logs; else a new UUID.
 */
export function requestIdFrom(header: string | undefined): string {
  return header && header.length <= REQUEST_ID_MAX && !/[^\w\-=]/.test(header)
    ? header
    : crypto.randomUUID();
}
