/**
 * @module `maintenance`: periodic clean-up of expired sessions and of token rows long past their
 * expiry (an expired token is refused anyway). It queues its own next run.
 */
import type { JobContext } from "../lib/queue/worker.ts";
import type { JobQueue } from "../lib/queue/queue.ts";
import type { Db } from "../lib/db/db.ts";

export const MAINTENANCE_KIND = "maintenance";
const EVERY_SECONDS = 3600;
/** Token rows stay this long past expiry, so `tokens/get_list` still shows recent ones. */
const TOKEN_KEEP_DAYS = 30;

/** Runs one clean-up and queues the next. */
export async function runMaintenance(
  deps: { db: Db; queue: JobQueue },
  _input: unknown,
  { log }: Pick<JobContext, "log">,
): Promise<{ sessions: number; tokens: number }> {
  const sessions = await deps.db.query(
    "DELETE FROM sessions WHERE expires_at <= now() RETURNING 1",
  );
  const tokens = await deps.db.query(
    `DELETE FROM tokens WHERE expires < now() - make_interval(days => $1) RETURNING 1`,
    [TOKEN_KEEP_DAYS],
  );
  await log(
    `Deleted ${sessions.length} expired sessions and ${tokens.length} expired token rows`,
  );
  await scheduleMaintenance(deps.queue, deps.db, EVERY_SECONDS);
  return { sessions: sessions.length, tokens: tokens.length };
}

/** Queues a maintenance run in `delaySeconds` unless one is already queued. */
export async function scheduleMaintenance(
  queue: JobQueue,
  db: Db,
  delaySeconds: number,
): Promise<void> {
  const queued = await db.query(
    "SELECT 1 FROM jobs WHERE kind = $1 AND status = 'queued' LIMIT 1",
    [MAINTENANCE_KIND],
  );
  if (queued.length > 0) return;
  await queue.enqueue(MAINTENANCE_KIND, {}, {
    delaySeconds,
    serialKey: MAINTENANCE_KIND,
    priority: -10,
    maxAttempts: 1,
  });
}
