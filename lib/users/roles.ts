/**
 * @module Roles and what they allow. A user has a global role (admin > maintainer > viewer) and
 * per-repository roles (admin > write > read); higher roles include lower ones, and a global
 * role counts as a role on every repository. Tokens a user mints must stay within these.
 */
import { ADMIN_SCOPE, type Claims } from "../tokens/claims.ts";

export const globalRoles = ["viewer", "maintainer", "admin"] as const;
export type GlobalRole = typeof globalRoles[number];
export const repoRoles = ["read", "write", "admin"] as const;
export type RepoRole = typeof repoRoles[number];

const globalRank: Record<GlobalRole, number> = {
  viewer: 1,
  maintainer: 2,
  admin: 3,
};
const repoRank: Record<RepoRole, number> = { read: 1, write: 2, admin: 3 };
/** What a global role amounts to on any one repository. */
const globalAsRepo: Record<GlobalRole, RepoRole> = {
  viewer: "read",
  maintainer: "write",
  admin: "admin",
};

/** The parts of a user that permissions depend on. */
export interface RoleHolder {
  role: GlobalRole;
  repoRoles: Record<string, RepoRole>;
}

export function globalAtLeast(
  user: Pick<RoleHolder, "role">,
  role: GlobalRole,
): boolean {
  return globalRank[user.role] >= globalRank[role];
}

/** The user's effective role on `repo`: the higher of its global and repository roles. */
export function repoRole(user: RoleHolder, repo: string): RepoRole {
  const own = user.repoRoles[repo];
  const fromGlobal = globalAsRepo[user.role];
  return own && repoRank[own] > repoRank[fromGlobal] ? own : fromGlobal;
}

export function repoAtLeast(
  user: RoleHolder,
  repo: string,
  role: RepoRole,
): boolean {
  return repoRank[repoRole(user, repo)] >= repoRank[role];
}

/**
 * What each scope needs. Repository work needs a repository role on every repo the token names
 * (all repos, for `""`); `tokenmanagement` (which lists and revokes anyone's tokens and prunes)
 * and `admin` need the global admin role.
 */
const scopeNeeds: Record<string, { repo: RepoRole } | { global: GlobalRole }> =
  {
    download: { repo: "read" },
    jobs: { repo: "write" },
    build: { repo: "write" },
    upload: { repo: "write" },
    publish: { repo: "write" },
    generate: { repo: "write" },
    republish: { repo: "write" },
    reviewcheck: { repo: "write" },
    tokenmanagement: { global: "admin" },
    [ADMIN_SCOPE]: { global: "admin" },
  };

/**
 * Why `user` may not mint a token with these claims (empty: it may). Prefixes and apps only
 * narrow a token and need no role.
 */
export function mintDenials(
  user: RoleHolder,
  claims: Pick<Claims, "scope" | "repos">,
): string[] {
  const denials: string[] = [];
  for (const scope of claims.scope) {
    const need = scopeNeeds[scope];
    if (!need) {
      denials.push(`Unknown scope "${scope}"`);
      continue;
    }
    if ("global" in need) {
      if (!globalAtLeast(user, need.global)) {
        denials.push(`Scope "${scope}" needs the global role "${need.global}"`);
      }
      continue;
    }
    for (const repo of claims.repos) {
      const ok = repo === ""
        ? repoRank[globalAsRepo[user.role]] >= repoRank[need.repo]
        : repoAtLeast(user, repo, need.repo);
      if (!ok) {
        denials.push(
          repo === ""
            ? `Scope "${scope}" on all repositories needs a global role that includes "${need.repo}"`
            : `Scope "${scope}" on repository "${repo}" needs the role "${need.repo}"`,
        );
      }
    }
  }
  return denials;
}

/** Whether a change from `before` to `after` takes any right away (tokens are then revoked). */
export function isDowngrade(before: RoleHolder, after: RoleHolder): boolean {
  if (globalRank[after.role] < globalRank[before.role]) return true;
  for (const repo of Object.keys(before.repoRoles)) {
    if (repoRank[repoRole(after, repo)] < repoRank[repoRole(before, repo)]) {
      return true;
    }
  }
  return false;
}
