/**
 * @module The API contract (CONVENTIONS.md rule 6): the generated OpenAPI document is valid
 * OpenAPI 3.1 by a real validator, declares how to authenticate, and matches the reviewed
 * snapshot in `tests/snapshots/openapi.json`.
 */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { parseConfig } from "../lib/config.ts";
import { openApiDocument } from "../lib/openapi_document.ts";
import { dbTest } from "./support/db.ts";
import { expectJson, testApp } from "./support/app.ts";

// A fixed base URL keeps `servers` (and so the snapshot) independent of host and port.
const BASE_URL = "http://flatyard.test";
const SNAPSHOT = new URL("./snapshots/openapi.json", import.meta.url);

/** Operations under /api/v1 that are reachable without credentials, by design. */
const PUBLIC_OPERATIONS = new Set([
  "POST /api/v1/auth/login",
  "GET /api/v1/openapi.json",
]);

const HTTP_METHODS = [
  "get",
  "put",
  "post",
  "delete",
  "options",
  "head",
  "patch",
  "trace",
];

type Operation = { security?: Record<string, string[]>[] };
type OpenApi = {
  openapi: string;
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, Record<string, string>> };
};

function document(): Promise<Record<string, unknown>> {
  return openApiDocument(parseConfig({ FLATYARD_BASE_URL: BASE_URL }));
}

function operations(doc: OpenApi): { id: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, op]) => ({ id: `${method.toUpperCase()} ${path}`, op }))
  );
}

Deno.test("the OpenAPI document is valid OpenAPI 3.1", async () => {
  const doc = await document();
  const validator = new Validator();
  const result = await validator.validate(doc);
  assert.equal(
    validator.version,
    "3.1",
    `Validator detected OpenAPI ${validator.version}, expected 3.1`,
  );
  assert.ok(
    result.valid,
    `The OpenAPI document is invalid:\n${
      JSON.stringify(result.errors, null, 2)
    }`,
  );
});

Deno.test("the OpenAPI document declares bearer and session cookie schemes", async () => {
  const doc = await document() as OpenApi;
  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(doc.servers, [{ url: BASE_URL }]);
  const schemes = doc.components?.securitySchemes ?? {};
  assert.equal(schemes["bearer"]?.["type"], "http");
  assert.equal(schemes["bearer"]?.["scheme"], "bearer");
  assert.equal(schemes["session"]?.["type"], "apiKey");
  assert.equal(schemes["session"]?.["in"], "cookie");
  assert.equal(schemes["session"]?.["name"], "flatyard_session");
});

Deno.test("every /api/v1 operation but login and the document declares security", async () => {
  const doc = await document() as OpenApi;
  const schemes = Object.keys(doc.components?.securitySchemes ?? {});
  const api = operations(doc).filter(({ id }) =>
    id.split(" ")[1]!.startsWith("/api/v1/")
  );
  // Guards against the filter above silently matching nothing.
  assert.ok(api.length >= 10, `Only ${api.length} /api/v1 operations found`);
  const unsecured = api
    .filter(({ id }) => !PUBLIC_OPERATIONS.has(id))
    // `security: []` explicitly opts an operation out, so it counts as missing.
    .filter(({ op }) => !op.security || op.security.length === 0)
    .map(({ id }) => id);
  assert.deepEqual(unsecured, [], "Operations without `security`");
  const unknownSchemes = api.flatMap(({ id, op }) =>
    (op.security ?? []).flatMap((req) =>
      Object.keys(req).filter((s) => !schemes.includes(s)).map((s) =>
        `${id}: ${s}`
      )
    )
  );
  assert.deepEqual(unknownSchemes, [], "Security requirements name no scheme");
});

Deno.test("the OpenAPI document matches tests/snapshots/openapi.json", async () => {
  const actual = JSON.stringify(await document(), null, 2) + "\n";
  if (Deno.env.get("UPDATE_SNAPSHOTS") === "1") {
    await Deno.mkdir(new URL(".", SNAPSHOT), { recursive: true });
    await Deno.writeTextFile(SNAPSHOT, actual);
    return;
  }
  let expected: string;
  try {
    expected = await Deno.readTextFile(SNAPSHOT);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new Error(
      "tests/snapshots/openapi.json is missing: run " +
        "`UPDATE_SNAPSHOTS=1 deno test -A tests/openapi_test.ts` and commit it",
    );
  }
  assert.equal(
    actual,
    expected,
    "The API contract changed. Review the diff; if the change is intended, run " +
      "`UPDATE_SNAPSHOTS=1 deno test -A tests/openapi_test.ts` and commit " +
      "tests/snapshots/openapi.json with it.",
  );
});

dbTest(
  "GET /api/v1/openapi.json serves the same document the CLI renders",
  async (db) => {
    const a = await testApp(db, { env: { FLATYARD_BASE_URL: BASE_URL } });
    try {
      const served = await expectJson(
        await a.req("GET", "/api/v1/openapi.json"),
        200,
      );
      assert.deepEqual(served, await document());
    } finally {
      await a.close();
    }
  },
);
