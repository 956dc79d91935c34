/**
 * @module Test databases: every database test runs once on PGlite and once on a PostgreSQL
 * server (FLATYARD_TEST_POSTGRES_URL), each on a fresh, migrated database of its own.
 */
import type { Db } from "../../lib/db/db.ts";
import { dumpPglite, openPglite } from "../../lib/db/pglite.ts";
import { openPostgres } from "../../lib/db/postgres.ts";
import { migrate } from "../../lib/db/migrate.ts";

export type DbKind = "pglite" | "postgres";

const postgresUrl = Deno.env.get("FLATYARD_TEST_POSTGRES_URL");
/** Set by scripts/test.sh: a missing server is then a failure, never a silent skip. */
export const requireAll = Deno.env.get("FLATYARD_TEST_REQUIRE_ALL") === "1";

let template: Promise<Blob> | undefined;
function pgliteTemplate(): Promise<Blob> {
  template ??= (async () => {
    const db = await openPglite();
    await migrate(db);
    const dump = await dumpPglite(db);
    await db.close();
    return dump;
  })();
  return template;
}

/** A fresh migrated database of the given kind; `close` drops it. */
export async function freshDb(
  kind: DbKind,
): Promise<{ db: Db; url?: string; close(): Promise<void> }> {
  if (kind === "pglite") {
    const db = await openPglite({ loadDataDir: await pgliteTemplate() });
    return { db, close: () => db.close() };
  }
  if (!postgresUrl) throw new Error("FLATYARD_TEST_POSTGRES_URL is not set");
  const name = `fy_test_${crypto.randomUUID().replaceAll("-", "")}`;
  const admin = openPostgres(postgresUrl, { max: 1 });
  await admin.exec(`CREATE DATABASE ${name}`);
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  const db = openPostgres(url.toString(), { max: 10 });
  await migrate(db);
  return {
    db,
    url: url.toString(),
    async close() {
      await db.close();
      await admin.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** The database kinds this run covers. */
export function dbKinds(): DbKind[] {
  return postgresUrl || requireAll ? ["pglite", "postgres"] : ["pglite"];
}

/**
 * Registers `fn` once per database kind, as `name [pglite]` and `name [postgres]`, each with a
 * fresh migrated database that is closed afterwards.
 */
export function dbTest(
  name: string,
  fn: (db: Db, t: Deno.TestContext, kind: DbKind) => Promise<void>,
  options: { sanitizeResources?: boolean; sanitizeOps?: boolean } = {},
): void {
  for (const kind of dbKinds()) {
    Deno.test({
      name: `${name} [${kind}]`,
      ...options,
      async fn(t) {
        const { db, close } = await freshDb(kind);
        try {
          await fn(db, t, kind);
        } finally {
          await close();
        }
      },
    });
  }
}
