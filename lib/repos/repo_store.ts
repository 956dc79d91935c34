/** @module Repository records in the database: the settings of each OSTree repository. */
import type { Queryable } from "../db/db.ts";
import { sqlState, UNIQUE_VIOLATION } from "../db/db.ts";

/** Which static deltas update-repo generates: depth per ref pattern, and from-scratch deltas. */
export interface DeltaPolicy {
  /** First match wins; `match` is a ref id glob (`*` matches one or more characters). */
  rules: { match: string; arches?: string[] | undefined; depth: number }[];
  /** Also make from-scratch deltas (flat-manager never did). */
  fromScratch: boolean;
}

export const defaultDeltaPolicy: DeltaPolicy = {
  rules: [{ match: "*", depth: 1 }],
  fromScratch: true,
};

/** The HTTP methods a CDN purge hook may use. */
export const CDN_PURGE_METHODS = [
  "PURGE",
  "BAN",
  "GET",
  "POST",
  "DELETE",
] as const;

/**
 * One CDN purge request, made for each changed file after a publish (jobs/cdn_purge.ts).
 * `url` is a template: `{repo}` the repository name, `{path}` the file's path relative to the
 * repository URL (`summary`, `org.example.App.flatpakref`), `{url}` the file's absolute public
 * URL, percent-encoded as one query value. `headers` go with each request; `{secret:NAME}` in a
 * value is the server's `FLATYARD_CDN_SECRET_<NAME>`, so API tokens stay out of the database.
 */
export interface CdnPurgeHook {
  method: (typeof CDN_PURGE_METHODS)[number];
  url: string;
  headers?: Record<string, string> | undefined;
}

/** A repository's settings. */
export interface Repo {
  id: number;
  name: string;
  title: string | null;
  description: string | null;
  homepage: string | null;
  iconUrl: string | null;
  collectionId: string | null;
  defaultBranch: string;
  public: boolean;
  deltaPolicy: DeltaPolicy;
  minFreeSpace: string;
  baseUrl: string | null;
  redirectUrl: string | null;
  /** Requests that purge a CDN's copies of changed files after each publish. */
  cdnPurge: CdnPurgeHook[];
  createdAt: Date;
  updatedAt: Date;
}

/** The URL clients fetch the repository from. */
export function repoUrl(
  repo: Pick<Repo, "baseUrl" | "name">,
  serverBase: string,
): string {
  return repo.baseUrl ?? `${serverBase}/repo/${repo.name}`;
}

/** The settable fields. */
export type RepoSettings = Omit<
  Repo,
  "id" | "name" | "createdAt" | "updatedAt"
>;

type Row = {
  id: number;
  name: string;
  title: string | null;
  description: string | null;
  homepage: string | null;
  icon_url: string | null;
  collection_id: string | null;
  default_branch: string;
  public: boolean;
  delta_policy: DeltaPolicy;
  min_free_space: string;
  base_url: string | null;
  redirect_url: string | null;
  cdn_purge: CdnPurgeHook[];
  created_at: Date;
  updated_at: Date;
};

const toRepo = (r: Row): Repo => ({
  id: r.id,
  name: r.name,
  title: r.title,
  description: r.description,
  homepage: r.homepage,
  iconUrl: r.icon_url,
  collectionId: r.collection_id,
  defaultBranch: r.default_branch,
  public: r.public,
  deltaPolicy: r.delta_policy,
  minFreeSpace: r.min_free_space,
  baseUrl: r.base_url,
  redirectUrl: r.redirect_url,
  cdnPurge: r.cdn_purge,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Thrown when a live repository already has the name. */
export class RepoNameTakenError extends Error {
  override name = "RepoNameTakenError";
}

const params = (s: RepoSettings) => [
  s.title,
  s.description,
  s.homepage,
  s.iconUrl,
  s.collectionId,
  s.defaultBranch,
  s.public,
  JSON.stringify(s.deltaPolicy),
  s.minFreeSpace,
  s.baseUrl,
  s.redirectUrl,
  JSON.stringify(s.cdnPurge),
];

/** Reads and writes repository rows (live ones: deleted repositories are invisible here). */
export const repoStore = {
  async create(q: Queryable, name: string, s: RepoSettings): Promise<Repo> {
    try {
      const [row] = await q.query<Row>(
        `INSERT INTO repos (name, title, description, homepage, icon_url, collection_id,
           default_branch, public, delta_policy, min_free_space, base_url, redirect_url, cdn_purge)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13::jsonb) RETURNING *`,
        [name, ...params(s)],
      );
      return toRepo(row!);
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) {
        throw new RepoNameTakenError(`Repository "${name}" already exists`);
      }
      throw err;
    }
  },

  async get(
    q: Queryable,
    name: string,
    options: { forUpdate?: boolean } = {},
  ): Promise<Repo | undefined> {
    const [row] = await q.query<Row>(
      `SELECT * FROM repos WHERE name = $1 AND deleted_at IS NULL${
        options.forUpdate ? " FOR UPDATE" : ""
      }`,
      [name],
    );
    return row ? toRepo(row) : undefined;
  },

  async list(q: Queryable): Promise<Repo[]> {
    return (await q.query<Row>(
      "SELECT * FROM repos WHERE deleted_at IS NULL ORDER BY name",
    )).map(toRepo);
  },

  async update(q: Queryable, id: number, s: RepoSettings): Promise<Repo> {
    const [row] = await q.query<Row>(
      `UPDATE repos SET title = $2, description = $3, homepage = $4, icon_url = $5,
         collection_id = $6, default_branch = $7, public = $8, delta_policy = $9::jsonb,
         min_free_space = $10, base_url = $11, redirect_url = $12, cdn_purge = $13::jsonb,
         updated_at = now()
       WHERE id = $1 RETURNING *`,
      [id, ...params(s)],
    );
    return toRepo(row!);
  },

  async markDeleted(q: Queryable, id: number): Promise<void> {
    await q.query("UPDATE repos SET deleted_at = now() WHERE id = $1", [id]);
  },
};
