/** @module {@link Db} on PGlite: real Postgres compiled to WASM, embedded, single-process. */
import { PGlite } from "@electric-sql/pglite";
import type { Db, Executable } from "./db.ts";

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
