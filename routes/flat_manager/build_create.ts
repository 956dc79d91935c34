/** @module flat-manager's build creation (specs/flat-manager-api.md §3.2). */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { initBuildRepos } from "../../lib/builds/build_disk.ts";
import { buildJson } from "../../lib/builds/fm_json.ts";
import { buildStore } from "../../lib/builds/build_store.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { fm } from "../../lib/http/errors.ts";
import { repoPaths } from "../../lib/repos/repo_disk.ts";
import { repoStore } from "../../lib/repos/repo_store.ts";
import { hasTokenPrefix, hasTokenRepo } from "../../lib/tokens/matching.ts";
import { claimsOf, fmBody, requireSubScope } from "./common.ts";
import type { BuildContext } from "./build_context.ts";

const CreateBuild = z.object({
  repo: z.string(),
  "app-id": z.string().nullish(),
  "public-download": z.boolean().nullish(),
  "build-log-url": z.string().nullish(),
});

/** `POST /api/v1/build`. */
export function addCreateBuild(
  app: OpenAPIHono<AppEnv>,
  { deps, buildUrl, route }: BuildContext,
): void {
  app.openapi(
    route(
      "post",
      "/api/v1/build",
      "Create a build (§3.2)",
      'Body: `{"repo", "app-id"?, "public-download"?, "build-log-url"?}`. Returns a Build with `Location`.',
    ),
    async (c) => {
      const claims = claimsOf(c);
      const body = await fmBody(c, CreateBuild);
      requireSubScope(claims, "build", ["build"]);
      if (!hasTokenRepo(claims, body.repo)) {
        throw fm.insufficient("Not matching repo in token");
      }
      const appId = body["app-id"] ?? null;
      if (appId !== null && !hasTokenPrefix(claims, appId)) {
        throw fm.insufficient(`Id ${appId} not matching prefix in token`);
      }
      const repo = await repoStore.get(deps.db, body.repo);
      if (!repo) throw fm.badRequest("No such repo");
      const build = await deps.db.transaction(async (tx) => {
        const build = await buildStore.create(tx, {
          repo: repo.name,
          appId,
          publicDownload: body["public-download"] ?? appId === null,
          buildLogUrl: body["build-log-url"] ?? null,
          tokenName: claims.name ?? "-",
          tokenType: claims.token_type ?? null,
        });
        // Directories with the row: if they cannot be made, no build exists.
        await initBuildRepos(
          deps.config.dataDir,
          build.id,
          repoPaths(deps.config.dataDir).repo(repo.name),
          repo.collectionId,
        );
        return build;
      });
      c.header("Location", buildUrl(c, build.id));
      return c.json(buildJson(build), 200);
    },
  );
}
