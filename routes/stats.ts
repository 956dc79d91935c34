/**
 * @module Download statistics (specs/ecosystem.md §3.3): per app and per repository in the native
 * API, and Flathub's daily file layout at `/stats/<repo>/YYYY/MM/DD.json` (outside `/repo/<name>/`,
 * whose path space is the repository's own). Readable by whoever may read the repository.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Deps } from "../lib/deps.ts";
import { optionalNativeAuth } from "../lib/http/auth.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook, problems } from "../lib/http/errors.ts";
import { errors, jsonResponse, nativeSecurity } from "../lib/http/openapi.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { type Repo, repoStore } from "../lib/repos/repo_store.ts";
import { dayRows, nameStats, repoStats } from "../lib/stats/stats_store.ts";
import { maybePrincipal } from "./repos.ts";
import { RepoName } from "./repos_schema.ts";

const DAY_MS = 86_400_000;
/** The longest range one request may ask for. */
const MAX_DAYS = 366;

const IsoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "must be YYYY-MM-DD")
  .refine(isRealDate, "must be a calendar date");

const RangeQuery = z.object({
  from: IsoDate.optional().openapi({
    description: "First day (UTC), inclusive; default 29 days before `to`",
    example: "2026-11-01",
  }),
  to: IsoDate.optional().openapi({
    description: "Last day (UTC), inclusive; default today",
    example: "2026-11-30",
  }),
});

const Counts = z.object({
  installs: z.number().int().openapi({ example: 12 }),
  updates: z.number().int().openapi({ example: 30 }),
  downloads: z.number().int().openapi({
    description: "installs + updates",
    example: 42,
  }),
});

const AppStatsSchema = z.object({
  repo: z.string().openapi({ example: "stable" }),
  appId: z.string().openapi({ example: "org.example.Hello" }),
  from: z.string().openapi({ example: "2026-11-01" }),
  to: z.string().openapi({ example: "2026-11-30" }),
  totals: Counts,
  arches: z.record(z.string(), Counts).openapi({
    description: "Totals per architecture",
  }),
  days: z.array(
    Counts.extend({ date: z.string(), arch: z.string() }),
  ).openapi({
    description: "Per day and architecture; days with none left out",
  }),
}).openapi("AppStats");

const RepoStatsSchema = z.object({
  repo: z.string().openapi({ example: "stable" }),
  from: z.string().openapi({ example: "2026-11-01" }),
  to: z.string().openapi({ example: "2026-11-30" }),
  totals: Counts,
  days: z.array(Counts.extend({ date: z.string() })).openapi({
    description: "Per day; days with none left out",
  }),
  refs: z.array(Counts.extend({
    kind: z.enum(["app", "runtime"]),
    id: z.string().openapi({ example: "org.example.Hello" }),
  })).openapi({
    description: "Per app and runtime id over the range, most downloaded first",
  }),
}).openapi("RepoStats");

const DailyStatsSchema = z.object({
  date: z.string().openapi({ example: "2026/11/24" }),
  downloads: z.number().int(),
  updates: z.number().int(),
  delta_downloads: z.number().int(),
  ostree_versions: z.record(z.string(), z.number().int()),
  flatpak_versions: z.record(z.string(), z.number().int()),
  refs: z.record(
    z.string(),
    z.record(z.string(), z.tuple([z.number().int(), z.number().int()])),
  ).openapi({
    description:
      "Apps by id and runtimes by `<id>/<branch>`, then per architecture `[downloads, updates]`",
    example: { "org.example.Hello": { x86_64: [42, 30] } },
  }),
  countries: z.record(z.string(), z.number().int()).openapi({
    description: "Always empty: Flatyard does no address geolocation",
  }),
}).openapi("DailyStats", {
  description:
    "One day of downloads, in the format of Flathub's stats/YYYY/MM/DD.json",
});

const NameParam = RepoName.openapi({
  param: { name: "name", in: "path" },
  example: "stable",
});

/** The statistics routes. */
export function createStatsRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const maybeAuth = optionalNativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  async function readable(c: Context<AppEnv>, name: string): Promise<Repo> {
    const repo = await repoStore.get(deps.db, name);
    if (!repo || !canReadRepo(maybePrincipal(c), repo)) {
      throw problems.notFound(`Cannot find repository "${name}"`);
    }
    return repo;
  }

  const today = () => deps.clock.now().toISOString().slice(0, 10);

  function range(q: { from?: string | undefined; to?: string | undefined }) {
    const to = q.to ?? today();
    const from = q.from ?? addDays(to, -29);
    if (from > to) {
      throw problems.invalid("Cannot read statistics for an empty range", [
        { path: "from", message: `must not be after "to" (${to})` },
      ]);
    }
    if (addDays(from, MAX_DAYS - 1) < to) {
      throw problems.invalid("Cannot read statistics for so long a range", [
        {
          path: "from",
          message: `must be at most ${MAX_DAYS} days before "to"`,
        },
      ]);
    }
    return { from, to };
  }

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

  return app;
}

function counts(installs: number, updates: number) {
  return { installs, updates, downloads: installs + updates };
}

function sum(rows: { installs: number; updates: number }[]) {
  return counts(
    rows.reduce((n, r) => n + r.installs, 0),
    rows.reduce((n, r) => n + r.updates, 0),
  );
}

function isRealDate(s: string): boolean {
  const t = Date.parse(`${s}T00:00:00Z`);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === s;
}

function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString()
    .slice(0, 10);
}
