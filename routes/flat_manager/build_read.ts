/**
 * @module flat-manager's build reads (specs/flat-manager-api.md §3.2): the list, one build, and one
 * with its refs and checks.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { checkStore } from "../../lib/builds/checks.ts";
import { buildJson, buildRefJson } from "../../lib/builds/fm_json.ts";
import { buildStore, RepoState } from "../../lib/builds/build_store.ts";
import {
  holdSignal,
  PREFER_HEADER,
  PREFERENCE_APPLIED_HEADER,
  preferredWait,
  waitForChange,
} from "../../lib/http/prefer_wait.ts";
import { channels } from "../../lib/queue/queue.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { fm } from "../../lib/http/errors.ts";
import { hasTokenPrefix } from "../../lib/tokens/matching.ts";
import { authorizedBuild, claimsOf, requireSubScope } from "./common.ts";
import type { BuildContext } from "./build_context.ts";

/** `GET /api/v1/build`, `GET /api/v1/build/{id}` and `GET /api/v1/build/{id}/extended`. */
export function addReadBuilds(
  app: OpenAPIHono<AppEnv>,
  { deps, route }: BuildContext,
): void {
  app.openapi(
    route(
      "get",
      "/api/v1/build",
      "List builds (§3.2)",
      "Query `app-id`: its non-purged builds; without it, the legacy builds that have no app id.",
    ),
    async (c) => {
      const claims = claimsOf(c);
      requireSubScope(claims, "build", ["build", "download"]);
      const appId = c.req.query("app-id");
      if (appId !== undefined && !hasTokenPrefix(claims, appId)) {
        throw fm.insufficient(`Id ${appId} not matching prefix in token`);
      }
      return c.json(
        (await buildStore.list(deps.db, appId)).map(buildJson),
        200,
      );
    },
  );

  app.openapi(
    route("get", "/api/v1/build/{id}", "Get a build (§1.1)", ""),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build", "upload"]);
      return c.json(buildJson(build), 200);
    },
  );

  app.openapi(
    route(
      "get",
      "/api/v1/build/{id}/extended",
      "Get a build with its refs and checks (§1.4)",
      "Native extension: with `Prefer: wait=N` (RFC 7240, N ≤ 10) a build still committing " +
        "is held until its commit job changes status, at most N seconds, and answered with " +
        "`Preference-Applied`.",
    ),
    async (c) => {
      let { build } = await authorizedBuild(c, deps.db, ["build", "upload"]);
      const wait = preferredWait(c.req.header(PREFER_HEADER));
      if (wait !== undefined) {
        // What the clients poll for after a commit (§5.4 step 9): the end of Committing.
        const jobId = build.commitJobId;
        if (build.repoState === RepoState.Committing && jobId !== null) {
          build = await waitForChange(
            deps.bus,
            [channels.status(jobId)],
            wait,
            async () => (await buildStore.get(deps.db, build.id)) ?? build,
            (b) => b.repoState !== RepoState.Committing,
            holdSignal(c),
          );
        }
        c.header(PREFERENCE_APPLIED_HEADER, `wait=${wait}`);
      }
      const refs = await buildStore.refs(deps.db, build.id);
      return c.json({
        build: buildJson(build),
        build_refs: refs.map(buildRefJson),
        checks: await checkStore.list(deps.db, build.id),
      }, 200);
    },
  );
}
