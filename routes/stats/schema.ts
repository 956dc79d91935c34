/** @module Schemas of the statistics routes: the date range, and each response. */
import { z } from "@hono/zod-openapi";
import { RepoName } from "../repos/schema.ts";

const IsoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "must be YYYY-MM-DD")
  .refine(isRealDate, "must be a calendar date");

export const RangeQuery = z.object({
  from: IsoDate.optional().openapi({
    description: "First day (UTC), inclusive; default 29 days before `to`",
    example: "2026-11-01",
  }),
  to: IsoDate.optional().openapi({
    description: "Last day (UTC), inclusive; default today",
    example: "2026-11-30",
  }),
});

export const Counts = z.object({
  installs: z.number().int().openapi({ example: 12 }),
  updates: z.number().int().openapi({ example: 30 }),
  downloads: z.number().int().openapi({
    description: "installs + updates",
    example: 42,
  }),
});

export const AppStatsSchema = z.object({
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

export const RepoStatsSchema = z.object({
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

export const DailyStatsSchema = z.object({
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

export const NameParam = RepoName.openapi({
  param: { name: "name", in: "path" },
  example: "stable",
});

/** Whether `s` (YYYY-MM-DD) names a day of the calendar. */
export function isRealDate(s: string): boolean {
  const t = Date.parse(`${s}T00:00:00Z`);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === s;
}
