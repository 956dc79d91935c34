/** @module {@link Db} on PGlite: real Postgres compiled to WASM, embedded, single-process. */
import { PGlite } from "@electric-sql/pglite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Db, Executable } from "./db.ts";

/**
 * Postgres settings of the embedded database. Its shared buffers default to 128 MB, which
 * the WASM heap holds whatever the database's size: Flatyard's tables are small, and the
 * files under them stay in the operating system's page cache. 32 MB took a reopened
 * database from 288 to 185 MB of resident memory.
 */
const POSTGRESQL_CONF = ["shared_buffers = 32MB"];

/**
 * Opens (creating if needed) the embedded database. `dataDir` undefined means in memory;
 * `loadDataDir` starts from a dump (tests use it to skip initdb and migrations).
 */
export async function openPglite(
  options: { dataDir?: string; loadDataDir?: Blob } = {},
): Promise<Db> {
  // PGlite creates its own directory but not the parents.
  if (options.dataDir !== undefined) {
    await Deno.mkdir(options.dataDir, { recursive: true });
  }
  const pg = new PGlite({
    postgresqlconf: POSTGRESQL_CONF,
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.loadDataDir === undefined
      ? {}
      : { loadDataDir: options.loadDataDir }),
  });
  await pg.waitReady;
  return wrap(pg);
}

function wrap(pg: PGlite): Db & { dump(): Promise<Blob> } {
  return {
    kind: "pglite",
    async query<T>(sql: string, params: readonly unknown[] = []) {
      return (await pg.query<T>(sql, [...params])).rows;
    },
    transaction<T>(fn: (tx: Executable) => Promise<T>): Promise<T> {
      return pg.transaction((tx) =>
        fn({
          async query<R>(sql: string, params: readonly unknown[] = []) {
            return (await tx.query<R>(sql, [...params])).rows;
          },
          async exec(sql: string) {
            await tx.exec(sql);
          },
        })
      );
    },
    async exec(sql: string) {
      await pg.exec(sql);
    },
    close: () => pg.close(),
    dump: () => pg.dumpDataDir("none"),
  };
}

/** Dumps a PGlite database's data directory (used to clone a migrated template in tests). */
export function dumpPglite(db: Db): Promise<Blob> {
  const withDump = db as Partial<{ dump(): Promise<Blob> }>;
  if (db.kind !== "pglite" || !withDump.dump) {
    throw new Error("Cannot dump a non-PGlite database");
  }
  return withDump.dump();
}

/**
 * Opens the embedded database at `dataDir` for a long-lived process (`serve`): a new one is
 * first created by a child process. PGlite's initdb runs in a WASM instance of its own whose
 * memory stays with the process that ran it: a server that created its database held 490 MB
 * more, for its whole life, than one that opened an existing database.
 */
export async function openPgliteDir(dataDir: string): Promise<Db> {
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--config=${
          fileURLToPath(new URL("../../deno.json", import.meta.url))
        }`,
        fileURLToPath(import.meta.url),
        dataDir,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `Cannot create the embedded database in ${dataDir}: ${
          new TextDecoder().decode(out.stderr).trim()
        }`,
      );
    }
  }
  return await openPglite({ dataDir });
}

// The child of openPgliteDir: creates the database, and exits with its memory.
if (import.meta.main) {
  const db = await openPglite({ dataDir: Deno.args[0]! });
  await db.close();
}
