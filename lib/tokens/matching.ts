/**
 * @module flat-manager's token matching rules, exactly (specs/flat-manager-api.md §2.4, §2.6):
 * sub prefixes, scopes, app-id prefixes and apps, repos, and what a subset token may ask for.
 * Pure functions; the HTTP layer turns a failed check into flat-manager's 403.
 */
import type { Claims } from "./claims.ts";

/** `required` starts with `claimed`, followed by nothing or `/` (§2.4 `sub_has_prefix`). */
export function subHasPrefix(required: string, claimed: string): boolean {
  if (!required.startsWith(claimed)) return false;
  const rest = required.slice(claimed.length);
  return rest === "" || rest.startsWith("/");
}

/** `id` is `prefix`, lies below it at a dot boundary, or `prefix` is "" (§2.4). */
export function idMatchesPrefix(prefix: string, id: string): boolean {
  return prefix === "" || id === prefix || id.startsWith(prefix + ".");
}

/** `has_token_prefix`: an empty `prefixes` allows everything; else a prefix or an exact app. */
export function hasTokenPrefix(
  claims: Pick<Claims, "prefixes" | "apps">,
  id: string,
): boolean {
  if (claims.prefixes.length === 0) return true;
  return claims.prefixes.some((p) => idMatchesPrefix(p, id)) ||
    claims.apps.includes(id);
}

/** `has_token_repo`: some entry is "" or equals `repo`; an empty list allows nothing. */
export function hasTokenRepo(
  claims: Pick<Claims, "repos">,
  repo: string,
): boolean {
  return claims.repos.some((r) => r === "" || r === repo);
}

/** The scope is present. */
export function hasScope(
  claims: Pick<Claims, "scope">,
  scope: string,
): boolean {
  return claims.scope.includes(scope);
}

/** Why a check failed, as the detail of flat-manager's `Not enough permissions: …` message. */
export type Denial = string;

/**
 * Checks sub and scope (any one of `scopes` is enough) with no database access (§2.4 order of
 * checks, step 1). Returns the denial detail, or undefined when allowed.
 */
export function checkSubAndScope(
  claims: Claims,
  sub: string,
  scopes: readonly string[],
): Denial | undefined {
  if (!subHasPrefix(sub, claims.sub)) {
    return `Not matching sub '${sub}' in token`;
  }
  if (!scopes.some((s) => hasScope(claims, s))) {
    // flat-manager tries the scopes in order; the last failure is the one reported.
    return `Not matching scope '${scopes[scopes.length - 1]}' in token`;
  }
  return undefined;
}

/** Repo then app-prefix check for a build (`has_token_for_build`, §2.4). */
export function checkBuildAccess(
  claims: Claims,
  build: { repo: string; appId: string | null },
): Denial | undefined {
  if (!hasTokenRepo(claims, build.repo)) return "Not matching repo in token";
  if (build.appId !== null && !hasTokenPrefix(claims, build.appId)) {
    return "Build's app ID not matching prefix in token";
  }
  return undefined;
}

/** What `POST /api/v1/token_subset` asks for (§2.6). */
export interface SubsetRequest {
  sub: string;
  scope: string[];
  duration: number;
  name: string;
  prefixes?: string[] | undefined;
  apps?: string[] | undefined;
  repos?: string[] | undefined;
}

/**
 * Whether `parent` may grant `req` at unix time `now` (§2.6); returns the new claims or
 * undefined. The new token keeps the parent's jti, so revoking the parent revokes it too.
 */
export function subsetClaims(
  parent: Claims,
  req: SubsetRequest,
  now: number,
): Claims | undefined {
  if (now + Math.max(req.duration, 0) > parent.exp) return undefined;
  if (!subHasPrefix(req.sub, parent.sub)) return undefined;
  if (!req.scope.every((s) => parent.scope.includes(s))) return undefined;
  if (
    req.prefixes &&
    !req.prefixes.every((p) =>
      parent.prefixes.some((pp) => idMatchesPrefix(pp, p))
    )
  ) {
    return undefined;
  }
  if (req.apps && !req.apps.every((a) => parent.apps.includes(a))) {
    return undefined;
  }
  if (req.repos && !req.repos.every((r) => hasTokenRepo(parent, r))) {
    return undefined;
  }
  return {
    sub: req.sub,
    exp: now + req.duration,
    name: `${parent.name ?? ""}/${req.name}`,
    jti: parent.jti,
    scope: req.scope,
    prefixes: req.prefixes ?? parent.prefixes,
    apps: req.apps ?? parent.apps,
    repos: req.repos ?? parent.repos,
    branches: parent.branches,
    token_type: parent.token_type,
  };
}
