/** @module {@link Db} on a PostgreSQL server through postgres.js (the deno-postgres substitute). */
import postgres from "postgres";
import type { Db, Executable } from "./db.ts";

/**
 * Type overrides that make postgres.js agree with PGlite (see db.ts): int8 as number, and jsonb
 * parameters given as JSON text are sent as they are rather than encoded a second time.
 */
const types = {
  int8: {
    to: 20,
    from: [20],
    serialize: (x: unknown) => String(x),
    parse: (x: string) => Number(x),
  },
  json: {
    to: 114,
    from: [114, 3802],
    serialize: (x: unknown) => typeof x === "string" ? x : JSON.stringify(x),
    parse: (x: string): unknown => JSON.parse(x),
  },
};

/** Connects a pool to `url`. */
export function openPostgres(url: string, options: { max?: number } = {}): Db {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    // deno-lint-ignore no-explicit-any -- postgres.js types its custom-type map loosely
    types: types as any,
    connection: { application_name: "flatyard" },
  });
  const q = (s: postgres.Sql | postgres.TransactionSql): Executable => ({
    async query<T>(text: string, params: readonly unknown[] = []) {
      // deno-lint-ignore no-explicit-any -- parameters are checked by the server's prepared types
      const rows = await s.unsafe(text, params as any[]);
      // A plain array, like PGlite's: postgres.js's Result subclass carries extra fields.
      return Array.from(rows) as unknown as T[];
    },
    async exec(text: string) {
      // With no parameters postgres.js uses the simple protocol, which allows several statements.
      await s.unsafe(text);
    },
  });
  return {
    kind: "postgres",
    ...q(sql),
    async transaction<T>(fn: (tx: Executable) => Promise<T>): Promise<T> {
      return (await sql.begin((tx) => fn(q(tx)))) as T;
    },
    close: () => sql.end({ timeout: 5 }),
  };
}
