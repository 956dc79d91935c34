/**
 * @module The server-side subcommands (`serve`, `worker`, `migrate`, `user`): they open the
 * database and build the deps, so main.ts imports this module only when one of them runs, and
 * the client commands (`push`, `token`, …) start without loading the app.
 */
import { toBase64 } from "../base64.ts";
import { createApp, createFastPath } from "../app.ts";
import { serveApp } from "../http/node_server.ts";
import { print } from "./output.ts";
import { BUILDS_LIMIT_KEY } from "../source_builds/source_builds.ts";
import { type Config, ConfigError } from "../config.ts";
import { type Deps, openDeps } from "../deps.ts";
import { migrate } from "../db/migrate.ts";
import { openPglite } from "../db/pglite.ts";
import { openPostgres } from "../db/postgres.ts";
import { errorFields, type Logger } from "../logger.ts";
import { startWorker } from "../queue/worker.ts";
import { createJobHandlers } from "../../jobs/registry.ts";
import { reconcileBuilds } from "../builds/build_store.ts";
import { scheduleMaintenance } from "../../jobs/maintenance.ts";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_SCRYPT_N, hashPassword } from "../users/passwords.ts";
import { UsageError } from "./usage_error.ts";

/** Stops on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
}

/** A worker running every kind of job. */
function startJobWorker(config: Config, deps: Deps, logger: Logger) {
  return startWorker({
    queue: deps.queue,
    bus: deps.bus,
    logger,
    handlers: createJobHandlers(deps),
    // Build tasks wait on their builders: they get slots of their own (their limit), so
    // other jobs always have `workerConcurrency` slots.
    concurrency: config.workerConcurrency + config.builds.concurrency,
    leaseSeconds: config.jobLeaseSeconds,
    onTick: async () => void await reconcileBuilds(deps.db),
  });
}

export async function serve(config: Config, logger: Logger): Promise<void> {
  const deps = await openDeps(config, logger);
  const app = createApp(deps);
  const worker = config.runWorker
    ? await startJobWorker(config, deps, logger)
    : undefined;
  await deps.queue.setLimit(BUILDS_LIMIT_KEY, config.builds.concurrency);
  if (worker) await scheduleMaintenance(deps.queue, deps.db, 60);
  // node:http, not Deno.serve: flat-manager clients send bodies on GET (see node_server.ts).
  const server = await serveApp(app, {
    hostname: config.host,
    port: config.port,
    fastPath: createFastPath(deps),
    onError: (err) => logger.error("connection failed", errorFields(err, true)),
  });
  const host = server.hostname.includes(":")
    ? `[${server.hostname}]`
    : server.hostname;
  logger.info("listening", {
    url: `http://${host}:${server.port}`,
    baseUrl: config.baseUrl,
    database: deps.db.kind,
    bus: deps.bus.kind,
    worker: worker !== undefined,
  });
  const sig = await untilSignal();
  logger.info("shutting down", { signal: sig });
  await server.shutdown();
  await worker?.stop();
  await deps.close();
}

export async function worker(config: Config, logger: Logger): Promise<void> {
  if (!config.databaseUrl) {
    throw new ConfigError([
      "DATABASE_URL: the worker subcommand needs a PostgreSQL server; the embedded database belongs to one process, and `serve` runs a worker itself",
    ]);
  }
  const deps = await openDeps(config, logger);
  await deps.queue.setLimit(BUILDS_LIMIT_KEY, config.builds.concurrency);
  const w = await startJobWorker(config, deps, logger);
  const sig = await untilSignal();
  logger.info("shutting down", { signal: sig });
  await w.stop();
  await deps.close();
}

export async function migrateCommand(config: Config): Promise<void> {
  const db = config.databaseUrl
    ? openPostgres(config.databaseUrl, { max: 1 })
    : await openPglite({ dataDir: join(config.dataDir, "db") });
  try {
    const applied = await migrate(db);
    print(
      applied.length
        ? `Applied migrations: ${applied.join(", ")}`
        : "No pending migrations",
    );
  } finally {
    await db.close();
  }
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

export async function userCommand(
  config: Config,
  logger: Logger,
  args: string[],
): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== "create-admin") {
    throw new UsageError(
      `Unknown user command "${
        sub ?? ""
      }" (user create-admin --username NAME [--password-stdin])`,
    );
  }
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      username: { type: "string" },
      "password-stdin": { type: "boolean", default: false },
    },
  });
  if (!values.username) {
    throw new UsageError("user create-admin needs --username");
  }
  let password: string;
  let generated = false;
  if (values["password-stdin"]) {
    password = (await readAll(Deno.stdin.readable)).replace(/\r?\n$/, "");
    if (password.length < 12) {
      throw new UsageError("The password must be at least 12 characters");
    }
  } else {
    password = toBase64(crypto.getRandomValues(new Uint8Array(18)));
    generated = true;
  }
  const username = values.username.toLowerCase();
  const deps = await openDeps(config, logger);
  try {
    // Hashed here and inserted directly: the CLI runs as the operator, with no principal.
    const hash = await hashPassword(password, DEFAULT_SCRYPT_N);
    const rows = await deps.db.query<{ id: number }>(
      `INSERT INTO users (username, password_hash, role) VALUES ($1, $2, 'admin')
       ON CONFLICT (username) DO NOTHING RETURNING id`,
      [username, hash],
    );
    if (rows.length === 0) {
      throw new UsageError(`User "${username}" already exists`);
    }
    await deps.audit.record({
      actor: "cli",
      action: "user.create",
      objectType: "user",
      objectId: String(rows[0]!.id),
      details: { username, role: "admin" },
    });
    print(`Created admin "${username}" (id ${rows[0]!.id})`);
    if (generated) print(`Password: ${password}`);
  } finally {
    await deps.close();
  }
}
