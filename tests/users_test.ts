/**
 * User administration: validation, duplicates, permissions of each role, escalation attempts
 * through role changes, token revocation on downgrade, the last-admin guard, and the audit log.
 */
import assert from "node:assert/strict";
import { dbTest } from "./support/db.ts";
import { expectJson, TEST_PASSWORD, testApp } from "./support/app.ts";

dbTest(
  "an admin creates, lists, updates and deletes users; each change is audited",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("root", "admin");
      const s = await a.login("root");
      const created = await a.req("POST", "/api/v1/users", {
        token: s,
        body: { username: "jo", password: TEST_PASSWORD, role: "maintainer" },
      });
      const jo = await expectJson(created, 201);
      assert.equal(created.headers.get("location"), `/api/v1/users/${jo.id}`);
      assert.deepEqual([jo.username, jo.role, jo.disabled, jo.repoRoles], [
        "jo",
        "maintainer",
        false,
        {},
      ]);
      const list = await expectJson(
        await a.req("GET", "/api/v1/users", { token: s }),
        200,
      );
      assert.deepEqual(list.map((u: { username: string }) => u.username), [
        "jo",
        "root",
      ]);
      const patched = await expectJson(
        await a.req("PATCH", `/api/v1/users/${jo.id}`, {
          token: s,
          body: { role: "viewer" },
        }),
        200,
      );
      assert.equal(patched.role, "viewer");
      const withRepo = await expectJson(
        await a.req("PUT", `/api/v1/users/${jo.id}/repos/stable`, {
          token: s,
          body: { role: "write" },
        }),
        200,
      );
      assert.deepEqual(withRepo.repoRoles, { stable: "write" });
      assert.equal(
        (await a.req("DELETE", `/api/v1/users/${jo.id}`, { token: s })).status,
        204,
      );
      assert.equal(
        (await a.req("GET", `/api/v1/users/${jo.id}`, { token: s })).status,
        404,
      );
      const actions = (await a.deps.audit.list({
        objectType: "user",
        objectId: String(jo.id),
      })).map((e) => e.action);
      assert.deepEqual(actions, [
        "user.delete",
        "user.repo_role",
        "user.update",
        "user.create",
      ]);
      const update = (await a.deps.audit.list({ action: "user.update" }))[0]!;
      assert.equal(update.actor, "user:root");
      assert.deepEqual(update.details, {
        role: { from: "maintainer", to: "viewer" },
      });
      assert.ok(update.requestId);
    } finally {
      await a.close();
    }
  },
);

dbTest("user fields are validated and duplicates refused", async (db, t) => {
  const a = await testApp(db);
  try {
    await a.user("root", "admin");
    const s = await a.login("root");
    const cases: [string, Record<string, unknown>, number, string?][] = [
      [
        "upper-case name",
        { username: "Bob", password: TEST_PASSWORD },
        422,
        "username",
      ],
      [
        "traversal name",
        { username: "../x", password: TEST_PASSWORD },
        422,
        "username",
      ],
      [
        "slash in name",
        { username: "a/b", password: TEST_PASSWORD },
        422,
        "username",
      ],
      [
        "empty name",
        { username: "", password: TEST_PASSWORD },
        422,
        "username",
      ],
      [
        "over-long name",
        { username: "a".repeat(65), password: TEST_PASSWORD },
        422,
        "username",
      ],
      [
        "short password",
        { username: "bob", password: "short" },
        422,
        "password",
      ],
      [
        "unknown role",
        { username: "bob", password: TEST_PASSWORD, role: "owner" },
        422,
        "role",
      ],
      [
        "unknown field",
        {
          username: "bob",
          password: TEST_PASSWORD,
          isAdmin: true,
        },
        422,
        "isAdmin",
      ],
      ["duplicate", { username: "root", password: TEST_PASSWORD }, 409],
    ];
    for (const [what, body, status, field] of cases) {
      await t.step(what, async () => {
        const p = await expectJson(
          await a.req("POST", "/api/v1/users", { token: s, body }),
          status,
        );
        if (field) {
          assert.ok(
            p.errors.some((e: { path: string }) => e.path === field),
            JSON.stringify(p.errors),
          );
        }
        if (status === 409) {
          assert.equal(p.detail, 'User "root" already exists');
        }
      });
    }
    await t.step("repo names in paths are validated", async () => {
      for (const repo of ["..", "%2e%2e", ".hidden", "a%2Fb"]) {
        const res = await a.req("PUT", `/api/v1/users/1/repos/${repo}`, {
          token: s,
          body: { role: "read" },
        });
        assert.ok(
          [404, 422].includes(res.status),
          `${repo} gave ${res.status}`,
        );
      }
    });
  } finally {
    await a.close();
  }
});

dbTest("only admins administer users; each role's failures", async (db, t) => {
  const a = await testApp(db);
  try {
    const root = await a.user("root", "admin");
    const viewer = await a.user("viewer", "viewer");
    await a.user("maint", "maintainer");
    const repoAdmin = await a.user("radmin", "viewer", { stable: "admin" });
    const who = {
      viewer: await a.login("viewer"),
      maint: await a.login("maint"),
      radmin: await a.login("radmin"),
      token: await a.token(), // flat-manager scopes only: no native administration
    };
    const adminToken = await a.token({ scope: ["admin"] });
    const ops: [string, string, unknown?][] = [
      ["GET", "/api/v1/users"],
      ["POST", "/api/v1/users", { username: "x1", password: TEST_PASSWORD }],
      ["PATCH", `/api/v1/users/${viewer.id}`, { role: "admin" }],
      ["DELETE", `/api/v1/users/${root.id}`],
      ["GET", `/api/v1/users/${root.id}`],
      ["GET", "/api/v1/audit"],
      ["PUT", `/api/v1/users/${viewer.id}/repos/beta`, { role: "read" }],
    ];
    for (const [name, session] of Object.entries(who)) {
      for (const [method, path, body] of ops) {
        await t.step(`${name}: ${method} ${path} → 403`, async () => {
          const res = await a.req(method, path, {
            token: session,
            ...(body === undefined ? {} : { body }),
          });
          assert.equal(res.status, 403, await res.clone().text());
          assert.equal(
            res.headers.get("content-type"),
            "application/problem+json",
          );
        });
      }
    }
    await t.step("no credentials → 401", async () => {
      assert.equal((await a.req("GET", "/api/v1/users")).status, 401);
    });
    await t.step("a token with the admin scope administers users", async () => {
      assert.equal(
        (await a.req("GET", "/api/v1/users", { token: adminToken })).status,
        200,
      );
      const r = await a.req("POST", "/api/v1/users", {
        token: adminToken,
        body: { username: "bytoken", password: TEST_PASSWORD },
      });
      assert.equal(r.status, 201);
      const entry = (await a.deps.audit.list({ action: "user.create" }))[0]!;
      assert.equal(entry.actor, "token:default");
    });
    await t.step("a user reads itself", async () => {
      assert.equal(
        (await a.req("GET", `/api/v1/users/${viewer.id}`, {
          token: who.viewer,
        })).status,
        200,
      );
    });
    await t.step("a repo admin sets roles on its repository only", async () => {
      const ok = await a.req("PUT", `/api/v1/users/${viewer.id}/repos/stable`, {
        token: who.radmin,
        body: { role: "write" },
      });
      assert.equal(ok.status, 200);
      const other = await a.req(
        "PUT",
        `/api/v1/users/${viewer.id}/repos/beta`,
        { token: who.radmin, body: { role: "write" } },
      );
      assert.equal(other.status, 403);
      assert.equal((await a.deps.users.get(repoAdmin.id))!.role, "viewer");
    });
  } finally {
    await a.close();
  }
});

dbTest("escalation through role changes is refused", async (db, t) => {
  const a = await testApp(db);
  try {
    const maint = await a.user("maint", "maintainer");
    const radmin = await a.user("radmin", "viewer", { stable: "admin" });
    const ms = await a.login("maint");
    const rs = await a.login("radmin");
    await t.step("a maintainer cannot make itself admin", async () => {
      const r = await a.req("PATCH", `/api/v1/users/${maint.id}`, {
        token: ms,
        body: { role: "admin" },
      });
      assert.equal(r.status, 403);
      assert.equal((await a.deps.users.get(maint.id))!.role, "maintainer");
    });
    await t.step(
      "a repo admin cannot give itself a global role or another repo",
      async () => {
        assert.equal(
          (await a.req("PATCH", `/api/v1/users/${radmin.id}`, {
            token: rs,
            body: { role: "maintainer" },
          })).status,
          403,
        );
        assert.equal(
          (await a.req("PUT", `/api/v1/users/${radmin.id}/repos/beta`, {
            token: rs,
            body: { role: "admin" },
          })).status,
          403,
        );
        assert.deepEqual((await a.deps.users.get(radmin.id))!.repoRoles, {
          stable: "admin",
        });
      },
    );
    await t.step(
      "a repo admin cannot then mint a token for another repository",
      async () => {
        const r = await a.req("POST", "/api/v1/auth/tokens", {
          token: rs,
          body: { name: "x", scope: ["publish"], repos: ["beta"] },
        });
        assert.equal(r.status, 403);
      },
    );
    await t.step("a subset token cannot widen its parent", async () => {
      const parent = await a.token({ scope: ["upload"], repos: ["stable"] });
      const r = await a.req("POST", "/api/v1/token_subset", {
        token: parent,
        body: {
          sub: "build",
          scope: ["upload", "admin"],
          duration: 60,
          name: "x",
        },
      });
      assert.equal(r.status, 403);
    });
  } finally {
    await a.close();
  }
});

dbTest(
  "taking a right away revokes the user's tokens; adding one does not",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("root", "admin");
      const kim = await a.user("kim", "maintainer", { stable: "write" });
      const root = await a.login("root");
      const kimS = await a.login("kim");
      const mint = async () =>
        (await expectJson(
          await a.req("POST", "/api/v1/auth/tokens", {
            token: kimS,
            body: { name: "ci", scope: ["upload"], repos: [""] },
          }),
          201,
        )).token as string;
      const works = async (token: string) =>
        (await a.req("POST", "/api/v1/token_subset", {
          token,
          body: { sub: "build", scope: [], duration: 1, name: "x" },
        })).status;
      const t1 = await mint();
      await a.req("PUT", `/api/v1/users/${kim.id}/repos/beta`, {
        token: root,
        body: { role: "admin" },
      });
      assert.equal(await works(t1), 200, "an upgrade keeps tokens");
      await a.req("PATCH", `/api/v1/users/${kim.id}`, {
        token: root,
        body: { role: "viewer" },
      });
      assert.equal(await works(t1), 401, "a global downgrade revokes them");
      const revokes = await a.deps.audit.list({ action: "token.revoke" });
      assert.equal(revokes[0]?.details.reason, "user.update");
      // Now a viewer with stable:write and beta:admin.
      const t2 = (await expectJson(
        await a.req("POST", "/api/v1/auth/tokens", {
          token: kimS,
          body: { name: "ci2", scope: ["upload"], repos: ["beta"] },
        }),
        201,
      )).token as string;
      await a.req("DELETE", `/api/v1/users/${kim.id}/repos/beta`, {
        token: root,
      });
      assert.equal(await works(t2), 401, "a repo downgrade revokes them");
      await a.req("PATCH", `/api/v1/users/${kim.id}`, {
        token: root,
        body: { disabled: true },
      });
      assert.equal(
        (await a.req("GET", "/api/v1/auth/me", { token: kimS })).status,
        401,
        "disabling ends sessions",
      );
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "the last enabled admin cannot be demoted, disabled or deleted",
  async (db) => {
    const a = await testApp(db);
    try {
      const root = await a.user("root", "admin");
      const s = await a.login("root");
      for (const body of [{ role: "maintainer" }, { disabled: true }]) {
        const r = await a.req("PATCH", `/api/v1/users/${root.id}`, {
          token: s,
          body,
        });
        assert.equal(r.status, 409);
        assert.match((await r.json()).detail, /last enabled admin/);
      }
      assert.equal(
        (await a.req("DELETE", `/api/v1/users/${root.id}`, { token: s }))
          .status,
        409,
      );
      const second = await a.user("second", "admin");
      assert.equal(
        (await a.req("PATCH", `/api/v1/users/${root.id}`, {
          token: s,
          body: { role: "maintainer" },
        })).status,
        200,
      );
      const s2 = await a.login("second");
      assert.equal(
        (await a.req("DELETE", `/api/v1/users/${second.id}`, { token: s2 }))
          .status,
        409,
      );
    } finally {
      await a.close();
    }
  },
);
