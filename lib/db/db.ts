/**
 * @module The database interface every other module uses. Two implementations: PGlite (embedded,
 * `pglite.ts`) and a PostgreSQL server through postgres.js (`postgres.ts`). Both run the same SQL.
 *
 * Conventions both implementations keep, so callers never know which one they got:
 * - placeholders are `$1, $2, …`;
 * - `int8` columns come back as JS numbers, `jsonb` as parsed values, `timestamptz` as `Date`;
 * - a jsonb parameter is passed as a JSON-encoded string and cast in SQL (`$1::jsonb`).
 */

/** Something SQL can be sent to: the database itself or an open transaction. */
export interface Queryable {
  /** Runs one parameterized statement and returns its rows. */
  query<T = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<T[]>;
}

/** A queryable that also runs scripts of several statements with no parameters (migrations). */
export interface Executable extends Queryable {
  exec(sql: string): Promise<void>;
}

/** A database connection (pool). */
export interface Db extends Executable {
  readonly kind: "pglite" | "postgres";
  /** Runs `fn` in a transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Executable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The SQLSTATE of a database error, if it carries one (both drivers expose `code`). */
export function sqlState(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** SQLSTATE 23505: a unique constraint was violated. */
export const UNIQUE_VIOLATION = "23505";
