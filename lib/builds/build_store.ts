/** @module Build records (specs/flat-manager-api.md §1.1, §1.2) and their refs, in the database. */
import type { Queryable } from "../db/db.ts";

export const RepoState = {
  Uploading: 0,
  Committing: 1,
  Ready: 2,
  Failed: 3,
  Purging: 4,
  Purged: 5,
  Validating: 6,
} as const;
export const PublishedState = {
  Unpublished: 0,
  Publishing: 1,
  Published: 2,
  Failed: 3,
} as const;

/** The names flat-manager puts in `current-state` (§3.2 wrong-state errors). */
export const repoStateNames = [
  "uploading",
  "committing",
  "ready",
  "failed",
  "purging",
  "purged",
  "validating",
] as const;
export const publishedStateNames = [
  "unpublished",
  "publishing",
  "published",
  "failed",
] as const;

/** A build row. */
export interface Build {
  id: number;
  createdAt: Date;
  repoState: number;
  repoStateReason: string | null;
  publishedState: number;
  publishedStateReason: string | null;
  commitJobId: number | null;
  publishJobId: number | null;
  repo: string;
  extraIds: string[];
  appId: string | null;
  publicDownload: boolean;
  buildLogUrl: string | null;
  tokenName: string | null;
  tokenType: string | null;
}

/** A build ref row. */
export interface BuildRef {
  id: number;
  buildId: number;
  refName: string;
  commit: string;
  buildLogUrl: string | null;
}

type Row = {
  id: number;
  created_at: Date;
  repo_state: number;
  repo_state_reason: string | null;
  published_state: number;
  published_state_reason: string | null;
  commit_job_id: number | null;
  publish_job_id: number | null;
  repo: string;
  extra_ids: string[];
  app_id: string | null;
  public_download: boolean;
  build_log_url: string | null;
  token_name: string | null;
  token_type: string | null;
};

const toBuild = (r: Row): Build => ({
  id: r.id,
  createdAt: r.created_at,
  repoState: r.repo_state,
  repoStateReason: r.repo_state_reason,
  publishedState: r.published_state,
  publishedStateReason: r.published_state_reason,
  commitJobId: r.commit_job_id,
  publishJobId: r.publish_job_id,
  repo: r.repo,
  extraIds: r.extra_ids,
  appId: r.app_id,
  publicDownload: r.public_download,
  buildLogUrl: r.build_log_url,
  tokenName: r.token_name,
  tokenType: r.token_type,
});

type RefRow = {
  id: number;
  build_id: number;
  ref_name: string;
  commit: string;
  build_log_url: string | null;
};
const toRef = (r: RefRow): BuildRef => ({
  id: r.id,
  buildId: r.build_id,
  refName: r.ref_name,
  commit: r.commit,
  buildLogUrl: r.build_log_url,
});

/** Reads and writes builds. */
export const buildStore = {
  async create(
    q: Queryable,
    b: Pick<
      Build,
      | "repo"
      | "appId"
      | "publicDownload"
      | "buildLogUrl"
      | "tokenName"
      | "tokenType"
    >,
  ): Promise<Build> {
    const [row] = await q.query<Row>(
      `INSERT INTO builds (repo, app_id, public_download, build_log_url, token_name, token_type)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [
        b.repo,
        b.appId,
        b.publicDownload,
        b.buildLogUrl,
        b.tokenName,
        b.tokenType,
      ],
    );
    return toBuild(row!);
  },

  async get(
    q: Queryable,
    id: number,
    options: { forUpdate?: boolean } = {},
  ): Promise<Build | undefined> {
    const [row] = await q.query<Row>(
      `SELECT * FROM builds WHERE id = $1${
        options.forUpdate ? " FOR UPDATE" : ""
      }`,
      [id],
    );
    return row ? toBuild(row) : undefined;
  },

  /** §3.2 list: with an app id, its non-purged builds; without, the legacy builds with none. */
  async list(q: Queryable, appId: string | undefined): Promise<Build[]> {
    const rows = await q.query<Row>(
      appId === undefined
        ? "SELECT * FROM builds WHERE app_id IS NULL AND repo_state <> 5 ORDER BY id"
        : "SELECT * FROM builds WHERE app_id = $1 AND repo_state <> 5 ORDER BY id",
      appId === undefined ? [] : [appId],
    );
    return rows.map(toBuild);
  },

  async setRepoState(
    q: Queryable,
    id: number,
    state: number,
    reason: string | null,
  ): Promise<Build> {
    const [row] = await q.query<Row>(
      "UPDATE builds SET repo_state = $2, repo_state_reason = $3 WHERE id = $1 RETURNING *",
      [id, state, reason],
    );
    return toBuild(row!);
  },

  async addExtraIds(q: Queryable, id: number, ids: string[]): Promise<Build> {
    const [row] = await q.query<Row>(
      `UPDATE builds SET extra_ids = extra_ids || ARRAY(
         SELECT DISTINCT x FROM unnest($2::text[]) AS x WHERE NOT x = ANY(extra_ids))
       WHERE id = $1 RETURNING *`,
      [id, ids],
    );
    return toBuild(row!);
  },

  async refs(q: Queryable, buildId: number): Promise<BuildRef[]> {
    return (await q.query<RefRow>(
      "SELECT * FROM build_refs WHERE build_id = $1 ORDER BY id",
      [buildId],
    )).map(toRef);
  },

  async ref(
    q: Queryable,
    buildId: number,
    refId: number,
  ): Promise<BuildRef | undefined> {
    const [row] = await q.query<RefRow>(
      "SELECT * FROM build_refs WHERE build_id = $1 AND id = $2",
      [buildId, refId],
    );
    return row ? toRef(row) : undefined;
  },

  /** Upsert on (build, ref): the same commit returns the row unchanged (§3.2 build_ref). */
  async upsertRef(
    q: Queryable,
    buildId: number,
    refName: string,
    commit: string,
    buildLogUrl: string | null,
  ): Promise<BuildRef> {
    const [row] = await q.query<RefRow>(
      `INSERT INTO build_refs (build_id, ref_name, commit, build_log_url) VALUES ($1, $2, $3, $4)
       ON CONFLICT (build_id, ref_name) DO UPDATE SET commit = EXCLUDED.commit, build_log_url = EXCLUDED.build_log_url
         WHERE build_refs.commit <> EXCLUDED.commit
       RETURNING *`,
      [buildId, refName, commit, buildLogUrl],
    );
    if (row) return toRef(row);
    const [same] = await q.query<RefRow>(
      "SELECT * FROM build_refs WHERE build_id = $1 AND ref_name = $2",
      [buildId, refName],
    );
    return toRef(same!);
  },
};

/**
 * Builds whose commit or publish job ended without finishing them (the worker died and the job
 * ran out of attempts, or it was cancelled) are marked failed with the job's error, as flat-
 * manager does for jobs interrupted by a restart (§4.3). Returns how many were fixed.
 */
export async function reconcileBuilds(q: Queryable): Promise<number> {
  const a = await q.query(
    `UPDATE builds b SET repo_state = 3,
       repo_state_reason = 'Commit job ' || j.status || ': ' || coalesce(j.error, 'no reason recorded')
     FROM jobs j WHERE j.id = b.commit_job_id AND b.repo_state = 1 AND j.status IN ('failed', 'cancelled')
     RETURNING b.id`,
  );
  const b = await q.query(
    `UPDATE builds b SET published_state = 3,
       published_state_reason = 'Publish job ' || j.status || ': ' || coalesce(j.error, 'no reason recorded')
     FROM jobs j WHERE j.id = b.publish_job_id AND b.published_state = 1 AND j.status IN ('failed', 'cancelled')
     RETURNING b.id`,
  );
  return a.length + b.length;
}
