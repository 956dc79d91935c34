/** The embedded database: created by a child process, then opened in this one. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { openPgliteDir } from "./pglite.ts";

Deno.test("openPgliteDir creates a new database in a child process, then opens it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-pglite-" });
  try {
    const dataDir = join(dir, "db");
    const db = await openPgliteDir(dataDir);
    try {
      assert.ok(existsSync(join(dataDir, "PG_VERSION")));
      await db.query("CREATE TABLE kept (x int)");
      await db.query("INSERT INTO kept VALUES (42)");
      assert.deepEqual(await db.query("SHOW shared_buffers"), [{
        shared_buffers: "32MB",
      }]);
    } finally {
      await db.close();
    }
    // An existing database is opened as it is.
    const again = await openPgliteDir(dataDir);
    try {
      assert.deepEqual(await again.query("SELECT x FROM kept"), [{ x: 42 }]);
    } finally {
      await again.close();
    }
    // A path that cannot hold a database: the child's error, named.
    const file = join(dir, "a-file");
    await Deno.writeTextFile(file, "");
    await assert.rejects(
      openPgliteDir(join(file, "db")),
      /Cannot create the embedded database in .*a-file\/db: /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
