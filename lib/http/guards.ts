/** @module Authorization checks handlers call on the principal; each throws a 403 problem. */
import type { User } from "../users/users.ts";
import {
  globalAtLeast,
  type GlobalRole,
  repoAtLeast,
  type RepoRole,
} from "../users/roles.ts";
import { isAdmin, type Principal } from "./env.ts";
import { problems } from "./errors.ts";

/** Native administration: admin users and `admin`-scoped tokens. */
export function requireAdmin(p: Principal): void {
  if (!isAdmin(p)) {
    throw problems.forbidden(
      "This needs the admin role or a token with the admin scope",
    );
  }
}

/** At least `role` globally; an `admin`-scoped token counts as admin. */
export function requireGlobal(p: Principal, role: GlobalRole): void {
  if (isAdmin(p)) return;
  if (p.kind === "user" && globalAtLeast(p.user, role)) return;
  throw problems.forbidden(`This needs the global role "${role}"`);
}

/** At least `role` on `repo`; an `admin`-scoped token counts as admin. */
export function requireRepoRole(
  p: Principal,
  repo: string,
  role: RepoRole,
): void {
  if (isAdmin(p)) return;
  if (p.kind === "user" && repoAtLeast(p.user, repo, role)) return;
  throw problems.forbidden(
    `This needs the role "${role}" on repository "${repo}"`,
  );
}

/** A logged-in user (not a token). */
export function requireUser(p: Principal, why: string): User {
  if (p.kind !== "user") throw problems.forbidden(why);
  return p.user;
}
