/**
 * flat-manager's token endpoints over HTTP (specs/flat-manager-api.md §2.5–§2.7): the 401
 * messages, token_subset, get_list, revoke, revocation of subsets, usage tracking without a
 * write per request, and tokens signed with another secret or forged.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { dbTest } from "./support/db.ts";
import {
  defaultClaims,
  expectJson,
  TEST_SECRET,
  testApp,
} from "./support/app.ts";
import { verifyToken } from "../lib/tokens/jwt.ts";
import { signToken } from "../lib/tokens/jwt.ts";
import { createMemoryBus } from "../lib/bus/memory_bus.ts";

const fmError = (status: number, type: string, message: string) => ({
  status,
  "error-type": type,
  message,
});

dbTest(
  "flat-manager routes answer each malformed Authorization with its 401",
  async (db, t) => {
    const a = await testApp(db);
    try {
      const good = await a.token({ sub: "", scope: ["tokenmanagement"] });
      const cases: [string, Record<string, string>, string][] = [
        ["no header", {}, "No Authorization header"],
        ["too short", { Authorization: "Bearer" }, "Header length too short"],
        [
          "wrong scheme",
          { Authorization: `Basic ${btoa("u:p")}` },
          "Token scheme is not Bearer",
        ],
        [
          "lower-case scheme",
          { Authorization: `bearer ${good}` },
          "Token scheme is not Bearer",
        ],
        [
          "garbage token",
          { Authorization: "Bearer not-a-jwt" },
          "Invalid token claims",
        ],
        ["another secret", {
          Authorization: `Bearer ${await signToken(
            defaultClaims(),
            new TextEncoder().encode("other"),
          )}`,
        }, "Invalid token claims"],
        ["expired", {
          Authorization: `Bearer ${await a.token({
            sub: "",
            scope: ["tokenmanagement"],
            exp: 1000,
          })}`,
        }, "Token is expired"],
        ["HS384", {
          Authorization: `Bearer ${await new SignJWT({
            ...defaultClaims(),
            jti: "x",
          }).setProtectedHeader({ alg: "HS384" }).sign(TEST_SECRET)}`,
        }, "Invalid token claims"],
      ];
      for (const [what, headers, message] of cases) {
        await t.step(what, async () => {
          const res = await a.app.request("/api/v1/tokens/get_list", {
            method: "POST",
            headers: { ...headers, "Content-Type": "application/json" },
            body: JSON.stringify({ token_ids: [] }),
          });
          assert.equal(res.headers.get("content-type"), "application/json");
          assert.deepEqual(
            await expectJson(res, 401),
            fmError(401, "invalid-token", message),
          );
        });
      }
      await t.step("a forged payload keeps no rights", async () => {
        const [h, , s] = good.split(".");
        const claims = {
          ...defaultClaims(),
          sub: "",
          scope: ["tokenmanagement"],
          exp: 9_999_999_999,
        };
        const payload = btoa(JSON.stringify(claims)).replaceAll("=", "")
          .replaceAll("+", "-").replaceAll("/", "_");
        const res = await a.req("POST", "/api/v1/tokens/get_list", {
          token: `${h}.${payload}.${s}`,
          body: { token_ids: [] },
        });
        assert.deepEqual(
          await expectJson(res, 401),
          fmError(401, "invalid-token", "Invalid token claims"),
        );
      });
    } finally {
      await a.close();
    }
  },
);

dbTest('tokens/* needs sub "" and the tokenmanagement scope', async (db, t) => {
  const a = await testApp(db);
  try {
    const cases: [
      string,
      Record<string, unknown>,
      number,
      string | undefined,
    ][] = [
      [
        "sub build",
        { sub: "build", scope: ["tokenmanagement"] },
        403,
        "Not enough permissions: Not matching sub '' in token",
      ],
      [
        "no tokenmanagement",
        { sub: "", scope: ["build"] },
        403,
        "Not enough permissions: Not matching scope 'tokenmanagement' in token",
      ],
      ["right token", { sub: "", scope: ["tokenmanagement"] }, 200, undefined],
    ];
    for (const [what, over, status, message] of cases) {
      await t.step(what, async () => {
        const res = await a.req("POST", "/api/v1/tokens/get_list", {
          token: await a.token(over),
          body: { token_ids: [] },
        });
        const body = await expectJson(res, status);
        if (message) {
          assert.deepEqual(body, fmError(403, "token-insufficient", message));
        } else assert.deepEqual(body, []);
      });
    }
  } finally {
    await a.close();
  }
});

dbTest(
  "POST /api/v1/token_subset grants a narrower token and refuses a wider one",
  async (db) => {
    const a = await testApp(db);
    try {
      const parent = await a.token({
        name: "ci",
        jti: "parent-1",
        repos: ["stable"],
        prefixes: ["org.example"],
      });
      const res = await a.req("POST", "/api/v1/token_subset", {
        token: parent,
        body: {
          sub: "build/7",
          scope: ["upload"],
          duration: 600,
          name: "upload-only",
        },
      });
      assert.equal(res.headers.get("content-type"), "application/json");
      const { token } = await expectJson(res, 200);
      const claims = await verifyToken(
        token,
        TEST_SECRET,
        Math.floor(Date.now() / 1000),
      );
      assert.equal(claims.name, "ci/upload-only");
      assert.equal(claims.jti, "parent-1");
      assert.deepEqual(claims.scope, ["upload"]);
      assert.deepEqual(claims.repos, ["stable"]);
      assert.deepEqual(claims.prefixes, ["org.example"]);
      assert.equal(claims.sub, "build/7");

      for (
        const wider of [
          {
            sub: "build",
            scope: ["tokenmanagement"],
            duration: 600,
            name: "x",
          },
          {
            sub: "build",
            scope: ["upload"],
            duration: 600,
            name: "x",
            repos: [""],
          },
          {
            sub: "build",
            scope: ["upload"],
            duration: 600,
            name: "x",
            prefixes: ["org"],
          },
          { sub: "", scope: ["upload"], duration: 600, name: "x" },
          { sub: "build", scope: ["upload"], duration: 10 * 86400, name: "x" },
        ]
      ) {
        const r = await a.req("POST", "/api/v1/token_subset", {
          token: parent,
          body: wider,
        });
        assert.deepEqual(
          await expectJson(r, 403),
          fmError(
            403,
            "token-insufficient",
            "Not enough permissions: No token presented",
          ),
          JSON.stringify(wider),
        );
      }
      // A subset of a subset narrows again and chains the name.
      const r2 = await a.req("POST", "/api/v1/token_subset", {
        token,
        body: {
          sub: "build/7",
          scope: ["upload"],
          duration: 60,
          name: "again",
        },
      });
      const again = await verifyToken(
        (await expectJson(r2, 200)).token,
        TEST_SECRET,
        Math.floor(Date.now() / 1000),
      );
      assert.equal(again.name, "ci/upload-only/again");
      // A missing field is actix's plain-text 400, as flat-manager answers.
      const bad = await a.req("POST", "/api/v1/token_subset", {
        token: parent,
        body: { sub: "build" },
      });
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /^Json deserialize error/);
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "revoking a jti rejects it and every subset at once; get_list shows it",
  async (db) => {
    const a = await testApp(db);
    try {
      const admin = await a.token({
        sub: "",
        scope: ["tokenmanagement"],
        jti: "admin-1",
      });
      const parent = await a.token({ jti: "ci-7", name: "ci" });
      const child = (await expectJson(
        await a.req("POST", "/api/v1/token_subset", {
          token: parent,
          body: { sub: "build", scope: ["build"], duration: 60, name: "c" },
        }),
        200,
      )).token;
      // Used once each: the registry inserts unknown jtis with their expiry (§2.7).
      await a.req("POST", "/api/v1/token_subset", {
        token: child,
        body: { sub: "build", scope: [], duration: 1, name: "d" },
      });
      const res = await a.req("POST", "/api/v1/tokens/revoke", {
        token: admin,
        body: { token_ids: ["ci-7", "never-seen"] },
      });
      assert.equal(res.status, 204);
      assert.equal(await res.text(), "");
      for (const t of [parent, child]) {
        const r = await a.req("POST", "/api/v1/token_subset", {
          token: t,
          body: { sub: "build", scope: [], duration: 1, name: "x" },
        });
        assert.deepEqual(
          await expectJson(r, 401),
          fmError(401, "invalid-token", "Token has been revoked"),
        );
      }
      const list = await expectJson(
        await a.req("POST", "/api/v1/tokens/get_list", {
          token: admin,
          body: { token_ids: ["ci-7", "unknown", "never-seen"] },
        }),
        200,
      );
      assert.equal(
        list.length,
        2,
        "unknown ids are skipped; pre-revoked ids are listed",
      );
      assert.equal(list[0].token_id, "ci-7");
      assert.match(
        list[0].revoked_at,
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/,
        "NaiveDateTime, no zone",
      );
      assert.match(list[0].expires, /^\d{4}-/);
      assert.match(list[0].last_used, /^\d{4}-/);
      assert.equal(list[1].token_id, "never-seen");
      assert.equal(list[1].last_used, null);
      // Revocation keeps the first revoked_at.
      await a.req("POST", "/api/v1/tokens/revoke", {
        token: admin,
        body: { token_ids: ["ci-7"] },
      });
      const again = await expectJson(
        await a.req("POST", "/api/v1/tokens/get_list", {
          token: admin,
          body: { token_ids: ["ci-7"] },
        }),
        200,
      );
      assert.equal(again[0].revoked_at, list[0].revoked_at);
      const audit = await a.deps.audit.list({
        action: "token.revoke",
        objectId: "ci-7",
      });
      assert.equal(audit.length, 2);
      assert.equal(audit[0]!.actor, "token:default#admin-1");
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "revocation on one replica reaches another through the bus",
  async (db) => {
    const bus = createMemoryBus();
    // Two replicas: one database and one bus, each with its own registry and app.
    const a = await testApp(db, { bus });
    const b = await testApp(db, { bus });
    try {
      const token = await a.token({ jti: "shared-1" });
      const use = (x: typeof a) =>
        x.req("POST", "/api/v1/token_subset", {
          token,
          body: { sub: "build", scope: [], duration: 1, name: "x" },
        });
      assert.equal((await use(b)).status, 200);
      await a.deps.registry.revoke(["shared-1"]);
      assert.equal(
        (await use(a)).status,
        401,
        "effective at once on the revoking process",
      );
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(
        (await use(b)).status,
        401,
        "and on the other replica, with no database read",
      );
    } finally {
      await a.close();
      await b.close();
      await bus.close();
    }
  },
);

dbTest(
  "token usage is counted in memory and flushed in one batch",
  async (db) => {
    const a = await testApp(db);
    try {
      const token = await a.token({ jti: "busy-1" });
      for (let i = 0; i < 5; i++) {
        await a.req("POST", "/api/v1/token_subset", {
          token,
          body: { sub: "build", scope: [], duration: 1, name: "x" },
        });
      }
      assert.deepEqual(
        await db.query("SELECT * FROM tokens WHERE jti = 'busy-1'"),
        [],
        "no write per request",
      );
      await a.deps.registry.flush();
      const [row] = await db.query<
        { use_count: number; last_used: Date; expires: Date }
      >(
        "SELECT use_count, last_used, expires FROM tokens WHERE jti = 'busy-1'",
      );
      assert.equal(row?.use_count, 5);
      assert.ok(row.last_used instanceof Date);
      assert.ok(row.expires.getTime() > Date.now());
      await a.req("POST", "/api/v1/token_subset", {
        token,
        body: { sub: "build", scope: [], duration: 1, name: "x" },
      });
      await a.deps.registry.flush();
      const [row2] = await db.query<{ use_count: number }>(
        "SELECT use_count FROM tokens WHERE jti = 'busy-1'",
      );
      assert.equal(row2?.use_count, 6);
    } finally {
      await a.close();
    }
  },
);

dbTest("a configured token prefix is stripped", async (db) => {
  const a = await testApp(db, { env: { FLATYARD_TOKEN_PREFIX: "fm_" } });
  try {
    const token = await a.token();
    for (const t of [`fm_${token}`, token]) {
      const r = await a.req("POST", "/api/v1/token_subset", {
        token: t,
        body: { sub: "build", scope: [], duration: 1, name: "x" },
      });
      assert.equal(r.status, 200);
    }
  } finally {
    await a.close();
  }
});
