/**
 * @module The OpenAPI document without a running server or database (for `flatyard openapi`
 * and the contract snapshot test): the app is built on deps that answer no queries.
 */
import { createApp } from "./app.ts";
import { createMemoryBus } from "./bus/memory_bus.ts";
import type { Config } from "./config.ts";
import type { Db } from "./db/db.ts";
import { assembleDeps } from "./deps.ts";
import { silentLogger } from "./logger.ts";

const noDatabase = () =>
  Promise.reject(
    new Error("No database: this app only renders its OpenAPI document"),
  );
const offlineDb: Db = {
  kind: "pglite",
  query: noDatabase,
  exec: noDatabase,
  transaction: noDatabase,
  close: () => Promise.resolve(),
};

/** The OpenAPI 3.1 document `GET /api/v1/openapi.json` serves. */
export async function openApiDocument(
  config: Config,
): Promise<Record<string, unknown>> {
  const deps = await assembleDeps(config, {
    db: offlineDb,
    bus: createMemoryBus(),
    logger: silentLogger,
    secret: new Uint8Array(32),
    masterKey: new Uint8Array(32),
  });
  const res = await createApp(deps).request("/api/v1/openapi.json");
  return await res.json();
}
