/**
 * @module CDN purge planning: which of a repository's mutable files a publish changed (the
 * summary files and `config` always; `.flatpakref` files and appstream refs when their content
 * moved since the last run, compared with digests kept per repository), and the requests each
 * configured hook makes for them.
 */
import { join } from "node:path";
import type { Queryable } from "../db/db.ts";
import { listRefs, readRef } from "../builds/repo_refs.ts";
import { type CdnPurgeHook, type Repo, repoUrl } from "./repo_store.ts";

/** Purged after every publish: clients see a publish through these (specs/ostree-repos.md §2.4). */
export const ALWAYS_PURGED = [
  "summary",
  "summary.sig",
  "summary.idx",
  "summary.idx.sig",
  "config",
];

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    await Deno.readFile(path),
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Digests of the mutable files that change only sometimes, by repository-relative path. */
async function currentDigests(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  try {
    for await (const e of Deno.readDir(join(dir, "appstream"))) {
      if (e.isFile && e.name.endsWith(".flatpakref")) {
        out[`appstream/${e.name}`] = await sha256(
          join(dir, "appstream", e.name),
        );
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  for (const ref of await listRefs(dir)) {
    if (!ref.startsWith("appstream/") && !ref.startsWith("appstream2/")) {
      continue;
    }
    const commit = await readRef(dir, ref);
    if (commit) out[`refs/heads/${ref}`] = commit;
  }
  return out;
}

/** What to purge after an update, and the digests to record once it has been purged. */
export interface CdnPurgePlan {
  paths: string[];
  digests: Record<string, string>;
}

/**
 * The paths to purge after an update of `repo` (at `dir`), relative to the repository URL:
 * everything that changed since the last purge that succeeded (so a failed one is redone with
 * the next). `.flatpakref` files are served at two paths.
 */
export async function planCdnPurge(
  q: Queryable,
  repo: Pick<Repo, "id">,
  dir: string,
): Promise<CdnPurgePlan> {
  const now = await currentDigests(dir);
  const [row] = await q.query<{ digests: Record<string, string> }>(
    "SELECT digests FROM cdn_purge_state WHERE repo_id = $1",
    [repo.id],
  );
  const before = row?.digests ?? {};
  const paths = [...ALWAYS_PURGED];
  const changed = Object.keys({ ...before, ...now }).filter((k) =>
    before[k] !== now[k]
  ).sort();
  for (const k of changed) {
    if (k.startsWith("appstream/")) paths.push(k.slice("appstream/".length));
    paths.push(k);
  }
  return { paths, digests: now };
}

/** Records `digests` as purged for `repo`. */
export async function recordCdnPurge(
  q: Queryable,
  repo: Pick<Repo, "id">,
  digests: Record<string, string>,
): Promise<void> {
  await q.query(
    `INSERT INTO cdn_purge_state (repo_id, digests) VALUES ($1, $2::jsonb)
     ON CONFLICT (repo_id) DO UPDATE SET digests = excluded.digests, updated_at = now()`,
    [repo.id, JSON.stringify(digests)],
  );
}

/** The request URL of `hook` for `path` (placeholders: see routes/repos/schema.ts). */
export function purgeUrl(
  hook: CdnPurgeHook,
  repo: Pick<Repo, "name" | "baseUrl">,
  serverBase: string,
  path: string,
): string {
  const encodedPath = path.split("/").map(encodeURIComponent).join("/");
  return hook.url.replace(/\{(repo|path|url)\}/g, (_m, p: string) => {
    if (p === "repo") return encodeURIComponent(repo.name);
    if (p === "path") return encodedPath;
    return encodeURIComponent(`${repoUrl(repo, serverBase)}/${encodedPath}`);
  });
}

/** The host a hook's URL template names (literal: placeholders are refused there). */
export function hookHost(hook: Pick<CdnPurgeHook, "url">): string {
  const sample = hook.url.replaceAll("{repo}", "r").replaceAll("{path}", "p")
    .replaceAll("{url}", "u");
  return new URL(sample).hostname.toLowerCase();
}

/**
 * Whether a hook may call `host` under the operator's allow-list (`FLATYARD_CDN_HOSTS`): every
 * host without one; else a listed host, or a subdomain of a listed `*.domain`. It keeps users
 * who may edit a repository's hooks from making the server call its internal services.
 */
export function hostAllowed(
  host: string,
  allowed: readonly string[] | undefined,
): boolean {
  if (allowed === undefined) return true;
  return allowed.some((a) =>
    a.startsWith("*.") ? host.endsWith(a.slice(1)) : host === a
  );
}
