/** @module flat-manager's build purge (specs/flat-manager-api.md §3.2): a build's files removed. */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { buildPaths } from "../../lib/builds/build_disk.ts";
import { buildJson } from "../../lib/builds/fm_json.ts";
import {
  type Build,
  buildStore,
  PublishedState,
  RepoState,
} from "../../lib/builds/build_store.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { fm } from "../../lib/http/errors.ts";
import { authorizedBuild } from "./common.ts";
import type { BuildContext } from "./build_context.ts";

/** `POST /api/v1/build/{id}/purge`. */
export function addPurgeBuild(
  app: OpenAPIHono<AppEnv>,
  { deps, buildUrl, route }: BuildContext,
): void {
  app.openapi(
    route(
      "post",
      "/api/v1/build/{id}/purge",
      "Purge a build's files (§3.2)",
      "The body is ignored.",
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["build"]);
      const busy = [
        RepoState.Committing,
        RepoState.Purging,
        RepoState.Validating,
      ] as number[];
      if (
        busy.includes(build.repoState) ||
        build.publishedState === PublishedState.Publishing
      ) {
        // Both clients treat exactly this message as success.
        throw fm.badRequest("Can't prune build while in use");
      }
      await buildStore.setRepoState(deps.db, build.id, RepoState.Purging, null);
      let after: Build;
      try {
        await Deno.remove(buildPaths(deps.config.dataDir, build.id).root, {
          recursive: true,
        });
        after = await buildStore.setRepoState(
          deps.db,
          build.id,
          RepoState.Purged,
          null,
        );
      } catch (err) {
        const reason = `Failed to Purge build: ${
          err instanceof Error ? err.message : String(err)
        }`;
        after = await buildStore.setRepoState(
          deps.db,
          build.id,
          RepoState.Failed,
          reason,
        );
      }
      c.header("Location", buildUrl(c, build.id));
      return c.json(buildJson(after), 200);
    },
  );
}
