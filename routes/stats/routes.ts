/**
 * @module Download statistics (specs/ecosystem.md §3.3): per app and per repository in the
 * native API, and Flathub's daily file layout at `/stats/<repo>/YYYY/MM/DD.json` (outside
 * `/repo/<name>/`, whose path space is the repository's own). Readable by whoever may read the
 * repository. One file per operation here; what they share is ./context.ts.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { nativeValidationHook } from "../../lib/http/errors.ts";
import { statsContext } from "./context.ts";
import { addAppStats } from "./app_stats.ts";
import { addRepoStats } from "./repo_stats.ts";
import { addDailyStats } from "./daily.ts";

/** The statistics routes. */
export function createStatsRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const ctx = statsContext(deps);
  addAppStats(app, ctx);
  addRepoStats(app, ctx);
  addDailyStats(app, ctx);
  return app;
}
