/** @module `parseConfig`: defaults, decoding, and every bad variable named at once. */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "./config.ts";

/** Parses `env`, which must fail with a ConfigError, and returns its problems. */
function problemsOf(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `Not a ConfigError: ${err}`);
    return err.problems;
  }
  assert.fail(`parseConfig accepted ${JSON.stringify(env)}`);
}

Deno.test("parseConfig uses the documented defaults for an empty env", () => {
  const c = parseConfig({});
  assert.equal(c.dataDir, "./data");
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.port, 8080);
  assert.equal(c.baseUrl, "http://127.0.0.1:8080");
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.redisUrl, undefined);
  assert.equal(c.runner, "local");
  assert.equal(c.runWorker, true);
  assert.equal(c.secret, undefined);
  assert.equal(c.repoSecret, undefined);
  assert.equal(c.trustProxy, false);
  assert.equal(c.logLevel, "info");
});

Deno.test("parseConfig decodes FLATYARD_SECRET from base64", () => {
  const c = parseConfig({
    FLATYARD_SECRET: "c2VjcmV0",
    FLATYARD_REPO_SECRET: "cmVwbw==",
  });
  assert.equal(new TextDecoder().decode(c.secret), "secret");
  assert.equal(new TextDecoder().decode(c.repoSecret), "repo");
});

Deno.test("parseConfig names every invalid variable at once", () => {
  const bad = {
    FLATYARD_PORT: "abc",
    DATABASE_URL: "mysql://x",
    FLATYARD_SECRET: "not base64!",
    FLATYARD_LOG_LEVEL: "loud",
    FLATYARD_RUN_WORKER: "maybe",
  };
  const problems = problemsOf(bad);
  for (const name of Object.keys(bad)) {
    assert.ok(
      problems.some((p) => p.startsWith(`${name}:`)),
      `No problem names ${name}: ${JSON.stringify(problems)}`,
    );
  }
  assert.equal(problems.length, Object.keys(bad).length, problems.join("\n"));
});

Deno.test("parseConfig rejects out-of-range and malformed values", async (t) => {
  const cases: [string, Record<string, string>, string][] = [
    ["a port above 65535", { FLATYARD_PORT: "65536" }, "FLATYARD_PORT"],
    ["a fractional port", { FLATYARD_PORT: "80.5" }, "FLATYARD_PORT"],
    ["an http Redis URL", { REDIS_URL: "http://r" }, "REDIS_URL"],
    ["a base URL that is no URL", {
      FLATYARD_BASE_URL: "flatyard",
    }, "FLATYARD_BASE_URL"],
    ["unpadded base64", { FLATYARD_SECRET: "c2VjcmV" }, "FLATYARD_SECRET"],
    ["zero worker concurrency", {
      FLATYARD_WORKER_CONCURRENCY: "0",
    }, "FLATYARD_WORKER_CONCURRENCY"],
  ];
  for (const [what, env, name] of cases) {
    await t.step(what, () => {
      const problems = problemsOf(env);
      assert.ok(
        problems.some((p) => p.startsWith(`${name}:`)),
        JSON.stringify(problems),
      );
    });
  }
});

Deno.test("parseConfig treats empty optional URLs and secrets as unset", () => {
  const c = parseConfig({
    DATABASE_URL: "",
    REDIS_URL: "",
    FLATYARD_BASE_URL: "",
    FLATYARD_SECRET: "",
  });
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.redisUrl, undefined);
  assert.equal(c.secret, undefined);
  assert.equal(c.baseUrl, "http://127.0.0.1:8080");
});

Deno.test("parseConfig keeps valid server URLs", () => {
  const c = parseConfig({
    DATABASE_URL: "postgresql://u:p@db:5432/flatyard",
    REDIS_URL: "rediss://cache:6380",
  });
  assert.equal(c.databaseUrl, "postgresql://u:p@db:5432/flatyard");
  assert.equal(c.redisUrl, "rediss://cache:6380");
});

Deno.test("parseConfig trims trailing slashes from FLATYARD_BASE_URL", async (t) => {
  const cases: [string, string][] = [
    ["https://flatyard.example.org/", "https://flatyard.example.org"],
    ["https://example.org/flatyard//", "https://example.org/flatyard"],
    ["https://example.org/flatyard", "https://example.org/flatyard"],
  ];
  for (const [given, expected] of cases) {
    await t.step(given, () => {
      assert.equal(parseConfig({ FLATYARD_BASE_URL: given }).baseUrl, expected);
    });
  }
});

Deno.test("parseConfig derives the base URL from host and port", async (t) => {
  const cases: [string, Record<string, string>, string][] = [
    [
      "IPv4",
      { FLATYARD_HOST: "0.0.0.0", FLATYARD_PORT: "9000" },
      "http://0.0.0.0:9000",
    ],
    ["IPv6 any", { FLATYARD_HOST: "::" }, "http://[::]:8080"],
    [
      "IPv6 loopback",
      { FLATYARD_HOST: "::1", FLATYARD_PORT: "81" },
      "http://[::1]:81",
    ],
    ["a name", { FLATYARD_HOST: "localhost" }, "http://localhost:8080"],
  ];
  for (const [what, env, expected] of cases) {
    await t.step(what, () => {
      const c = parseConfig(env);
      assert.equal(c.baseUrl, expected);
      // Whatever the host, the derived base URL must be a URL (it seeds the CSRF origin check).
      assert.equal(new URL(c.baseUrl).origin, expected);
    });
  }
});

Deno.test("parseConfig treats blank numbers as unset and refuses non-decimal ones", () => {
  assert.equal(parseConfig({ FLATYARD_PORT: "" }).port, 8080);
  assert.equal(parseConfig({ FLATYARD_PORT: "  " }).port, 8080);
  for (const bad of ["0x50", "1e3", "-1", "80.5"]) {
    assert.throws(() => parseConfig({ FLATYARD_PORT: bad }), ConfigError, bad);
  }
});

Deno.test("parseConfig accepts only an http(s) FLATYARD_BASE_URL without query or fragment", async (t) => {
  for (
    const url of [
      "ftp://flatyard.test",
      "javascript:alert(1)",
      "https://x.test/?q=1",
      "https://x.test/#f",
    ]
  ) {
    await t.step(url, () => {
      assert.throws(() => parseConfig({ FLATYARD_BASE_URL: url }), ConfigError);
    });
  }
  assert.equal(
    parseConfig({ FLATYARD_BASE_URL: "https://x.test/flatyard/" }).baseUrl,
    "https://x.test/flatyard",
  );
  assert.equal(
    parseConfig({ FLATYARD_HOST: "[::1]" }).baseUrl,
    "http://[::1]:8080",
  );
});

Deno.test("FLATYARD_CDN_SECRET_<NAME> variables become CDN purge secrets by NAME", () => {
  const c = parseConfig({
    FLATYARD_CDN_SECRET_FASTLY: "tok",
    FLATYARD_CDN_SECRET_EMPTY: "",
    FLATYARD_CDN_PURGE_ATTEMPTS: "2",
    FLATYARD_SECRET_OTHER: "no",
  });
  assert.deepEqual(c.cdnPurge.secrets, { FASTLY: "tok" });
  assert.equal(c.cdnPurge.attempts, 2);
});

Deno.test("FLATYARD_CDN_HOSTS is a comma-separated list of hosts and *.domains", () => {
  assert.equal(parseConfig({}).cdnPurge.hosts, undefined);
  assert.deepEqual(
    parseConfig({ FLATYARD_CDN_HOSTS: " CDN.example, *.fastly.net ,," })
      .cdnPurge.hosts,
    ["cdn.example", "*.fastly.net"],
  );
  assert.match(
    problemsOf({ FLATYARD_CDN_HOSTS: "cdn.example, http://x/" }).join("\n"),
    /FLATYARD_CDN_HOSTS/,
  );
});
