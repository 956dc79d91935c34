/**
 * @module What the build operations (routes/flat_manager/builds.ts) share: flat-manager's auth,
 * the OpenAPI shape of their routes, and absolute build URLs (§0.5).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { Deps } from "../../lib/deps.ts";
import { flatManagerAuth } from "../../lib/http/auth.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import { absoluteUrl } from "./common.ts";

const json = (description: string) => ({
  description,
  content: {
    "application/json": { schema: z.record(z.string(), z.unknown()) },
  },
});

/** A build route: a flat-manager token, and a JSON object or flat-manager's errors. */
function buildRoute(
  auth: MiddlewareHandler<AppEnv>,
  method: "get" | "post",
  path: string,
  summary: string,
  description: string,
) {
  return createRoute({
    method,
    path,
    tags: ["flat-manager"],
    summary,
    description,
    security: flatManagerSecurity,
    middleware: [auth] as const,
    responses: {
      200: json("Success"),
      ...flatManagerErrorResponses,
      404: json("No such build"),
    },
  });
}

/** The helpers of the build operations, built once per app. */
export interface BuildContext {
  deps: Deps;
  /** The absolute URL of build `id`, with `rest` appended. */
  buildUrl(c: Context, id: number, rest?: string): string;
  /** The route of one build endpoint, authenticated by a flat-manager token. */
  route(
    method: "get" | "post",
    path: string,
    summary: string,
    description: string,
  ): ReturnType<typeof buildRoute>;
}

export function buildContext(deps: Deps): BuildContext {
  const auth = flatManagerAuth(deps.tokens);
  const urls = {
    trustProxy: deps.config.trustProxy,
    baseUrl: deps.config.baseUrl,
  };
  const buildUrl = (c: Context, id: number, rest = "") =>
    absoluteUrl(c, `/api/v1/build/${id}${rest}`, urls);
  const route = (
    method: "get" | "post",
    path: string,
    summary: string,
    description: string,
  ) => buildRoute(auth, method, path, summary, description);
  return { deps, buildUrl, route };
}
