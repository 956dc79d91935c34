/**
 * @module The HTTP skeleton every route shares: health, readiness and metrics, request ids,
 * security headers, problem details for unknown paths and bad bodies, and the API docs page.
 */
import assert from "node:assert/strict";
import { dbTest, freshDb } from "./support/db.ts";
import { expectJson, TEST_PASSWORD, testApp } from "./support/app.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Reads a problem+json body and checks the status, with the body in the failure message. */
// deno-lint-ignore no-explicit-any -- tests read whatever shape they assert on
async function expectProblem(res: Response, status: number): Promise<any> {
  const text = await res.text();
  assert.equal(res.status, status, `Expected ${status}: ${text}`);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  return JSON.parse(text);
}

dbTest("GET /healthz answers 200 ok", async (db) => {
  const a = await testApp(db);
  try {
    const res = await a.req("GET", "/healthz");
    assert.deepEqual(await expectJson(res, 200), { status: "ok" });
  } finally {
    await a.close();
  }
});

dbTest(
  "GET /readyz answers 503 when the database is down",
  async (_db, _t, kind) => {
    // A database of our own: the one dbTest manages must stay open for its own cleanup.
    const fresh = await freshDb(kind);
    let open = true;
    const a = await testApp(fresh.db);
    try {
      const up = await a.req("GET", "/readyz");
      assert.deepEqual(await expectJson(up, 200), { status: "ok" });

      await fresh.close();
      open = false;
      const down = await a.req("GET", "/readyz");
      const body = await expectJson(down, 503);
      assert.equal(body.status, "unavailable");
      assert.equal(typeof body.reason, "string");
      // The reason is for operators; it must not leak driver or SQL details.
      assert.doesNotMatch(body.reason, /SELECT|ECONNREFUSED|postgres/i);
    } finally {
      await a.close();
      if (open) await fresh.close();
    }
  },
);

dbTest(
  "GET /metrics counts requests by route pattern and reports job gauges",
  async (db) => {
    const a = await testApp(db);
    try {
      const alice = await a.user("alice", "viewer");
      const session = await a.login("alice");
      await expectJson(
        await a.req("GET", `/api/v1/users/${alice.id}`, { token: session }),
        200,
      );
      await a.deps.queue.enqueue("metrics-probe", { n: 1 });

      const res = await a.req("GET", "/metrics");
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.match(
        res.headers.get("content-type") ?? "",
        /^text\/plain; version=0\.0\.4\b/,
      );
      const lines = text.split("\n");
      assert.ok(
        lines.includes(
          'flatyard_http_requests_total{method="GET",route="/api/v1/users/:id",status="200"} 1',
        ),
        `No request counter for GET /api/v1/users/:id in:\n${text}`,
      );
      assert.ok(
        lines.includes(
          'flatyard_http_requests_total{method="POST",route="/api/v1/auth/login",status="200"} 1',
        ),
        `No request counter for POST /api/v1/auth/login in:\n${text}`,
      );
      // The raw path would give one series per user id.
      assert.ok(
        !text.includes(`route="/api/v1/users/${alice.id}"`),
        `Metrics use the raw path:\n${text}`,
      );
      assert.ok(
        lines.includes("# TYPE flatyard_jobs gauge"),
        `No flatyard_jobs gauge in:\n${text}`,
      );
      assert.ok(
        lines.includes('flatyard_jobs{kind="metrics-probe",status="queued"} 1'),
        `No flatyard_jobs sample for the queued job in:\n${text}`,
      );
    } finally {
      await a.close();
    }
  },
);

dbTest("every response carries a generated X-Request-Id", async (db, t) => {
  const a = await testApp(db);
  try {
    const cases: [string, string, string, number][] = [
      ["a 200", "GET", "/healthz", 200],
      ["a 404", "GET", "/no/such/path", 404],
      ["a 401", "GET", "/api/v1/auth/me", 401],
    ];
    const seen = new Set<string>();
    for (const [what, method, path, status] of cases) {
      await t.step(what, async () => {
        const res = await a.req(method, path);
        await res.body?.cancel();
        assert.equal(res.status, status);
        const id = res.headers.get("x-request-id") ?? "";
        assert.match(id, UUID);
        assert.ok(!seen.has(id), `Request id ${id} was reused`);
        seen.add(id);
      });
    }
  } finally {
    await a.close();
  }
});

dbTest(
  "an incoming X-Request-Id is echoed and named in problem bodies",
  async (db, t) => {
    const a = await testApp(db);
    try {
      await t.step("a valid id is kept", async () => {
        const res = await a.req("GET", "/no/such/path", {
          headers: { "X-Request-Id": "trace-42_abc=" },
        });
        assert.equal(res.headers.get("x-request-id"), "trace-42_abc=");
        const body = await expectProblem(res, 404);
        assert.equal(body.requestId, "trace-42_abc=");
      });
      // Ids end up in log lines; anything outside [\w-=] or too long is replaced.
      const invalid: [string, string][] = [
        ["with spaces and quotes", 'a b"c'],
        ["too long", "x".repeat(256)],
      ];
      for (const [what, sent] of invalid) {
        await t.step(`an id ${what} is replaced`, async () => {
          const res = await a.req("GET", "/no/such/path", {
            headers: { "X-Request-Id": sent },
          });
          const id = res.headers.get("x-request-id") ?? "";
          assert.match(id, UUID);
          assert.equal((await expectProblem(res, 404)).requestId, id);
        });
      }
    } finally {
      await a.close();
    }
  },
);

dbTest("responses carry the security headers", async (db, t) => {
  const a = await testApp(db);
  try {
    const cases: [string, string][] = [
      ["JSON", "/healthz"],
      ["a problem", "/no/such/path"],
      ["the docs page", "/api/docs"],
    ];
    for (const [what, path] of cases) {
      await t.step(what, async () => {
        const res = await a.req("GET", path);
        await res.body?.cancel();
        const csp = res.headers.get("content-security-policy") ?? "";
        assert.match(csp, /default-src 'self'/);
        assert.match(csp, /frame-ancestors 'none'/);
        // Swagger UI would break (and a script injection would run) with inline scripts allowed.
        assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/);
        assert.equal(res.headers.get("x-content-type-options"), "nosniff");
        assert.match(
          res.headers.get("x-frame-options") ?? "",
          /^(DENY|SAMEORIGIN)$/,
        );
        assert.equal(res.headers.get("referrer-policy"), "no-referrer");
      });
    }
  } finally {
    await a.close();
  }
});

dbTest("an unknown path answers 404 problem details", async (db) => {
  const a = await testApp(db);
  try {
    const body = await expectProblem(
      await a.req("GET", "/api/v1/nothing-here"),
      404,
    );
    assert.equal(body.type, "about:blank");
    assert.equal(body.title, "Not found");
    assert.equal(body.status, 404);
    assert.match(body.detail, /\/api\/v1\/nothing-here/);
    assert.equal(body.instance, "/api/v1/nothing-here");
  } finally {
    await a.close();
  }
});

dbTest(
  "POST /api/v1/auth/login answers malformed JSON with 400, never 500",
  async (db, t) => {
    const a = await testApp(db);
    try {
      const bodies: [string, string][] = [
        ["an unterminated object", "{bad"],
        ["an empty body", ""],
        ["a truncated string", '{"username": "ali'],
      ];
      for (const [what, raw] of bodies) {
        await t.step(what, async () => {
          const res = await a.req("POST", "/api/v1/auth/login", {
            body: raw,
            headers: { "Content-Type": "application/json" },
          });
          const body = await expectProblem(res, 400);
          assert.equal(body.title, "Bad request");
          assert.equal(body.instance, "/api/v1/auth/login");
          assert.equal(typeof body.requestId, "string");
        });
      }
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "POST /api/v1/auth/login answers an unknown field with 422 naming it",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("carol", "viewer");
      const res = await a.req("POST", "/api/v1/auth/login", {
        body: { username: "carol", password: TEST_PASSWORD, isAdmin: true },
      });
      const body = await expectProblem(res, 422);
      assert.ok(Array.isArray(body.errors), JSON.stringify(body));
      assert.ok(
        body.errors.some((e: { path: string; message: string }) =>
          `${e.path} ${e.message}`.includes("isAdmin")
        ),
        `No error names "isAdmin": ${JSON.stringify(body.errors)}`,
      );
      // Refused before any session was made.
      assert.equal(res.headers.get("set-cookie"), null);
    } finally {
      await a.close();
    }
  },
);

dbTest("GET /api/docs serves Swagger UI from local assets", async (db, t) => {
  const a = await testApp(db);
  try {
    const page = await a.req("GET", "/api/docs");
    const html = await page.text();
    assert.equal(page.status, 200, html);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    for (const ref of ["swagger-ui-bundle.js", "swagger-ui.css", "init.js"]) {
      assert.ok(html.includes(`/api/docs/${ref}`), `Page lacks ${ref}`);
    }

    const assets: [string, RegExp][] = [
      ["swagger-ui-bundle.js", /^text\/javascript/],
      ["swagger-ui.css", /^text\/css/],
      ["init.js", /^text\/javascript/],
    ];
    for (const [asset, type] of assets) {
      await t.step(`/api/docs/${asset}`, async () => {
        const res = await a.req("GET", `/api/docs/${asset}`);
        const text = await res.text();
        assert.equal(res.status, 200, text);
        assert.match(res.headers.get("content-type") ?? "", type);
        assert.ok(text.length > 0);
      });
    }
    await t.step("init.js points at the OpenAPI document", async () => {
      const res = await a.req("GET", "/api/docs/init.js");
      assert.match(await res.text(), /"\/api\/v1\/openapi\.json"/);
    });
  } finally {
    await a.close();
  }
});

dbTest("GET /api/docs/:asset never serves other files", async (db, t) => {
  const a = await testApp(db);
  try {
    const paths = [
      "/api/docs/../deno.json",
      "/api/docs/%2e%2e%2fdeno.json",
      "/api/docs/%2e%2e%2f%2e%2e%2fdeno.json",
      "/api/docs/..%2f..%2fdeno.json",
      "/api/docs/package.json",
      "/api/docs/index.html",
      "/api/docs/swagger-initializer.js",
    ];
    for (const path of paths) {
      await t.step(path, async () => {
        const res = await a.req("GET", path);
        const text = await res.text();
        assert.equal(res.status, 404, `${path} answered ${res.status}`);
        assert.equal(
          res.headers.get("content-type"),
          "application/problem+json",
        );
        assert.doesNotMatch(text, /"imports"|"version"|"dependencies"/);
      });
    }
  } finally {
    await a.close();
  }
});
