/** @module Installs and updates in a repository per day, and per app and runtime. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { repoStats } from "../../lib/stats/stats_store.ts";
import { NameParam, RangeQuery, RepoStatsSchema } from "./schema.ts";
import { counts, type StatsContext, sum } from "./context.ts";

/** `GET /api/v1/repos/{name}/stats`. */
export function addRepoStats(
  app: OpenAPIHono<AppEnv>,
  { deps, maybeAuth, readable, range }: StatsContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/stats",
      tags: ["stats"],
      summary:
        "Installs and updates in a repository per day, and per app and runtime",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: { params: z.object({ name: NameParam }), query: RangeQuery },
      responses: {
        200: jsonResponse("The repository's statistics", RepoStatsSchema),
        ...errors(401, 404, 422),
      },
    }),
    async (c) => {
      const repo = await readable(c, c.req.valid("param").name);
      const { from, to } = range(c.req.valid("query"));
      const { days, refs } = await repoStats(deps.db, repo.id, from, to);
      return c.json({
        repo: repo.name,
        from,
        to,
        totals: sum(days),
        days: days.map((d) => ({
          date: d.date,
          ...counts(d.installs, d.updates),
        })),
        refs: refs.map((r) => ({
          kind: r.kind,
          id: r.name,
          ...counts(r.installs, r.updates),
        })),
      }, 200);
    },
  );
}
