/**
 * @module Flatyard's entry point: parses the config, builds the deps and starts what the
 * subcommand asks for (CONVENTIONS.md rule 1). `serve` (the default) runs the API, the file
 * server and a worker in one process.
 */
import { createApp, createFastPath } from "./lib/app.ts";
import { serveApp } from "./lib/http/node_server.ts";
import { print, printErr } from "./lib/cli/output.ts";
import { mintOffline, tokenUsage } from "./lib/cli/token.ts";
import { pushCommand, pushUsage } from "./lib/cli/push.ts";
import { builderCommand } from "./lib/cli/builder.ts";
import { BUILDS_LIMIT_KEY } from "./lib/source_builds/source_builds.ts";
import { pushBundleCommand, pushBundleUsage } from "./lib/cli/push_bundle.ts";
import { ConfigError, loadClientEnv, loadConfig } from "./lib/config.ts";
import type { Config } from "./lib/config.ts";
import { openDeps } from "./lib/deps.ts";
import { migrate } from "./lib/db/migrate.ts";
import { openPglite } from "./lib/db/pglite.ts";
import { openPostgres } from "./lib/db/postgres.ts";
import { createLogger, errorFields, type Logger } from "./lib/logger.ts";
import { startWorker } from "./lib/queue/worker.ts";
import { resolveSecret } from "./lib/secret.ts";
import { createJobHandlers } from "./jobs/registry.ts";
import { reconcileBuilds } from "./lib/builds/build_store.ts";
import { scheduleMaintenance } from "./jobs/maintenance.ts";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_SCRYPT_N, hashPassword } from "./lib/users/passwords.ts";

const usage = `usage: flatyard <command> [options]
commands:
  serve                  API, repository file server and a job worker (default)
  worker                 a job worker only (needs DATABASE_URL)
  migrate                apply pending database migrations and exit
  token [options]        mint a token offline, as flat-manager's gentoken (--help for options)
  user create-admin --username NAME [--password-stdin]
                         create an admin account (a password is generated unless given)
  push [options] BUILD_URL LOCAL_REPO [REF...]
                         upload a local repository as flat-manager-client push does (--help)
  push-bundle [options] BUILD_URL BUNDLE
                         upload a flatpak bundle in resumable chunks and import it (--help)
  builder                run one build task from FLATYARD_BUILD_SPEC (the runners' entrypoint)
  openapi                print the OpenAPI document
configuration: environment variables, see README.md`;

/** Stops on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
}

async function serve(config: Config, logger: Logger): Promise<void> {
  const deps = await openDeps(config, logger);
  const app = createApp(deps);
  const worker = config.runWorker
    ? await startWorker({
      queue: deps.queue,
      bus: deps.bus,
      logger,
      handlers: createJobHandlers(deps),
      // Build tasks wait on their builders: they get slots of their own (their limit), so
      // other jobs always have `workerConcurrency` slots.
      concurrency: config.workerConcurrency + config.builds.concurrency,
      leaseSeconds: config.jobLeaseSeconds,
      onTick: async () => void await reconcileBuilds(deps.db),
    })
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

async function worker(config: Config, logger: Logger): Promise<void> {
  if (!config.databaseUrl) {
    throw new ConfigError([
      "DATABASE_URL: the worker subcommand needs a PostgreSQL server; the embedded database belongs to one process, and `serve` runs a worker itself",
    ]);
  }
  const deps = await openDeps(config, logger);
  await deps.queue.setLimit(BUILDS_LIMIT_KEY, config.builds.concurrency);
  const w = await startWorker({
    queue: deps.queue,
    bus: deps.bus,
    logger,
    handlers: createJobHandlers(deps),
    concurrency: config.workerConcurrency + config.builds.concurrency,
    leaseSeconds: config.jobLeaseSeconds,
    onTick: async () => void await reconcileBuilds(deps.db),
  });
  const sig = await untilSignal();
  logger.info("shutting down", { signal: sig });
  await w.stop();
  await deps.close();
}

async function migrateCommand(config: Config): Promise<void> {
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

async function userCommand(
  config: Config,
  logger: Logger,
  args: string[],
): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== "create-admin") {
    throw new UsageError(`Unknown user command "${sub ?? ""}"\n${usage}`);
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
    password = btoa(
      String.fromCharCode(...crypto.getRandomValues(new Uint8Array(18))),
    );
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

class UsageError extends Error {}

async function main(args: string[]): Promise<number> {
  const [command = "serve", ...rest] = args;
  if (command === "--help" || command === "-h" || command === "help") {
    print(usage);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      printErr(err.message);
      return 2;
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  try {
    switch (command) {
      case "serve":
        await serve(config, logger);
        return 0;
      case "worker":
        await worker(config, logger);
        return 0;
      case "migrate":
        await migrateCommand(config);
        return 0;
      case "token": {
        if (rest.includes("--help")) {
          print(tokenUsage);
          return 0;
        }
        const { token, claims } = await mintOffline(rest, {
          configuredSecret: () => resolveSecret(config.secret, config.dataDir),
          readStdin: () => readAll(Deno.stdin.readable),
          now: Math.floor(Date.now() / 1000),
        });
        if (rest.includes("-v") || rest.includes("--verbose")) {
          printErr(JSON.stringify(claims, null, 2));
        }
        print(token);
        return 0;
      }
      case "push": {
        if (rest.includes("--help")) {
          print(pushUsage);
          return 0;
        }
        return await pushCommand(rest, loadClientEnv(), {
          out: print,
          err: printErr,
        });
      }
      case "push-bundle": {
        if (rest.includes("--help")) {
          print(pushBundleUsage);
          return 0;
        }
        return await pushBundleCommand(rest, loadClientEnv(), {
          out: print,
          err: printErr,
        });
      }
      case "builder":
        // The builder entrypoint of the runners (lib/cli/builder.ts): its task is in the env.
        return await builderCommand(Deno.env.toObject(), print);
      case "user":
        await userCommand(config, logger, rest);
        return 0;
      case "openapi": {
        const { openApiDocument } = await import("./lib/openapi_document.ts");
        print(JSON.stringify(await openApiDocument(config), null, 2));
        return 0;
      }
      default:
        printErr(`Unknown command "${command}"\n${usage}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      printErr(err.message);
      return 2;
    }
    if (
      err instanceof UsageError ||
      (err instanceof TypeError && "code" in err &&
        String(err.code).startsWith("ERR_PARSE_ARGS"))
    ) {
      printErr(err.message);
      return 2;
    }
    if (err instanceof Error && command === "token") {
      printErr(err.message);
      return 2;
    }
    if (
      err instanceof Error && (command === "push" || command === "push-bundle")
    ) {
      // A client command: the user needs the server's message, not a stack trace.
      printErr(`${command} failed: ${err.message}`);
      return 1;
    }
    logger.error("command failed", { command, ...errorFields(err, true) });
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
