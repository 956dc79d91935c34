/**
 * Login sessions and a user's own tokens: login, cookie and bearer sessions, CSRF, logout,
 * password change, rate limiting, and minting tokens only within one's roles.
 */
import assert from "node:assert/strict";
import { dbTest } from "./support/db.ts";
import {
  expectJson,
  TEST_PASSWORD,
  TEST_SECRET,
  testApp,
} from "./support/app.ts";
import { verifyToken } from "../lib/tokens/jwt.ts";

dbTest(
  "POST /api/v1/auth/login returns a session usable as bearer and as cookie",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("alice", "maintainer", { stable: "admin" });
      const res = await a.req("POST", "/api/v1/auth/login", {
        body: { username: "Alice", password: TEST_PASSWORD },
      });
      const body = await expectJson(res, 200);
      assert.match(body.session, /^fys_[A-Za-z0-9_-]{43}$/);
      assert.equal(body.user.username, "alice");
      assert.deepEqual(body.user.repoRoles, { stable: "admin" });
      assert.equal("passwordHash" in body.user, false);
      const cookie = res.headers.get("set-cookie")!;
      assert.match(cookie, /^flatyard_session=fys_/);
      assert.match(cookie, /HttpOnly/);
      assert.match(cookie, /SameSite=Lax/);

      const bearer = await expectJson(
        await a.req("GET", "/api/v1/auth/me", { token: body.session }),
        200,
      );
      assert.deepEqual([bearer.kind, bearer.user.username, bearer.user.role], [
        "user",
        "alice",
        "maintainer",
      ]);
      const viaCookie = await a.req("GET", "/api/v1/auth/me", {
        headers: { Cookie: cookie.split(";")[0]! },
      });
      assert.equal((await expectJson(viaCookie, 200)).user.username, "alice");

      const audit = await a.deps.audit.list({ action: "session.create" });
      assert.equal(audit[0]?.actor, "user:alice");
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "login refuses wrong passwords, unknown and disabled users alike",
  async (db, t) => {
    const a = await testApp(db);
    try {
      const bob = await a.user("bob", "viewer");
      await a.deps.users.update(bob.id, { disabled: true });
      await a.user("carol", "viewer");
      const cases: [string, Record<string, unknown>, number][] = [
        [
          "wrong password",
          { username: "carol", password: "nope-nope-nope" },
          401,
        ],
        ["unknown user", { username: "nobody", password: TEST_PASSWORD }, 401],
        ["disabled user", { username: "bob", password: TEST_PASSWORD }, 401],
        ["missing password", { username: "carol" }, 422],
        ["unknown field", {
          username: "carol",
          password: TEST_PASSWORD,
          admin: true,
        }, 422],
      ];
      for (const [what, body, status] of cases) {
        await t.step(what, async () => {
          const res = await a.req("POST", "/api/v1/auth/login", { body });
          assert.equal(
            res.headers.get("content-type"),
            "application/problem+json",
          );
          const p = await expectJson(res, status);
          assert.equal(p.status, status);
          if (status === 401) {
            assert.equal(
              p.detail,
              "Wrong username or password, or the account is disabled",
            );
          }
          assert.equal(res.headers.get("set-cookie"), null);
        });
      }
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "repeated failed logins are slowed down with 429 and Retry-After",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("dave", "viewer");
      for (let i = 0; i < 10; i++) {
        const r = await a.req("POST", "/api/v1/auth/login", {
          body: { username: "dave", password: "wrong-password-x" },
        });
        assert.equal(r.status, 401);
      }
      const blocked = await a.req("POST", "/api/v1/auth/login", {
        body: { username: "dave", password: TEST_PASSWORD },
      });
      assert.equal(blocked.status, 429);
      assert.ok(Number(blocked.headers.get("retry-after")) > 0);
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "a cookie session refuses cross-origin writes (CSRF) but bearer is unaffected",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("erin", "admin");
      const session = await a.login("erin");
      const cookie = `flatyard_session=${session}`;
      const body = {
        username: "newbie",
        password: TEST_PASSWORD,
        role: "viewer",
      };
      const evil = await a.req("POST", "/api/v1/users", {
        body,
        headers: { Cookie: cookie, Origin: "https://evil.example" },
      });
      assert.equal(evil.status, 403);
      assert.match(
        (await evil.json()).detail,
        /Cross-origin request from "https:\/\/evil.example" refused/,
      );
      assert.equal(
        await a.deps.users.getByUsername("newbie"),
        undefined,
        "nothing was created",
      );
      const opaque = await a.req("POST", "/api/v1/users", {
        body,
        headers: { Cookie: cookie, Origin: "null" },
      });
      assert.equal(opaque.status, 403, "an opaque origin is never trusted");
      const same = await a.req("POST", "/api/v1/users", {
        body,
        headers: { Cookie: cookie, Origin: "http://127.0.0.1:8080" },
      });
      assert.equal(same.status, 201);
      const bearer = await a.req("POST", "/api/v1/users", {
        token: session,
        body: { ...body, username: "newbie2" },
        headers: { Origin: "https://anything.example" },
      });
      assert.equal(bearer.status, 201);
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "logout ends the session; an unknown or expired session is refused",
  async (db) => {
    let now = new Date("2026-01-01T00:00:00Z");
    const a = await testApp(db, { clock: { now: () => now } });
    try {
      await a.user("frank", "viewer");
      const s1 = await a.login("frank");
      const s2 = await a.login("frank");
      assert.equal(
        (await a.req("POST", "/api/v1/auth/logout", { token: s1 })).status,
        204,
      );
      const gone = await a.req("GET", "/api/v1/auth/me", { token: s1 });
      assert.equal(
        (await expectJson(gone, 401)).detail,
        "Session is invalid or has expired",
      );
      assert.equal(
        (await a.req("GET", "/api/v1/auth/me", { token: s2 })).status,
        200,
        "other session lives",
      );
      assert.equal(
        (await a.req("GET", "/api/v1/auth/me", { token: "fys_forged" })).status,
        401,
      );
      now = new Date(now.getTime() + 13 * 3600_000); // sessions last 12 h by default
      assert.equal(
        (await a.req("GET", "/api/v1/auth/me", { token: s2 })).status,
        401,
      );
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "PUT /api/v1/auth/password needs the current password and ends every session",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("gina", "viewer");
      const s = await a.login("gina");
      const other = await a.login("gina");
      const wrong = await a.req("PUT", "/api/v1/auth/password", {
        token: s,
        body: { currentPassword: "nope", newPassword: "a brand new password" },
      });
      assert.equal(wrong.status, 403);
      const short = await a.req("PUT", "/api/v1/auth/password", {
        token: s,
        body: { currentPassword: TEST_PASSWORD, newPassword: "short" },
      });
      assert.equal(short.status, 422);
      const ok = await a.req("PUT", "/api/v1/auth/password", {
        token: s,
        body: {
          currentPassword: TEST_PASSWORD,
          newPassword: "a brand new password",
        },
      });
      assert.equal(ok.status, 204);
      assert.equal(
        (await a.req("GET", "/api/v1/auth/me", { token: other })).status,
        401,
      );
      await assert.rejects(a.login("gina"));
      await a.login("gina", "a brand new password");
    } finally {
      await a.close();
    }
  },
);

dbTest("GET /api/v1/auth/me describes a token principal", async (db) => {
  const a = await testApp(db);
  try {
    const me = await expectJson(
      await a.req("GET", "/api/v1/auth/me", {
        token: await a.token({ name: "ci", repos: ["stable"] }),
      }),
      200,
    );
    assert.equal(me.kind, "token");
    assert.equal(me.token.name, "ci");
    assert.deepEqual(me.token.repos, ["stable"]);
    const expired = await a.req("GET", "/api/v1/auth/me", {
      token: await a.token({ exp: 1 }),
    });
    assert.deepEqual(
      [
        expired.status,
        (await expired.json()).detail,
        expired.headers.get("content-type"),
      ],
      [401, "Token is expired", "application/problem+json"],
    );
  } finally {
    await a.close();
  }
});

dbTest(
  "POST /api/v1/auth/tokens mints within the user's roles and refuses wider tokens",
  async (db, t) => {
    const a = await testApp(db);
    try {
      await a.user("viewer1", "viewer", { beta: "write" });
      await a.user("maint1", "maintainer", { stable: "admin" });
      await a.user("admin1", "admin");
      const sessions = {
        viewer1: await a.login("viewer1"),
        maint1: await a.login("maint1"),
        admin1: await a.login("admin1"),
      };
      const cases: [
        keyof typeof sessions,
        Record<string, unknown>,
        number,
        RegExp?,
      ][] = [
        ["viewer1", { scope: ["download"], repos: [""] }, 201],
        ["viewer1", { scope: ["build", "upload"], repos: ["beta"] }, 201],
        [
          "viewer1",
          { scope: ["build"], repos: ["stable"] },
          403,
          /Scope "build" on repository "stable" needs the role "write"/,
        ],
        [
          "viewer1",
          { scope: ["upload"], repos: [""] },
          403,
          /on all repositories needs a global role that includes "write"/,
        ],
        [
          "viewer1",
          { scope: ["tokenmanagement"], repos: ["beta"] },
          403,
          /needs the global role "admin"/,
        ],
        ["maint1", {
          scope: ["build", "upload", "publish", "jobs"],
          repos: [""],
        }, 201],
        [
          "maint1",
          { scope: ["admin"], repos: [""] },
          403,
          /Scope "admin" needs the global role "admin"/,
        ],
        [
          "maint1",
          { scope: ["tokenmanagement"], repos: [""], sub: "" },
          403,
          /needs the global role "admin"/,
        ],
        ["admin1", {
          scope: ["admin", "tokenmanagement"],
          repos: [""],
          sub: "",
        }, 201],
        ["viewer1", { scope: ["frobnicate"], repos: ["beta"] }, 422],
        ["viewer1", {
          scope: ["download"],
          repos: ["beta"],
          expiresInDays: 100_000,
        }, 422],
        ["viewer1", { scope: ["download"], repos: ["../x"] }, 422],
        ["viewer1", { scope: ["download"], repos: ["", "beta"] }, 422],
      ];
      for (const [who, over, status, message] of cases) {
        await t.step(
          `${who} asks for ${JSON.stringify(over)} → ${status}`,
          async () => {
            const res = await a.req("POST", "/api/v1/auth/tokens", {
              token: sessions[who],
              body: { name: "t", ...over },
            });
            const body = await expectJson(res, status);
            if (message) assert.match(body.detail, message);
            if (status === 201) {
              const claims = await verifyToken(
                body.token,
                TEST_SECRET,
                Math.floor(Date.now() / 1000),
              );
              assert.equal(claims.jti, body.jti);
              assert.equal(claims.name, `${who}/t`);
              assert.deepEqual(claims.scope, over.scope);
            }
          },
        );
      }
      await t.step(
        "a token cannot mint here; it uses token_subset",
        async () => {
          const res = await a.req("POST", "/api/v1/auth/tokens", {
            token: await a.token({ scope: ["admin"] }),
            body: { name: "x", scope: ["download"], repos: [""] },
          });
          assert.equal(res.status, 403);
        },
      );
      await t.step(
        "GET lists one's own tokens without their values",
        async () => {
          const list = await expectJson(
            await a.req("GET", "/api/v1/auth/tokens", {
              token: sessions.maint1,
            }),
            200,
          );
          assert.equal(list.length, 1);
          assert.equal(list[0].name, "maint1/t");
          assert.equal("token" in list[0], false);
        },
      );
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "a minted token works, is tracked, and its owner can revoke it",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("hank", "maintainer");
      await a.user("ivy", "maintainer");
      const s = await a.login("hank");
      const minted = await expectJson(
        await a.req("POST", "/api/v1/auth/tokens", {
          token: s,
          body: { name: "ci", scope: ["build"], repos: [""] },
        }),
        201,
      );
      const use = () =>
        a.req("POST", "/api/v1/token_subset", {
          token: minted.token,
          body: { sub: "build", scope: [], duration: 1, name: "x" },
        });
      assert.equal((await use()).status, 200);
      const listed = await expectJson(
        await a.req("GET", "/api/v1/auth/tokens", { token: s }),
        200,
      );
      assert.equal(listed[0].useCount, 1);
      assert.ok(listed[0].lastUsed);
      const ivy = await a.login("ivy");
      assert.equal(
        (await a.req("DELETE", `/api/v1/auth/tokens/${minted.jti}`, {
          token: ivy,
        })).status,
        404,
        "not ivy's",
      );
      assert.equal(
        (await a.req("DELETE", `/api/v1/auth/tokens/${minted.jti}`, {
          token: s,
        })).status,
        204,
      );
      const after = await use();
      assert.equal(after.status, 401);
      assert.equal((await after.json()).message, "Token has been revoked");
    } finally {
      await a.close();
    }
  },
);
