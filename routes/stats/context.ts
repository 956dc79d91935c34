/**
 * @module What the statistics operations (routes/stats/routes.ts) share: optional
 * authentication, the read check, and the date range and counting helpers.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Deps } from "../../lib/deps.ts";
import { optionalNativeAuth } from "../../lib/http/auth.ts";
import type { AppEnv } from "../../lib/http/env.ts";
import { problems } from "../../lib/http/errors.ts";
import { canReadRepo } from "../../lib/repos/access.ts";
import { type Repo, repoStore } from "../../lib/repos/repo_store.ts";
import { maybePrincipal } from "../repos/context.ts";

/** A day, in milliseconds. */
export const DAY_MS = 86_400_000;
/** The longest range one request may ask for. */
const MAX_DAYS = 366;

/** The helpers of the statistics operations, built once per app. */
export interface StatsContext {
  deps: Deps;
  maybeAuth: MiddlewareHandler<AppEnv>;
  readable(c: Context<AppEnv>, name: string): Promise<Repo>;
  /** Today (UTC) by the clock, as YYYY-MM-DD. */
  today(): string;
  /** The days asked for: the defaults filled in, an empty or too long range refused. */
  range(
    q: { from?: string | undefined; to?: string | undefined },
  ): { from: string; to: string };
}

export function statsContext(deps: Deps): StatsContext {
  const maybeAuth = optionalNativeAuth({
    tokens: deps.tokens,
    sessions: deps.sessions,
    baseUrl: deps.config.baseUrl,
  });

  async function readable(c: Context<AppEnv>, name: string): Promise<Repo> {
    const repo = await repoStore.get(deps.db, name);
    if (!repo || !canReadRepo(maybePrincipal(c), repo)) {
      throw problems.notFound(`Cannot find repository "${name}"`);
    }
    return repo;
  }

  const today = () => deps.clock.now().toISOString().slice(0, 10);

  function range(q: { from?: string | undefined; to?: string | undefined }) {
    const to = q.to ?? today();
    const from = q.from ?? addDays(to, -29);
    if (from > to) {
      throw problems.invalid("Cannot read statistics for an empty range", [
        { path: "from", message: `must not be after "to" (${to})` },
      ]);
    }
    if (addDays(from, MAX_DAYS - 1) < to) {
      throw problems.invalid("Cannot read statistics for so long a range", [
        {
          path: "from",
          message: `must be at most ${MAX_DAYS} days before "to"`,
        },
      ]);
    }
    return { from, to };
  }

  return { deps, maybeAuth, readable, today, range };
}

/** Installs and updates, and their sum. */
export function counts(
  installs: number,
  updates: number,
): { installs: number; updates: number; downloads: number } {
  return { installs, updates, downloads: installs + updates };
}

/** The counts of `rows` added up. */
export function sum(
  rows: { installs: number; updates: number }[],
): { installs: number; updates: number; downloads: number } {
  return counts(
    rows.reduce((n, r) => n + r.installs, 0),
    rows.reduce((n, r) => n + r.updates, 0),
  );
}

/** The day `n` days after `day` (both YYYY-MM-DD). */
function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString()
    .slice(0, 10);
}
