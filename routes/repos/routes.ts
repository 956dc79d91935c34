/**
 * @module Repositories (native API): create (global admin), list and read (by visibility),
 * configure (repository admin), delete (with confirmation: hidden at once, data removed by a
 * job), and validate (an `ostree fsck` job and its result).
 * One file per operation here; what they share is ./context.ts.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { nativeValidationHook } from "../../lib/http/errors.ts";
import { repoContext } from "./context.ts";
import { addListRepos } from "./list.ts";
import { addCreateRepo } from "./create.ts";
import { addReadRepo } from "./read.ts";
import { addUpdateRepo } from "./update.ts";
import { addDeleteRepo } from "./delete.ts";
import { addValidateRepo } from "./validate.ts";
import { addRepoValidation } from "./validation.ts";

/** The repository routes. */
export function createRepoRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const ctx = repoContext(deps);
  addListRepos(app, ctx);
  addCreateRepo(app, ctx);
  addReadRepo(app, ctx);
  addUpdateRepo(app, ctx);
  addDeleteRepo(app, ctx);
  addValidateRepo(app, ctx);
  addRepoValidation(app, ctx);
  return app;
}
