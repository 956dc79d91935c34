/**
 * @module The two error formats and the only places errors become responses (CONVENTIONS.md
 * rule 7): RFC 9457 problem details on native endpoints, flat-manager's exact JSON shape
 * (specs/flat-manager-api.md §0.4) on flat-manager endpoints.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { errorFields, type Logger } from "../logger.ts";
import { TokenError } from "../tokens/jwt.ts";
import type { AppEnv } from "./env.ts";

/** A native error: becomes `application/problem+json`. */
export class Problem extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail ?? title);
    this.name = "Problem";
  }
}

export const problems = {
  badRequest: (detail: string) => new Problem(400, "Bad request", detail),
  unauthorized: (detail: string) => new Problem(401, "Unauthorized", detail),
  forbidden: (detail: string) => new Problem(403, "Forbidden", detail),
  notFound: (detail: string) => new Problem(404, "Not found", detail),
  conflict: (detail: string) => new Problem(409, "Conflict", detail),
  invalid: (detail: string, errors: { path: string; message: string }[]) =>
    new Problem(422, "Invalid request", detail, { errors }),
};

/** A flat-manager error (§0.4): `{"status", "error-type", "message", …extra}`. */
export class FlatManagerError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly errorType: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "FlatManagerError";
  }
}

export const fm = {
  notFound: () => new FlatManagerError(404, "not-found", "Not found"),
  badRequest: (message: string) =>
    new FlatManagerError(400, "generic-error", message),
  invalidToken: (message: string) =>
    new FlatManagerError(401, "invalid-token", message),
  insufficient: (detail: string) =>
    new FlatManagerError(
      403,
      "token-insufficient",
      `Not enough permissions: ${detail}`,
    ),
};

function problemJson(c: Context<AppEnv>, p: Problem): Response {
  return c.body(
    JSON.stringify({
      type: "about:blank",
      title: p.title,
      status: p.status,
      ...(p.detail === undefined ? {} : { detail: p.detail }),
      instance: c.req.path,
      requestId: c.get("requestId"),
      ...p.extra,
    }),
    p.status,
    { "Content-Type": "application/problem+json" },
  );
}

function flatManagerJson(c: Context<AppEnv>, e: FlatManagerError): Response {
  return c.json({
    status: e.status,
    "error-type": e.errorType,
    message: e.message,
    ...e.extra,
  }, e.status);
}

/** `app.onError`: maps every thrown error to its route's format; 5xx details only in the log. */
export function createErrorHandler(
  logger: Logger,
): (err: Error, c: Context<AppEnv>) => Response {
  return function onError(err: Error, c: Context<AppEnv>): Response {
    const style = c.get("errorStyle") ?? "native";
    if (err instanceof FlatManagerError) return flatManagerJson(c, err);
    if (err instanceof Problem) return problemJson(c, err);
    if (err instanceof TokenError) {
      return style === "flat-manager"
        ? flatManagerJson(c, fm.invalidToken(err.message))
        : problemJson(c, problems.unauthorized(err.message));
    }
    if (err instanceof HTTPException && err.status < 500) {
      // Framework errors: malformed JSON, body too large.
      const status = err.status as ContentfulStatusCode;
      return style === "flat-manager"
        ? c.text(err.message, status)
        : problemJson(
          c,
          new Problem(
            status,
            status === 413 ? "Payload too large" : "Bad request",
            err.message,
          ),
        );
    }
    logger.error("request failed", {
      requestId: c.get("requestId"),
      path: c.req.path,
      ...errorFields(err, true),
    });
    return style === "flat-manager"
      ? flatManagerJson(
        c,
        new FlatManagerError(500, "internal-error", "Internal Server Error"),
      )
      : problemJson(
        c,
        new Problem(
          500,
          "Internal server error",
          `See the server log for request ${c.get("requestId")}`,
        ),
      );
  };
}

/** `app.notFound`. */
export function notFound(c: Context<AppEnv>): Response {
  return problemJson(
    c,
    problems.notFound(`No route for ${c.req.method} ${c.req.path}`),
  );
}

type ZodIssueLike = {
  path: PropertyKey[];
  message: string;
  code?: string;
  keys?: string[];
};
type HookResult = { success: true } | {
  success: false;
  error: { issues: ZodIssueLike[] };
};

/** Validation hook for native routes: 422 with one entry per bad field. */
export function nativeValidationHook(
  result: HookResult,
  _c: Context<AppEnv>,
): void {
  if (result.success) return;
  const where = (path: PropertyKey[]) => path.map(String).join(".") || "(body)";
  const errors = result.error.issues.flatMap((i) =>
    // A strict object reports unknown fields in one issue: give each its own path.
    i.code === "unrecognized_keys" && i.keys
      ? i.keys.map((k) => ({
        path: where([...i.path, k]),
        message: "is not a known field",
      }))
      : [{ path: where(i.path), message: i.message }]
  );
  throw problems.invalid(
    errors.map((e) => `${e.path}: ${e.message}`).join("; "),
    errors,
  );
}

/** Validation hook for flat-manager routes: actix answers a bad body with a plain-text 400. */
export function flatManagerValidationHook(
  result: HookResult,
  c: Context<AppEnv>,
): Response | void {
  if (result.success) return;
  const first = result.error.issues[0];
  return c.text(
    `Json deserialize error: ${
      first
        ? `${first.path.map(String).join(".")}: ${first.message}`
        : "invalid body"
    }`,
    400,
  );
}
