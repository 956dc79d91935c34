/** @module One day of a repository's downloads in Flathub's `stats/YYYY/MM/DD.json` format. */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import {
  errors,
  jsonResponse,
  nativeSecurity,
} from "../../lib/http/openapi.ts";
import { dayRows } from "../../lib/stats/stats_store.ts";
import { DailyStatsSchema, isRealDate, NameParam } from "./schema.ts";
import { DAY_MS, type StatsContext } from "./context.ts";

/** `GET /stats/{name}/{year}/{month}/{file}`. */
export function addDailyStats(
  app: OpenAPIHono<AppEnv>,
  { deps, maybeAuth, readable, today }: StatsContext,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/stats/{name}/{year}/{month}/{file}",
      tags: ["stats"],
      summary:
        "One day of downloads as Flathub publishes it (stats/YYYY/MM/DD.json)",
      description:
        "Generated from the database on request. Today's file changes during the day and is " +
        "cached briefly; earlier days are cached for long.",
      security: [...nativeSecurity, {}],
      middleware: [maybeAuth] as const,
      request: {
        params: z.object({
          name: NameParam,
          year: z.string().regex(/^\d{4}$/).openapi({
            param: { name: "year", in: "path" },
            example: "2026",
          }),
          month: z.string().regex(/^\d{2}$/).openapi({
            param: { name: "month", in: "path" },
            example: "11",
          }),
          file: z.string().regex(/^\d{2}\.json$/, "must be DD.json").openapi({
            param: { name: "file", in: "path" },
            example: "24.json",
          }),
        }),
      },
      responses: {
        200: jsonResponse("The day's statistics", DailyStatsSchema),
        ...errors(401, 404, 422),
      },
    }),
    async (c) => {
      const { name, year, month, file } = c.req.valid("param");
      const repo = await readable(c, name);
      const day = `${year}-${month}-${file.slice(0, 2)}`;
      const now = deps.clock.now();
      if (!isRealDate(day) || day > today()) {
        throw problems.notFound(`Cannot find statistics for ${day}`);
      }
      const { refs, clients } = await dayRows(deps.db, repo.id, day);
      const body: z.infer<typeof DailyStatsSchema> = {
        date: day.replaceAll("-", "/"),
        downloads: 0,
        updates: 0,
        delta_downloads: 0,
        ostree_versions: {},
        flatpak_versions: {},
        refs: {},
        countries: {},
      };
      for (const r of refs) {
        // Flathub keys apps by id and runtimes by id/branch (flathub-stats `ref_to_id`).
        const key = r.kind === "app" ? r.name : `${r.name}/${r.branch}`;
        const perArch = body.refs[key] ??= {};
        const [d, u] = perArch[r.arch] ?? [0, 0];
        perArch[r.arch] = [d + r.installs + r.updates, u + r.updates];
        body.downloads += r.installs + r.updates;
        body.updates += r.updates;
        body.delta_downloads += r.delta_downloads;
      }
      for (const cl of clients) {
        if (cl.ostree_version) {
          body.ostree_versions[cl.ostree_version] =
            (body.ostree_versions[cl.ostree_version] ?? 0) + cl.downloads;
        }
        if (cl.flatpak_version) {
          body.flatpak_versions[cl.flatpak_version] =
            (body.flatpak_versions[cl.flatpak_version] ?? 0) + cl.downloads;
        }
      }
      // A day is final once it ended well over a flush interval ago; until then it still grows.
      const final = Date.parse(`${day}T00:00:00Z`) + DAY_MS + 3_600_000 <
        now.getTime();
      const scope = repo.public ? "public" : "private";
      c.header(
        "Cache-Control",
        final
          ? `${scope}, max-age=31536000, immutable`
          : `${scope}, max-age=300`,
      );
      return c.json(body, 200);
    },
  );
}
