/**
 * @module User administration: accounts and global roles (admins only), per-repository roles
 * (admins, and admins of that repository). Any change that takes a right away revokes the
 * user's API tokens, which may carry the old rights; the last enabled admin cannot be removed.
 * One file per operation here; what they share is ./context.ts.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../../lib/deps.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { nativeValidationHook } from "../../lib/http/errors.ts";
import { userContext } from "./context.ts";
import { addListUsers } from "./list.ts";
import { addCreateUser } from "./create.ts";
import { addReadUser } from "./read.ts";
import { addUpdateUser } from "./update.ts";
import { addDeleteUser } from "./delete.ts";
import { addSetRepoRole } from "./set_repo_role.ts";
import { addRemoveRepoRole } from "./remove_repo_role.ts";

/** The user routes. */
export function createUserRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });
  const ctx = userContext(deps);
  addListUsers(app, ctx);
  addCreateUser(app, ctx);
  addReadUser(app, ctx);
  addUpdateUser(app, ctx);
  addDeleteUser(app, ctx);
  addSetRepoRole(app, ctx);
  addRemoveRepoRole(app, ctx);
  return app;
}
