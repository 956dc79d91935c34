/** @module Shared OpenAPI pieces: error schemas and response sets every route reuses. */
import { z } from "@hono/zod-openapi";

/** RFC 9457 problem details, as native endpoints answer errors. */
export const ProblemSchema = z.object({
  type: z.string().openapi({ example: "about:blank" }),
  title: z.string().openapi({ example: "Forbidden" }),
  status: z.number().int().openapi({ example: 403 }),
  detail: z.string().optional().openapi({ example: 'Cannot find user "42"' }),
  instance: z.string().openapi({ example: "/api/v1/users/42" }),
  requestId: z.string().openapi({ example: "3f7c9a0e-…" }),
  errors: z.array(z.object({ path: z.string(), message: z.string() }))
    .optional()
    .openapi({ description: "Field-level messages (422 only)" }),
}).openapi("Problem", { description: "RFC 9457 problem details" });

/** flat-manager's error body (specs/flat-manager-api.md §0.4). */
export const FlatManagerErrorSchema = z.object({
  status: z.number().int().openapi({ example: 403 }),
  "error-type": z.string().openapi({ example: "token-insufficient" }),
  message: z.string().openapi({
    example: "Not enough permissions: Not matching scope 'build' in token",
  }),
}).passthrough().openapi("FlatManagerError");

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});

/** The error responses a native route may give, by status. */
export const problemResponses = {
  400: problem("Malformed request"),
  401: problem("Not authenticated, or the token or session is invalid"),
  403: problem("Authenticated but not allowed"),
  404: problem("No such object"),
  409: problem("Conflicts with the current state"),
  422: problem("Invalid input, with field-level messages"),
} as const;

const fmError = (description: string) => ({
  description,
  content: { "application/json": { schema: FlatManagerErrorSchema } },
});

/** The error responses of a flat-manager route. */
export const flatManagerErrorResponses = {
  400: { description: "Malformed body (plain text, as actix answers)" },
  401: fmError("Missing, malformed, expired or revoked token"),
  403: fmError("Token lacks the sub, scope, repo or prefix needed"),
} as const;

/** Security requirement: a bearer token (JWT or `fys_` session) or the session cookie. */
export const nativeSecurity = [{ bearer: [] }, { session: [] }];
/** Security requirement of flat-manager routes: a bearer JWT. */
export const flatManagerSecurity = [{ bearer: [] }];

/** The error responses of a native route, by status: `...errors(401, 403, 404)`. */
export function errors<S extends keyof typeof problemResponses>(
  ...statuses: S[]
): Pick<typeof problemResponses, S> {
  return Object.fromEntries(
    statuses.map((s) => [s, problemResponses[s]]),
  ) as Pick<typeof problemResponses, S>;
}

/** A required JSON request body. */
export function jsonBody<T>(
  schema: T,
): { content: { "application/json": { schema: T } }; required: true } {
  return { content: { "application/json": { schema } }, required: true };
}

/** A JSON response. */
export function jsonResponse<T>(description: string, schema: T): {
  description: string;
  content: { "application/json": { schema: T } };
} {
  return { description, content: { "application/json": { schema } } };
}
