/**
 * @module The dependency bundle (CONVENTIONS.md rule 3): built once at start-up from the config
 * and passed down; route and job factories take the parts they need.
 */
import { join } from "node:path";
import { AuditLog } from "./audit.ts";
import type { Bus } from "./bus/bus.ts";
import { createMemoryBus } from "./bus/memory_bus.ts";
import { createRedisBus } from "./bus/redis_bus.ts";
import { type Clock, systemClock } from "./clock.ts";
import type { Config } from "./config.ts";
import type { Db } from "./db/db.ts";
import { migrate } from "./db/migrate.ts";
import { openPgliteDir } from "./db/pglite.ts";
import { openPostgres } from "./db/postgres.ts";
import type { Logger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import { JobQueue } from "./queue/queue.ts";
import { resolveSecret } from "./secret.ts";
import {
  createTokenAuthenticator,
  type TokenAuthenticator,
} from "./tokens/authenticator.ts";
import { TokenRegistry } from "./tokens/registry.ts";
import { DEFAULT_SCRYPT_N } from "./users/passwords.ts";
import { SessionStore } from "./users/sessions.ts";
import { UserStore } from "./users/users.ts";
import { RepoKeys } from "./repos/repo_keys.ts";
import { registerFlatManagerJobMetrics } from "./builds/fm_metrics.ts";
import type { DownloadObserver } from "./stats/observer.ts";
import { DownloadStats } from "./stats/download_stats.ts";
import { RepoRowCache } from "./repos/repo_row_cache.ts";
import { SmallFileCache } from "./http/small_file_cache.ts";

/** Everything the app, the worker and the CLI need. */
export interface Deps {
  config: Config;
  db: Db;
  bus: Bus;
  queue: JobQueue;
  registry: TokenRegistry;
  tokens: TokenAuthenticator;
  users: UserStore;
  sessions: SessionStore;
  audit: AuditLog;
  repoKeys: RepoKeys;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** Download statistics; told about every repository file served. */
  downloads?: DownloadObserver;
  /** Repository rows for file downloads; announce changes through it. */
  repoRows: RepoRowCache;
  /** Small immutable repository files kept in memory (FLATYARD_FILE_CACHE_MB). */
  fileCache: SmallFileCache;
}

/** Builds the deps on an open database and bus (tests pass theirs). Call `start` before use. */
export async function assembleDeps(
  config: Config,
  parts: {
    db: Db;
    bus: Bus;
    logger: Logger;
    clock?: Clock;
    scryptN?: number;
    secret?: Uint8Array;
    masterKey?: Uint8Array;
  },
): Promise<Deps & { start(): Promise<void>; stop(): Promise<void> }> {
  const clock = parts.clock ?? systemClock;
  const secret = parts.secret ??
    await resolveSecret(config.secret, config.dataDir);
  const masterKey = parts.masterKey ??
    await resolveSecret(config.masterKey, config.dataDir, "master.key");
  const registry = new TokenRegistry(parts.db, parts.bus, parts.logger);
  const users = new UserStore(parts.db, parts.scryptN ?? DEFAULT_SCRYPT_N);
  const metrics = new Metrics();
  const queue = new JobQueue(parts.db, parts.bus);
  metrics.addGauge({
    name: "flatyard_jobs",
    help: "Jobs by kind and status.",
    collect: async () =>
      (await queue.counts()).map((r) => ({
        labels: { kind: r.kind, status: r.status },
        value: r.count,
      })),
  });
  registerFlatManagerJobMetrics(metrics, parts.db);
  const downloads = new DownloadStats(parts.db, clock, parts.logger);
  const repoRows = new RepoRowCache(parts.db, parts.bus);
  const fileCache = new SmallFileCache(config.fileCacheMb * 1024 * 1024, {
    objectRecheckMs: config.objectRecheckSeconds * 1000,
  });
  metrics.addGauge({
    name: "flatyard_file_cache_bytes",
    help: "Bytes of repository files held in memory.",
    collect: () => Promise.resolve([{ labels: {}, value: fileCache.size }]),
  });
  metrics.addGauge({
    name: "flatyard_file_cache_lookups",
    help: "Lookups of the repository file cache since start, by result.",
    collect: () =>
      Promise.resolve([
        { labels: { result: "hit" }, value: fileCache.hits },
        { labels: { result: "miss" }, value: fileCache.misses },
      ]),
  });
  return {
    config,
    db: parts.db,
    bus: parts.bus,
    queue,
    registry,
    tokens: createTokenAuthenticator({
      secret,
      repoSecret: config.repoSecret,
      tokenPrefix: config.tokenPrefix,
      registry,
      clock,
    }),
    users,
    sessions: new SessionStore(parts.db, users, clock, config.sessionHours),
    audit: new AuditLog(parts.db),
    repoKeys: new RepoKeys(parts.db, masterKey),
    metrics,
    logger: parts.logger,
    clock,
    downloads,
    repoRows,
    fileCache,
    async start() {
      await registry.start();
      await repoRows.start();
      downloads.start();
    },
    async stop() {
      // Counts still in memory are written before the database closes.
      await downloads.stop();
      await repoRows.stop();
      await registry.stop();
    },
  };
}

/** Opens the configured database (migrated) and bus, and assembles the deps. */
export async function openDeps(
  config: Config,
  logger: Logger,
): Promise<Deps & { close(): Promise<void> }> {
  const db = config.databaseUrl
    ? openPostgres(config.databaseUrl)
    : await openPgliteDir(join(config.dataDir, "db"));
  const applied = await migrate(db);
  if (applied.length > 0) {
    logger.info("applied migrations", { versions: applied, database: db.kind });
  }
  const bus = config.redisUrl
    ? await createRedisBus(config.redisUrl)
    : createMemoryBus();
  const deps = await assembleDeps(config, { db, bus, logger });
  await deps.start();
  return {
    ...deps,
    async close() {
      await deps.stop();
      await bus.close();
      await db.close();
    },
  };
}
