/** The Db contract and the migrations, on both PGlite and a PostgreSQL server. */
import assert from "node:assert/strict";
import { dbTest } from "../../tests/support/db.ts";
import { sqlState, UNIQUE_VIOLATION } from "./db.ts";
import { loadMigrations, migrate } from "./migrate.ts";

dbTest("Db returns the same JS types on both backends", async (db) => {
  await db.exec(
    "CREATE TABLE t (a int8, j jsonb, ts timestamptz, arr text[], b boolean)",
  );
  await db.query("INSERT INTO t VALUES ($1, $2::jsonb, $3, $4::text[], $5)", [
    5,
    JSON.stringify({ x: [1, "y"] }),
    new Date("2024-05-01T12:00:00Z"),
    ["a", "b"],
    true,
  ]);
  const [row] = await db.query<
    { a: unknown; j: unknown; ts: unknown; arr: unknown; b: unknown }
  >(
    "SELECT * FROM t WHERE 'a' = ANY($1::text[])",
    [["a"]],
  );
  assert.deepEqual(row, {
    a: 5,
    j: { x: [1, "y"] },
    ts: new Date("2024-05-01T12:00:00Z"),
    arr: ["a", "b"],
    b: true,
  });
});

dbTest(
  "Db transactions commit on success and roll back on a throw",
  async (db) => {
    await db.exec("CREATE TABLE t (v text UNIQUE)");
    await db.transaction(async (tx) => {
      await tx.query("INSERT INTO t VALUES ('kept')");
    });
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES ('lost')");
        throw new Error("boom");
      }),
      /boom/,
    );
    const err = await db.query("INSERT INTO t VALUES ('kept')").catch((e) => e);
    assert.equal(sqlState(err), UNIQUE_VIOLATION);
    assert.deepEqual(await db.query("SELECT v FROM t ORDER BY v"), [{
      v: "kept",
    }]);
  },
);

dbTest("migrate records each migration once and is idempotent", async (db) => {
  // freshDb already migrated: a second run applies nothing.
  assert.deepEqual(await migrate(db), []);
  const files = await loadMigrations();
  const rows = await db.query<{ version: string }>(
    "SELECT version FROM schema_migrations ORDER BY version",
  );
  assert.deepEqual(rows.map((r) => r.version), files.map((f) => f.version));
  const extra = {
    version: "9999",
    name: "probe",
    sql: "CREATE TABLE probe (x int)",
  };
  assert.deepEqual(await migrate(db, [...files, extra]), ["9999"]);
  assert.deepEqual(await migrate(db, [...files, extra]), []);
  await db.query("INSERT INTO probe VALUES (1)");
});

dbTest(
  "a failing migration leaves no trace and is retried next time",
  async (db) => {
    const files = await loadMigrations();
    const bad = {
      version: "9998",
      name: "bad",
      sql: "CREATE TABLE half (x int); SELECT nope;",
    };
    await assert.rejects(migrate(db, [...files, bad]));
    assert.deepEqual(
      await db.query("SELECT 1 FROM schema_migrations WHERE version = '9998'"),
      [],
    );
    assert.deepEqual(
      await db.query(
        "SELECT 1 FROM information_schema.tables WHERE table_name = 'half'",
      ),
      [],
    );
  },
);
