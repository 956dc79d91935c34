/**
 * @module Login sessions: an opaque random value (`fys_…`) given to the client as a cookie or a
 * bearer token, stored only as its sha256. The user is re-read on each lookup, so role changes
 * and disabling take effect at once.
 */
import type { Clock } from "../clock.ts";
import type { Db } from "../db/db.ts";
import type { User, UserStore } from "./users.ts";

/** Every session value starts with this, which tells it apart from a JWT. */
export const SESSION_PREFIX = "fys_";

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return SESSION_PREFIX +
    btoa(String.fromCharCode(...bytes)).replaceAll("+", "-")
      .replaceAll("/", "_").replaceAll("=", "");
}

/** Creates, resolves and ends sessions. */
export class SessionStore {
  constructor(
    private readonly db: Db,
    private readonly users: UserStore,
    private readonly clock: Clock,
    private readonly ttlHours: number,
  ) {}

  async create(
    userId: number,
    meta: { userAgent?: string | undefined; ip?: string | undefined } = {},
  ): Promise<{ token: string; expiresAt: Date }> {
    const token = randomToken();
    const expiresAt = new Date(
      this.clock.now().getTime() + this.ttlHours * 3600_000,
    );
    await this.db.query(
      "INSERT INTO sessions (id_hash, user_id, expires_at, user_agent, ip) VALUES ($1, $2, $3, $4, $5)",
      [
        await sha256Hex(token),
        userId,
        expiresAt,
        meta.userAgent ?? null,
        meta.ip ?? null,
      ],
    );
    return { token, expiresAt };
  }

  /** The session's user, if the session exists, has not expired, and the user is enabled. */
  async resolve(token: string): Promise<User | undefined> {
    if (!token.startsWith(SESSION_PREFIX)) return undefined;
    const [row] = await this.db.query<{ user_id: number }>(
      "SELECT user_id FROM sessions WHERE id_hash = $1 AND expires_at > $2",
      [await sha256Hex(token), this.clock.now()],
    );
    if (!row) return undefined;
    const user = await this.users.get(row.user_id);
    return user && !user.disabled ? user : undefined;
  }

  async end(token: string): Promise<void> {
    await this.db.query("DELETE FROM sessions WHERE id_hash = $1", [
      await sha256Hex(token),
    ]);
  }

  async endAllFor(userId: number): Promise<void> {
    await this.db.query("DELETE FROM sessions WHERE user_id = $1", [userId]);
  }

  /** Deletes expired sessions; returns how many. */
  async purgeExpired(): Promise<number> {
    return (await this.db.query(
      "DELETE FROM sessions WHERE expires_at <= $1 RETURNING 1",
      [this.clock.now()],
    )).length;
  }
}
