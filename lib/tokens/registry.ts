/**
 * @module Token revocation and usage tracking (specs/flat-manager-api.md §2.7) without a database
 * round trip per request: revoked jtis are held in memory (loaded at start, updated at once on
 * this process, over the bus for other processes, and re-read periodically), and uses are counted
 * in memory and flushed in batches.
 */
import type { Bus } from "../bus/bus.ts";
import type { Db } from "../db/db.ts";
import { errorFields, type Logger } from "../logger.ts";

const REVOKED_CHANNEL = "tokens.revoked";

/** A row of `tokens/get_list` (§1.6), plus Flatyard's use count. */
export interface TokenRecord {
  jti: string;
  expires: Date | null;
  lastUsed: Date | null;
  revokedAt: Date | null;
  useCount: number;
}

/** Revocation state and usage counters for jtis. */
export class TokenRegistry {
  private revoked = new Set<string>();
  private pending = new Map<
    string,
    { lastUsed: Date; count: number; expires: Date | null }
  >();
  private timers: ReturnType<typeof setInterval>[] = [];
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly options: { flushMs?: number; refreshMs?: number } = {},
  ) {}

  /** Loads the revoked set and starts the flush and refresh timers. */
  async start(): Promise<void> {
    await this.refresh();
    this.unsubscribe = await this.bus.subscribe(REVOKED_CHANNEL, (msg) => {
      for (const jti of JSON.parse(msg) as string[]) this.revoked.add(jti);
    });
    const flushMs = this.options.flushMs ?? 5_000;
    const refreshMs = this.options.refreshMs ?? 60_000;
    this.timers.push(
      setInterval(
        () =>
          this.flush().catch((e) =>
            this.logger.warn("token usage flush failed", errorFields(e))
          ),
        flushMs,
      ),
      setInterval(
        () =>
          this.refresh().catch((e) =>
            this.logger.warn("revocation refresh failed", errorFields(e))
          ),
        refreshMs,
      ),
    );
  }

  /** Flushes pending usage and stops the timers. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.unsubscribe?.();
    await this.flush();
  }

  isRevoked(jti: string): boolean {
    return this.revoked.has(jti);
  }

  /** Counts one use of `jti` (memory only; see {@link flush}). */
  recordUse(jti: string, exp: number, now: Date): void {
    const p = this.pending.get(jti);
    if (p) {
      p.count++;
      p.lastUsed = now;
    } else {this.pending.set(jti, {
        lastUsed: now,
        count: 1,
        expires: new Date(exp * 1000),
      });}
  }

  /** Writes pending usage in one statement: unknown jtis are inserted with their expiry (§2.7). */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = [...this.pending.entries()];
    this.pending.clear();
    try {
      await this.db.query(
        `INSERT INTO tokens (jti, expires, last_used, use_count)
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::int8[])
         ON CONFLICT (jti) DO UPDATE SET
           expires = coalesce(tokens.expires, EXCLUDED.expires),
           last_used = GREATEST(tokens.last_used, EXCLUDED.last_used),
           use_count = tokens.use_count + EXCLUDED.use_count`,
        [
          batch.map(([jti]) => jti),
          // ISO strings: postgres.js cannot encode an array of Date objects.
          batch.map(([, p]) => p.expires?.toISOString() ?? null),
          batch.map(([, p]) => p.lastUsed.toISOString()),
          batch.map(([, p]) => p.count),
        ],
      );
    } catch (err) {
      // Put the counts back so the next flush carries them.
      for (const [jti, p] of batch) {
        const cur = this.pending.get(jti);
        if (cur) cur.count += p.count;
        else this.pending.set(jti, p);
      }
      throw err;
    }
  }

  /** Re-reads the revoked jtis that have not expired yet. */
  async refresh(): Promise<void> {
    const rows = await this.db.query<{ jti: string }>(
      `SELECT jti FROM tokens WHERE revoked_at IS NOT NULL AND (expires IS NULL OR expires > now())`,
    );
    this.revoked = new Set(rows.map((r) => r.jti));
  }

  /**
   * Revokes jtis: existing rows keep an earlier `revoked_at`; unknown jtis are pre-revoked
   * (§2.7). Effective at once here and, through the bus, on every other process. `expires`, the
   * tokens' expiry when the caller knows it, lets maintenance delete the rows once it passed.
   */
  async revoke(
    jtis: readonly string[],
    opts: { expires?: Date } = {},
  ): Promise<void> {
    if (jtis.length === 0) return;
    await this.db.query(
      `INSERT INTO tokens (jti, revoked_at, expires)
       SELECT unnest($1::text[]), now(), $2::timestamptz
       ON CONFLICT (jti) DO UPDATE SET revoked_at = coalesce(tokens.revoked_at, now()),
         expires = coalesce(tokens.expires, EXCLUDED.expires)`,
      [[...jtis], opts.expires?.toISOString() ?? null],
    );
    for (const jti of jtis) this.revoked.add(jti);
    await this.bus.publish(REVOKED_CHANNEL, JSON.stringify(jtis));
  }

  /** Rows for the given jtis, in the order asked; unknown ids are skipped (§2.7 get_list). */
  async list(jtis: readonly string[]): Promise<TokenRecord[]> {
    await this.flush();
    const rows = await this.db.query<{
      jti: string;
      expires: Date | null;
      last_used: Date | null;
      revoked_at: Date | null;
      use_count: number;
    }>(
      `SELECT t.jti, t.expires, t.last_used, t.revoked_at, t.use_count
       FROM unnest($1::text[]) WITH ORDINALITY AS q(jti, ord) JOIN tokens t ON t.jti = q.jti
       ORDER BY q.ord`,
      [[...jtis]],
    );
    return rows.map((r) => ({
      jti: r.jti,
      expires: r.expires,
      lastUsed: r.last_used,
      revokedAt: r.revoked_at,
      useCount: r.use_count,
    }));
  }
}
