/** @module Installs and updates of an app (or runtime) per day and architecture. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { nameStats } from "../../lib/stats/stats_store.ts";
import {
  AppStatsSchema,
  type Counts,
  NameParam,
  RangeQuery,
} from "./schema.ts";
import { counts, type StatsContext, sum } from "./context.ts";

/** `GET /api/v1/repos/{name}/apps/{appId}/stats`. */
export function addAppStats(
  app: OpenAPIHono<AppEnv>,
  { deps, maybeAuth, readable, range }: StatsContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/api/v1/repos/{name}/apps/{appId}/stats",
      tags: ["stats"],
      summary:
        "Installs and updates of an app (or runtime) per day and architecture",
      description:
        "Counted once per download of the ref by a flatpak client, from its `Flatpak-Ref` and " +
        "`Flatpak-Upgrade-From` headers; all branches together. Counts reach this view within " +
        "a flush interval.",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: {
        params: z.object({
          name: NameParam,
          appId: z.string().regex(
            /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*){2,}$/,
            "must be an app id such as org.example.Hello",
          ).max(255).openapi({
            param: { name: "appId", in: "path" },
            example: "org.example.Hello",
          }),
        }),
        query: RangeQuery,
      },
      responses: {
        200: jsonResponse("The app's statistics", AppStatsSchema),
        ...errors(401, 404, 422),
      },
    }),
    async (c) => {
      const { name, appId } = c.req.valid("param");
      const repo = await readable(c, name);
      const { from, to } = range(c.req.valid("query"));
      const rows = await nameStats(deps.db, repo.id, appId, from, to);
      const arches: Record<string, z.infer<typeof Counts>> = {};
      for (const r of rows) {
        const a = arches[r.arch] ??= counts(0, 0);
        Object.assign(
          a,
          counts(a.installs + r.installs, a.updates + r.updates),
        );
      }
      return c.json({
        repo: repo.name,
        appId,
        from,
        to,
        totals: sum(rows),
        arches,
        days: rows.map((r) => ({
          date: r.date,
          arch: r.arch,
          ...counts(r.installs, r.updates),
        })),
      }, 200);
    },
  );
}
