/**
 * @module Plain SQL migrations from `lib/db/migrations/NNNN_name.sql`, applied in order, each in its
 * own transaction, with their state in `schema_migrations`. An advisory lock makes concurrent
 * starts (several replicas) apply each migration once.
 */
import type { Db } from "./db.ts";

/** One migration file. */
export interface Migration {
  version: string;
  name: string;
  sql: string;
}

const dir = new URL("./migrations/", import.meta.url);
// Any fixed number works; it only has to be the same in every Flatyard process.
const MIGRATION_LOCK = 746_532_701;

/** Reads the migration files, sorted by version. */
export async function loadMigrations(): Promise<Migration[]> {
  const out: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (!entry.isFile || !m) continue;
    out.push({
      version: m[1]!,
      name: m[2]!,
      sql: await Deno.readTextFile(new URL(entry.name, dir)),
    });
  }
  return out.sort((a, b) => a.version.localeCompare(b.version));
}

/** Applies pending migrations; returns the versions it applied. */
export async function migrate(
  db: Db,
  migrations?: Migration[],
): Promise<string[]> {
  const all = migrations ?? await loadMigrations();
  await db.transaction(async (tx) => {
    // Under the lock: two processes racing on CREATE TABLE IF NOT EXISTS can still collide.
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version text PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  });
  const applied: string[] = [];
  for (const m of all) {
    const done = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      const seen = await tx.query(
        "SELECT 1 FROM schema_migrations WHERE version = $1",
        [m.version],
      );
      if (seen.length > 0) return false;
      await tx.exec(m.sql);
      await tx.query(
        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
        [
          m.version,
          m.name,
        ],
      );
      return true;
    });
    if (done) applied.push(m.version);
  }
  return applied;
}
