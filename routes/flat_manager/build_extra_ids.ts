/** @module flat-manager's `add_extra_ids` (specs/flat-manager-api.md §3.2). */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { buildJson } from "../../lib/builds/fm_json.ts";
import { buildStore } from "../../lib/builds/build_store.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { fm } from "../../lib/http/errors.ts";
import { authorizedBuild, fmBody } from "./common.ts";
import type { BuildContext } from "./build_context.ts";

const ExtraIds = z.object({ ids: z.array(z.string()) });

/**
 * §3.2 add_extra_ids: dot-separated elements of Unicode letters and digits, `_` and `-` refused.
 */
const EXTRA_ID = /^[\p{L}\p{N}]+(\.[\p{L}\p{N}]+)*$/u;

/** `POST /api/v1/build/{id}/add_extra_ids`. */
export function addExtraIds(
  app: OpenAPIHono<AppEnv>,
  { deps, buildUrl, route }: BuildContext,
): void {
  app.openapi(
    route(
      "post",
      "/api/v1/build/{id}/add_extra_ids",
      "Add extra ids to a build (§3.2)",
      'Body: `{"ids": [...]}`.',
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["upload"]);
      const { ids } = await fmBody(c, ExtraIds);
      for (const id of ids) {
        if (!EXTRA_ID.test(id)) throw fm.badRequest(`Invalid extra id ${id}`);
      }
      const updated = await buildStore.addExtraIds(deps.db, build.id, ids);
      c.header("Location", buildUrl(c, build.id));
      return c.json(buildJson(updated), 200);
    },
  );
}
