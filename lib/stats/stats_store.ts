/** @module Reading download statistics back: per app, per repository and per day (Flathub's daily file). */
import type { Queryable } from "../db/db.ts";

/** Installs and updates of one arch on one day. */
export interface DayArchCount {
  date: string;
  arch: string;
  installs: number;
  updates: number;
}

/** Counts per day and arch of the refs named `name` (app or runtime id, any branch). */
export function nameStats(
  db: Queryable,
  repoId: number,
  name: string,
  from: string,
  to: string,
): Promise<DayArchCount[]> {
  return db.query<DayArchCount>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS date, arch,
            sum(installs)::int8 AS installs, sum(updates)::int8 AS updates
       FROM download_stats
      WHERE repo_id = $1 AND name = $2 AND day BETWEEN $3::date AND $4::date
      GROUP BY day, arch ORDER BY day, arch`,
    [repoId, name, from, to],
  );
}

/** Counts of one ref kind and id over a range. */
export interface NameCount {
  kind: "app" | "runtime";
  name: string;
  installs: number;
  updates: number;
}

/** A repository's counts per day, and per app or runtime over the whole range. */
export async function repoStats(
  db: Queryable,
  repoId: number,
  from: string,
  to: string,
): Promise<{
  days: { date: string; installs: number; updates: number }[];
  refs: NameCount[];
}> {
  const params = [repoId, from, to];
  const where = "repo_id = $1 AND day BETWEEN $2::date AND $3::date";
  const days = await db.query<
    { date: string; installs: number; updates: number }
  >(
    `SELECT to_char(day, 'YYYY-MM-DD') AS date,
            sum(installs)::int8 AS installs, sum(updates)::int8 AS updates
       FROM download_stats WHERE ${where} GROUP BY day ORDER BY day`,
    params,
  );
  const refs = await db.query<NameCount>(
    `SELECT kind, name, sum(installs)::int8 AS installs, sum(updates)::int8 AS updates
       FROM download_stats WHERE ${where}
      GROUP BY kind, name ORDER BY sum(installs + updates) DESC, kind, name`,
    params,
  );
  return { days, refs };
}

/** One day's rows, for the daily file. */
export async function dayRows(
  db: Queryable,
  repoId: number,
  day: string,
): Promise<{
  refs: {
    kind: string;
    name: string;
    arch: string;
    branch: string;
    installs: number;
    updates: number;
    delta_downloads: number;
  }[];
  clients: {
    ostree_version: string;
    flatpak_version: string;
    downloads: number;
  }[];
}> {
  const refs = await db.query<{
    kind: string;
    name: string;
    arch: string;
    branch: string;
    installs: number;
    updates: number;
    delta_downloads: number;
  }>(
    `SELECT kind, name, arch, branch, installs, updates, delta_downloads
       FROM download_stats WHERE repo_id = $1 AND day = $2::date
      ORDER BY kind, name, arch, branch`,
    [repoId, day],
  );
  const clients = await db.query<
    { ostree_version: string; flatpak_version: string; downloads: number }
  >(
    `SELECT ostree_version, flatpak_version, downloads
       FROM download_clients WHERE repo_id = $1 AND day = $2::date`,
    [repoId, day],
  );
  return { refs, clients };
}
