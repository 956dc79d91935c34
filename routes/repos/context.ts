/**
 * @module What the repository operations (routes/repos/routes.ts) share: authentication, the
 * repository as the API shows it, the CDN host check and the read check.
 */
import type { z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { Deps } from "../../lib/deps.ts";
import { nativeAuth, optionalNativeAuth } from "../../lib/http/auth.ts";
import type { AppEnv, Principal } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { canReadRepo } from "../../lib/repos/access.ts";
import {
  type CdnPurgeHook,
  type Repo,
  repoStore,
} from "../../lib/repos/repo_store.ts";
import { hookHost, hostAllowed } from "../../lib/repos/cdn_purge.ts";
import { type RepoSchema, toRepoJson } from "./schema.ts";

/** The principal, or undefined on an anonymous request (optional auth). */
export function maybePrincipal(c: Context<AppEnv>): Principal | undefined {
  return c.var.principal as Principal | undefined;
}

/** The helpers of the repository operations, built once per app. */
export interface RepoContext {
  deps: Deps;
  auth: MiddlewareHandler<AppEnv>;
  maybeAuth: MiddlewareHandler<AppEnv>;
  /** The repository as the API shows it. */
  json(r: Repo): z.infer<typeof RepoSchema>;
  /** Refuses purge hooks whose host the operator's FLATYARD_CDN_HOSTS does not allow. */
  allowedCdnHosts(hooks: readonly CdnPurgeHook[] | undefined): void;
  /** A live repository the caller may read; a private one it may not read is "not found". */
  readable(c: Context<AppEnv>, name: string): Promise<Repo>;
}

export function repoContext(deps: Deps): RepoContext {
  const authOpts = {
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  };
  const auth = nativeAuth(authOpts);
  const maybeAuth = optionalNativeAuth(authOpts);
  const json = (r: Repo) => toRepoJson(r, deps.config.baseUrl);

  /** Refuses purge hooks whose host the operator's FLATYARD_CDN_HOSTS does not allow. */
  function allowedCdnHosts(hooks: readonly CdnPurgeHook[] | undefined): void {
    const allowed = deps.config.cdnPurge.hosts;
    const refused = (hooks ?? []).flatMap((hook, i) => {
      const host = hookHost(hook);
      return hostAllowed(host, allowed) ? [] : [{
        path: `cdnPurge.${i}.url`,
        message: `host "${host}" is not one FLATYARD_CDN_HOSTS allows (${
          allowed!.join(", ")
        })`,
      }];
    });
    if (refused.length > 0) {
      throw problems.invalid(
        "Cannot call a CDN purge host the server does not allow",
        refused,
      );
    }
  }

  /** A live repository the caller may read; a private one it may not read is "not found". */
  async function readable(c: Context<AppEnv>, name: string): Promise<Repo> {
    const repo = await repoStore.get(deps.db, name);
    if (!repo || !canReadRepo(maybePrincipal(c), repo)) {
      throw problems.notFound(`Cannot find repository "${name}"`);
    }
    return repo;
  }

  return { deps, auth, maybeAuth, json, allowedCdnHosts, readable };
}
