/**
 * @module What the server-side build operations (routes/source_builds/routes.ts) share:
 * authentication, build write access, and the lookups of a visible repository and build.
 */
import type { MiddlewareHandler } from "hono";
import type { Deps } from "../../lib/deps.ts";
import { nativeAuth } from "../../lib/http/auth.ts";
import type { AppEnv, Principal } from "../../lib/http/env.ts";
import { requireRepoRole } from "../../lib/http/guards.ts";
import { problems } from "../../lib/http/errors.ts";
import { canReadRepo } from "../../lib/repos/access.ts";
import { type Repo, repoStore } from "../../lib/repos/repo_store.ts";
import { sourceBuildStore } from "../../lib/source_builds/source_builds.ts";
import type { SourceBuild } from "../../lib/source_builds/source_build_view.ts";
import {
  checkSubAndScope,
  hasTokenPrefix,
  hasTokenRepo,
} from "../../lib/tokens/matching.ts";
import { isAdmin } from "../../lib/http/env.ts";

/** Write access for builds: users with write on the repo; CI tokens with `build` on it. */
export function requireBuildAccess(
  p: Principal,
  repo: string,
  appId?: string,
): void {
  if (p.kind === "user" || isAdmin(p)) {
    requireRepoRole(p, repo, "write");
    return;
  }
  const denial = checkSubAndScope(p.claims, "build", ["build"]) ??
    (hasTokenRepo(p.claims, repo) ? undefined : "Not matching repo in token") ??
    (appId === undefined || hasTokenPrefix(p.claims, appId)
      ? undefined
      : "App ID not matching prefix in token");
  if (denial) throw problems.forbidden(denial);
}

/** The helpers of the build operations, built once per app. */
export interface SourceBuildContext {
  deps: Deps;
  auth: MiddlewareHandler<AppEnv>;
  /** The repository, or a 404 when it does not exist or the principal cannot read it. */
  visible(p: Principal, repo: string): Promise<Repo>;
  /** The build, or a 404 when it is not in that (visible) repository. */
  buildOf(p: Principal, repo: string, id: number): Promise<SourceBuild>;
}

export function sourceBuildContext(deps: Deps): SourceBuildContext {
  const auth = nativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });

  async function visible(p: Principal, repo: string) {
    const r = await repoStore.get(deps.db, repo);
    if (!r || !canReadRepo(p, r)) {
      throw problems.notFound(`No repository "${repo}"`);
    }
    return r;
  }

  async function buildOf(p: Principal, repo: string, id: number) {
    await visible(p, repo);
    const b = await sourceBuildStore.get(deps.db, id);
    if (!b || b.repo !== repo) {
      throw problems.notFound(`No build ${id} in repository "${repo}"`);
    }
    return b;
  }

  return { deps, auth, visible, buildOf };
}
