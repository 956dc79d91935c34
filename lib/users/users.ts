/** @module User accounts: creation, lookup, roles, password checks. Persistence for lib/users. */
import {
  type Db,
  type Queryable,
  sqlState,
  UNIQUE_VIOLATION,
} from "../db/db.ts";
import { dummyHash, hashPassword, verifyPassword } from "./passwords.ts";
import type { GlobalRole, RepoRole } from "./roles.ts";

/** A user account as the rest of Flatyard sees it (never with its password hash). */
export interface User {
  id: number;
  username: string;
  role: GlobalRole;
  disabled: boolean;
  repoRoles: Record<string, RepoRole>;
  createdAt: Date;
  updatedAt: Date;
}

/** Lower-case letters, digits, `.`, `_` and `-`; starts with a letter or digit; 1–64 long. */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Thrown when a username is taken. */
export class UsernameTakenError extends Error {
  override name = "UsernameTakenError";
}

type Row = {
  id: number;
  username: string;
  role: GlobalRole;
  disabled: boolean;
  created_at: Date;
  updated_at: Date;
  repo_roles: Record<string, RepoRole> | null;
};

const select =
  `SELECT u.id, u.username, u.role, u.disabled, u.created_at, u.updated_at,
  (SELECT jsonb_object_agg(r.repo, r.role) FROM user_repo_roles r WHERE r.user_id = u.id)
    AS repo_roles
  FROM users u`;

function toUser(r: Row): User {
  return {
    id: r.id,
    username: r.username,
    role: r.role,
    disabled: r.disabled,
    repoRoles: r.repo_roles ?? {},
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Reads and writes users. `scryptN` is the password hashing cost (small in tests). */
export class UserStore {
  private dummy: Promise<string> | undefined;

  constructor(private readonly db: Db, private readonly scryptN: number) {}

  async create(
    input: { username: string; password: string; role: GlobalRole },
    q: Queryable = this.db,
  ): Promise<User> {
    const hash = await hashPassword(input.password, this.scryptN);
    try {
      const [row] = await q.query<{ id: number }>(
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING id",
        [input.username, hash, input.role],
      );
      return (await this.get(row!.id, q))!;
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) {
        throw new UsernameTakenError(`User "${input.username}" already exists`);
      }
      throw err;
    }
  }

  async get(id: number, q: Queryable = this.db): Promise<User | undefined> {
    const [row] = await q.query<Row>(`${select} WHERE u.id = $1`, [id]);
    return row ? toUser(row) : undefined;
  }

  async getByUsername(username: string): Promise<User | undefined> {
    const [row] = await this.db.query<Row>(`${select} WHERE u.username = $1`, [
      username,
    ]);
    return row ? toUser(row) : undefined;
  }

  async list(): Promise<User[]> {
    return (await this.db.query<Row>(`${select} ORDER BY u.username`)).map(
      toUser,
    );
  }

  /** The user if the password is right and the account enabled; the same work either way. */
  async authenticate(
    username: string,
    password: string,
  ): Promise<User | undefined> {
    const [row] = await this.db.query<
      { id: number; password_hash: string; disabled: boolean }
    >(
      "SELECT id, password_hash, disabled FROM users WHERE username = $1",
      [username],
    );
    this.dummy ??= dummyHash(this.scryptN);
    const ok = await verifyPassword(
      password,
      row?.password_hash ?? await this.dummy,
    );
    if (!row || !ok || row.disabled) return undefined;
    return this.get(row.id);
  }

  async update(
    id: number,
    change: {
      role?: GlobalRole | undefined;
      disabled?: boolean | undefined;
      password?: string | undefined;
    },
    q: Queryable = this.db,
  ): Promise<User | undefined> {
    const hash = change.password === undefined
      ? null
      : await hashPassword(change.password, this.scryptN);
    const rows = await q.query(
      `UPDATE users SET role = coalesce($2, role), disabled = coalesce($3, disabled),
         password_hash = coalesce($4, password_hash), updated_at = now()
       WHERE id = $1 RETURNING id`,
      [id, change.role ?? null, change.disabled ?? null, hash],
    );
    return rows.length > 0 ? this.get(id, q) : undefined;
  }

  async delete(id: number, q: Queryable = this.db): Promise<boolean> {
    return (await q.query("DELETE FROM users WHERE id = $1 RETURNING id", [id]))
      .length > 0;
  }

  /** Sets (or with null removes) a user's role on one repository. */
  async setRepoRole(
    userId: number,
    repo: string,
    role: RepoRole | null,
    q: Queryable = this.db,
  ): Promise<void> {
    if (role === null) {
      await q.query(
        "DELETE FROM user_repo_roles WHERE user_id = $1 AND repo = $2",
        [userId, repo],
      );
    } else {
      await q.query(
        `INSERT INTO user_repo_roles (user_id, repo, role) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, repo) DO UPDATE SET role = EXCLUDED.role`,
        [userId, repo, role],
      );
    }
  }

  /** Enabled admins other than `exceptId` (the last admin may not be removed or demoted). */
  async otherActiveAdmins(
    exceptId: number,
    q: Queryable = this.db,
  ): Promise<number> {
    const [row] = await q.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1",
      [exceptId],
    );
    return row!.n;
  }
}
