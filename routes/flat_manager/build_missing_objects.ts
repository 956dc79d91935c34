/**
 * @module flat-manager's `missing_objects` (specs/flat-manager-api.md §3.2): which objects a build
 * still needs.
 */
import { type OpenAPIHono, z } from "@hono/zod-openapi";
import { missingObjects } from "../../lib/builds/build_disk.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { parseUploadName } from "../../lib/ostree/object_names.ts";
import { authorizedBuild, fmBody } from "./common.ts";
import type { BuildContext } from "./build_context.ts";

const Wanted = z.object({ wanted: z.array(z.string()) });

/** `GET /api/v1/build/{id}/missing_objects`. */
export function addMissingObjects(
  app: OpenAPIHono<AppEnv>,
  { deps, route }: BuildContext,
): void {
  app.openapi(
    route(
      "get",
      "/api/v1/build/{id}/missing_objects",
      "Which objects still need uploading (§3.2)",
      'GET with a (usually gzip-compressed) JSON body `{"wanted": [names]}`, up to 10 MiB.',
    ),
    async (c) => {
      const { build } = await authorizedBuild(c, deps.db, ["upload"]);
      const { wanted } = await fmBody(c, Wanted, { limit: 10 * 1024 * 1024 });
      // flat-manager never validated these (§7.5); names that are not objects cannot exist.
      const names = wanted.filter((n) => parseUploadName(n)?.kind === "object");
      const missing = new Set(
        await missingObjects(deps.config.dataDir, build.id, names),
      );
      // Sets, not `names.includes`: a 10 MiB body holds ~140,000 names, and a scan per name
      // would block the server for minutes.
      const objects = new Set(names);
      return c.json({
        missing: wanted.filter((n) => missing.has(n) || !objects.has(n)),
      }, 200);
    },
  );
}
