/**
 * @module Flatyard's entry point: parses the config, builds the deps and starts what the
 * subcommand asks for (CONVENTIONS.md rule 1). `serve` (the default) runs the API, the file
 * server and a worker in one process.
 */
import { print, printErr } from "./lib/cli/output.ts";
import { UsageError } from "./lib/cli/usage_error.ts";
import { ConfigError, loadClientEnv, loadConfig } from "./lib/config.ts";
import type { Config } from "./lib/config.ts";
import { createLogger, errorFields } from "./lib/logger.ts";

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
        await (await import("./lib/cli/server.ts")).serve(config, logger);
        return 0;
      case "worker":
        await (await import("./lib/cli/server.ts")).worker(config, logger);
        return 0;
      case "migrate":
        await (await import("./lib/cli/server.ts")).migrateCommand(config);
        return 0;
      case "token": {
        const { mintOffline, tokenUsage } = await import("./lib/cli/token.ts");
        const { resolveSecret } = await import("./lib/secret.ts");
        if (rest.includes("--help")) {
          print(tokenUsage);
          return 0;
        }
        const { token, claims } = await mintOffline(rest, {
          configuredSecret: () => resolveSecret(config.secret, config.dataDir),
          readStdin: () => new Response(Deno.stdin.readable).text(),
          now: Math.floor(Date.now() / 1000),
        });
        if (rest.includes("-v") || rest.includes("--verbose")) {
          printErr(JSON.stringify(claims, null, 2));
        }
        print(token);
        return 0;
      }
      case "push": {
        const { pushCommand, pushUsage } = await import("./lib/cli/push.ts");
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
        const { pushBundleCommand, pushBundleUsage } = await import(
          "./lib/cli/push_bundle.ts"
        );
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
        return await (await import("./lib/cli/builder.ts")).builderCommand(
          Deno.env.toObject(),
          print,
        );
      case "user":
        await (await import("./lib/cli/server.ts")).userCommand(
          config,
          logger,
          rest,
        );
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
