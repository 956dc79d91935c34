/**
 * @module flat-manager's build endpoints (specs/flat-manager-api.md §3.2), wire-exact: create and
 * list builds, read a build and its refs, register refs, ask which objects are missing, add
 * extra ids, purge. Bodies are parsed by hand because clients put JSON on GET (§0.3).
 * One file per operation or group of operations here (build_*.ts); what they share is
 * ./build_context.ts.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { flatManagerValidationHook } from "../../lib/http/errors.ts";
import { buildContext } from "./build_context.ts";
import { addCreateBuild } from "./build_create.ts";
import { addReadBuilds } from "./build_read.ts";
import { addBuildRefs } from "./build_refs.ts";
import { addMissingObjects } from "./build_missing_objects.ts";
import { addExtraIds } from "./build_extra_ids.ts";
import { addPurgeBuild } from "./build_purge.ts";

/** The build routes. */
export function createFlatManagerBuildRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: flatManagerValidationHook,
  });
  const ctx = buildContext(deps);
  addCreateBuild(app, ctx);
  addReadBuilds(app, ctx);
  addBuildRefs(app, ctx);
  addMissingObjects(app, ctx);
  addExtraIds(app, ctx);
  addPurgeBuild(app, ctx);
  return app;
}
