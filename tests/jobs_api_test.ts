/** Native job endpoints: who may look, reading logs from an offset, and cancelling. */
import assert from "node:assert/strict";
import { dbTest } from "./support/db.ts";
import { expectJson, testApp } from "./support/app.ts";

dbTest(
  "GET /api/v1/jobs lists and reads jobs for maintainers, not viewers",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("maint", "maintainer");
      await a.user("view", "viewer");
      const m = await a.login("maint");
      const v = await a.login("view");
      const j1 = await a.deps.queue.enqueue("demo", { repo: "stable" }, {
        priority: 5,
      });
      const j2 = await a.deps.queue.enqueue("other", {}, {
        dependsOn: [j1.id],
      });
      await a.deps.queue.appendLog(j1.id, "first line\n");
      await a.deps.queue.appendLog(j1.id, "second ✓\n");

      const list = await expectJson(
        await a.req("GET", "/api/v1/jobs", { token: m }),
        200,
      );
      assert.deepEqual(list.map((j: { id: number }) => j.id), [j2.id, j1.id]);
      const filtered = await expectJson(
        await a.req("GET", "/api/v1/jobs?kind=demo&status=queued", {
          token: m,
        }),
        200,
      );
      assert.deepEqual(filtered.map((j: { id: number }) => j.id), [j1.id]);
      const page = await expectJson(
        await a.req("GET", `/api/v1/jobs?before=${j2.id}&limit=1`, {
          token: m,
        }),
        200,
      );
      assert.deepEqual(page.map((j: { id: number }) => j.id), [j1.id]);
      assert.equal(
        (await a.req("GET", "/api/v1/jobs?limit=0", { token: m })).status,
        422,
      );
      assert.equal(
        (await a.req("GET", "/api/v1/jobs?status=exploded", { token: m }))
          .status,
        422,
      );

      const one = await expectJson(
        await a.req("GET", `/api/v1/jobs/${j2.id}`, { token: m }),
        200,
      );
      assert.deepEqual([one.kind, one.status, one.dependsOn, one.attempts], [
        "other",
        "queued",
        [j1.id],
        0,
      ]);
      assert.equal("leaseOwner" in one, false);

      assert.deepEqual(
        await expectJson(
          await a.req("GET", `/api/v1/jobs/${j1.id}/log`, { token: m }),
          200,
        ),
        { text: "first line\nsecond ✓\n", next: 22 },
      );
      assert.deepEqual(
        await expectJson(
          await a.req("GET", `/api/v1/jobs/${j1.id}/log?offset=11`, {
            token: m,
          }),
          200,
        ),
        { text: "second ✓\n", next: 22 },
      );
      assert.equal(
        (await a.req("GET", "/api/v1/jobs/999999", { token: m })).status,
        404,
      );
      assert.equal(
        (await a.req("GET", "/api/v1/jobs/abc", { token: m })).status,
        422,
      );
      for (
        const path of [
          "/api/v1/jobs",
          `/api/v1/jobs/${j1.id}`,
          `/api/v1/jobs/${j1.id}/log`,
        ]
      ) {
        assert.equal(
          (await a.req("GET", path, { token: v })).status,
          403,
          path,
        );
        assert.equal((await a.req("GET", path)).status, 401, path);
      }
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "POST /api/v1/jobs/{id}/cancel cancels for admins only, once",
  async (db) => {
    const a = await testApp(db);
    try {
      await a.user("root", "admin");
      await a.user("maint", "maintainer");
      const r = await a.login("root");
      const m = await a.login("maint");
      const job = await a.deps.queue.enqueue("demo", {}, {
        delaySeconds: 3600,
      });
      assert.equal(
        (await a.req("POST", `/api/v1/jobs/${job.id}/cancel`, { token: m }))
          .status,
        403,
      );
      const cancelled = await expectJson(
        await a.req("POST", `/api/v1/jobs/${job.id}/cancel`, { token: r }),
        200,
      );
      assert.equal(cancelled.status, "cancelled");
      const again = await a.req("POST", `/api/v1/jobs/${job.id}/cancel`, {
        token: r,
      });
      assert.equal(
        (await expectJson(again, 409)).detail,
        `Cannot cancel job "${job.id}": it has already cancelled`,
      );
      const audit = await a.deps.audit.list({ action: "job.cancel" });
      assert.deepEqual([audit.length, audit[0]?.objectId, audit[0]?.actor], [
        1,
        String(job.id),
        "user:root",
      ]);
    } finally {
      await a.close();
    }
  },
);
