/** @module Who may see a repository: public ones anyone; private ones readers and download tokens. */
import { isAdmin, type Principal } from "../http/env.ts";
import { hasTokenRepo } from "../tokens/matching.ts";
import { repoAtLeast } from "../users/roles.ts";
import type { Repo } from "./repo_store.ts";

/** Whether `p` (undefined: anonymous) may read `repo`. */
export function canReadRepo(
  p: Principal | undefined,
  repo: Pick<Repo, "name" | "public">,
): boolean {
  if (repo.public) return true;
  if (!p) return false;
  if (isAdmin(p)) return true;
  if (p.kind === "user") return repoAtLeast(p.user, repo.name, "read");
  // A download token (specs/flat-manager-api.md §2.3) for this repository.
  return p.claims.scope.includes("download") &&
    hasTokenRepo(p.claims, repo.name);
}
