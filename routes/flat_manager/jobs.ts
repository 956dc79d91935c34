/**
 * @module flat-manager's job polling (specs/flat-manager-api.md §3.2, §4.4): `GET /api/v1/job/{id}`
 * and the per-build `GET /api/v1/build/{id}/commit|publish`, each with an optional
 * `{"log-offset": N}` body (bytes, rounded down to a character boundary, §5.6).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Deps } from "../../lib/deps.ts";
import { jobJson } from "../../lib/builds/fm_json.ts";
import { flatManagerAuth } from "../../lib/http/auth.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { flatManagerValidationHook, fm } from "../../lib/http/errors.ts";
import {
  flatManagerErrorResponses,
  flatManagerSecurity,
} from "../../lib/http/openapi.ts";
import {
  authorizedBuild,
  buildIdParam,
  claimsOf,
  fmBody,
  requireSubScope,
} from "./common.ts";

// Proxies strip GET bodies: a missing body is `{}` (§0.3).
const LogOffset = z.object({ "log-offset": z.number().int().min(0).nullish() });

const route = (
  path: string,
  summary: string,
  auth: ReturnType<typeof flatManagerAuth>,
) =>
  createRoute({
    method: "get",
    path,
    tags: ["flat-manager"],
    summary,
    description: 'GET with an optional JSON body `{"log-offset": N}` (bytes).',
    security: flatManagerSecurity,
    middleware: [auth] as const,
    responses: {
      200: {
        description: "The Job (§1.5)",
        content: {
          "application/json": { schema: z.record(z.string(), z.unknown()) },
        },
      },
      ...flatManagerErrorResponses,
      404: { description: "No such job" },
    },
  });

/** The job polling routes. */
export function createFlatManagerJobRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const auth = flatManagerAuth(deps.tokens);
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: flatManagerValidationHook,
  });

  async function respond(c: Context<AppEnv>, jobId: number | null) {
    const body = await fmBody(c, LogOffset, { emptyIsObject: true });
    const job = jobId === null ? undefined : await deps.queue.get(jobId);
    if (!job) throw fm.notFound();
    const { text } = await deps.queue.readLog(job.id, body["log-offset"] ?? 0);
    return c.json(jobJson(job, text), 200);
  }

  app.openapi(
    route("/api/v1/job/{id}", "Poll a job (§3.2)", auth),
    async (c) => {
      requireSubScope(claimsOf(c), "build", ["jobs"]);
      return await respond(c, buildIdParam(c.req.param("id")));
    },
  );

  app.openapi(
    route("/api/v1/build/{id}/commit", "Poll a build's commit job", auth),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      return await respond(c, build.commitJobId);
    },
  );

  app.openapi(
    route("/api/v1/build/{id}/publish", "Poll a build's publish job", auth),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      return await respond(c, build.publishJobId);
    },
  );

  return app;
}
