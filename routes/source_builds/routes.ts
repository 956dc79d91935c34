/**
 * @module Server-side builds (native API): a CI job submits a flatpak-builder manifest and its
 * sources once, for several architectures; Flatyard builds each architecture as its own job on
 * the configured runner, then commits and publishes (lib/source_builds/source_builds.ts). The
 * manifest is checked before anything is queued: a bad one is a 422 with one entry per field.
 * Submitting needs write on the repository (users), or a token with the `build` scope for the
 * repository whose prefixes allow the app id (CI).
 * One file per operation here; what they share is ./context.ts.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { nativeValidationHook } from "../../lib/http/errors.ts";
import { sourceBuildContext } from "./context.ts";
import { addSubmitBuild } from "./submit.ts";
import { addListBuilds } from "./list.ts";
import { addReadBuild } from "./read.ts";
import { addCancelBuild } from "./cancel.ts";
import { addCancelTask } from "./cancel_task.ts";

/** The server-side build routes. */
export function createSourceBuildRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const ctx = sourceBuildContext(deps);
  addSubmitBuild(app, ctx);
  addListBuilds(app, ctx);
  addReadBuild(app, ctx);
  addCancelBuild(app, ctx);
  addCancelTask(app, ctx);
  return app;
}
