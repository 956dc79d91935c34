/**
 * Repositories through the API: validation of every field (traversal included), duplicates,
 * permissions of each role, the on-disk repository as the `ostree` CLI sees it, atomic config
 * rewrites, deletion with confirmation, and validation jobs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { expectJson, type TestApp, testApp } from "./support/app.ts";
import { ostree } from "../lib/ostree/cli.ts";
import { startWorker } from "../lib/queue/worker.ts";
import { createJobHandlers } from "../jobs/registry.ts";
import { silentLogger } from "../lib/logger.ts";

async function adminApp(db: Parameters<typeof testApp>[0]) {
  const a = await testApp(db);
  await a.user("root", "admin");
  return { a, s: await a.login("root") };
}

const repoDir = (a: TestApp, name: string) =>
  join(a.deps.config.dataDir, "repos", name);
const ostreeConfig = (dir: string, key: string) =>
  ostree(dir, ["config", "get", key]).then((s) => s.trim());

async function runJobs(a: TestApp, until: () => Promise<boolean>) {
  const worker = await startWorker({
    queue: a.deps.queue,
    bus: a.deps.bus,
    logger: silentLogger,
    handlers: createJobHandlers(a.deps),
    concurrency: 1,
    leaseSeconds: 30,
    pollMs: 50,
  });
  try {
    const deadline = Date.now() + 30_000;
    while (!await until()) {
      if (Date.now() > deadline) throw new Error("jobs did not finish in 30 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await worker.stop();
  }
}

dbTest(
  "POST /api/v1/repos creates an archive-z2 repository the ostree CLI agrees with",
  async (db) => {
    const { a, s } = await adminApp(db);
    try {
      const res = await a.req("POST", "/api/v1/repos", {
        token: s,
        body: {
          name: "stable",
          title: "Example Apps",
          description: "Apps of the example team\nSecond line",
          homepage: "https://example.org",
          collectionId: "org.example.Stable",
          minFreeSpace: "2GB",
          deltaPolicy: {
            rules: [{ match: "org.gnome.*", depth: 3 }, {
              match: "*",
              depth: 1,
            }],
            fromScratch: false,
          },
        },
      });
      const repo = await expectJson(res, 201);
      assert.equal(res.headers.get("location"), "/api/v1/repos/stable");
      assert.equal(repo.url, "http://127.0.0.1:8080/repo/stable");
      assert.equal(
        repo.flatpakrepoUrl,
        "http://127.0.0.1:8080/repo/stable.flatpakrepo",
      );
      assert.equal(repo.defaultBranch, "stable");
      assert.equal(repo.public, true);
      const dir = repoDir(a, "stable");
      assert.equal(await ostreeConfig(dir, "core.mode"), "archive-z2");
      assert.equal(
        await ostreeConfig(dir, "core.collection-id"),
        "org.example.Stable",
      );
      assert.equal(await ostreeConfig(dir, "core.min-free-space-size"), "2GB");
      assert.equal(await ostreeConfig(dir, "flatpak.title"), "Example Apps");
      assert.equal(
        await ostreeConfig(dir, "flatpak.comment"),
        "Apps of the example team",
      );
      for (const sub of ["objects", "refs/heads", "tmp"]) {
        assert.ok((await Deno.stat(join(dir, sub))).isDirectory, sub);
      }
      // ostree itself can use it.
      await Deno.mkdir(join(dir, "..", "tree"), { recursive: true });
      await Deno.writeTextFile(join(dir, "..", "tree", "f"), "x");
      await ostree(dir, [
        "commit",
        "-b",
        "test/x",
        `--tree=dir=${join(dir, "..", "tree")}`,
        "-s",
        "probe",
      ]);
      const audit = await a.deps.audit.list({
        objectType: "repo",
        objectId: "stable",
      });
      assert.deepEqual(audit.map((e) => e.action), ["repo.create"]);
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "repository fields are validated, traversal included, and nothing is left behind",
  async (db, t) => {
    const { a, s } = await adminApp(db);
    try {
      const cases: [string, Record<string, unknown>, string][] = [
        ["traversal ../x", { name: "../x" }, "name"],
        ["slash a/b", { name: "a/b" }, "name"],
        ["encoded %2e%2e", { name: "%2e%2e" }, "name"],
        ["dot-dot", { name: ".." }, "name"],
        ["hidden .x", { name: ".x" }, "name"],
        ["empty name", { name: "" }, "name"],
        ["over-long name", { name: "a".repeat(65) }, "name"],
        ["NUL in name", { name: "a\u0000b" }, "name"],
        ["space in name", { name: "a b" }, "name"],
        ["reserved suffix", { name: "x.flatpakrepo" }, "name"],
        [
          "one-element collection ID",
          { name: "r", collectionId: "stable" },
          "collectionId",
        ],
        ["collection ID with slash", {
          name: "r",
          collectionId: "org.example/x",
        }, "collectionId"],
        ["collection ID starting with a digit", {
          name: "r",
          collectionId: "org.1example.X",
        }, "collectionId"],
        ["collection ID with an empty element", {
          name: "r",
          collectionId: "org..x",
        }, "collectionId"],
        ["over-long collection ID", {
          name: "r",
          collectionId: "org." + "x".repeat(260),
        }, "collectionId"],
        [
          "branch with slash",
          { name: "r", defaultBranch: "a/b" },
          "defaultBranch",
        ],
        [
          "branch starting with a dot",
          { name: "r", defaultBranch: ".x" },
          "defaultBranch",
        ],
        [
          "javascript homepage",
          { name: "r", homepage: "javascript:alert(1)" },
          "homepage",
        ],
        ["relative icon URL", { name: "r", iconUrl: "/icon.png" }, "iconUrl"],
        [
          "ftp base URL",
          { name: "r", baseUrl: "ftp://x.test/repo" },
          "baseUrl",
        ],
        [
          "min-free-space without unit",
          { name: "r", minFreeSpace: "500" },
          "minFreeSpace",
        ],
        [
          "min-free-space percent",
          { name: "r", minFreeSpace: "3%" },
          "minFreeSpace",
        ],
        ["delta depth too deep", {
          name: "r",
          deltaPolicy: {
            rules: [{ match: "*", depth: 99 }],
            fromScratch: true,
          },
        }, "deltaPolicy.rules.0.depth"],
        ["delta rule with a path", {
          name: "r",
          deltaPolicy: {
            rules: [{ match: "../*", depth: 1 }],
            fromScratch: true,
          },
        }, "deltaPolicy.rules.0.match"],
        ["unknown field", { name: "r", gpgKey: "x" }, "gpgKey"],
        ["public not boolean", { name: "r", public: "yes" }, "public"],
        ["over-long title", { name: "r", title: "t".repeat(201) }, "title"],
      ];
      for (const [what, body, field] of cases) {
        await t.step(`${what} → 422 naming ${field}`, async () => {
          const p = await expectJson(
            await a.req("POST", "/api/v1/repos", { token: s, body }),
            422,
          );
          assert.ok(
            p.errors.some((e: { path: string }) => e.path === field),
            JSON.stringify(p.errors),
          );
        });
      }
      await t.step(
        "an encoded traversal in the path is not a repository",
        async () => {
          for (
            const path of [
              "/api/v1/repos/..%2Fx",
              "/api/v1/repos/%2e%2e",
              "/api/v1/repos/a%00b",
            ]
          ) {
            const res = await a.req("GET", path, { token: s });
            assert.ok(
              [404, 422].includes(res.status),
              `${path}: ${res.status}`,
            );
          }
        },
      );
      await t.step("nothing was created", async () => {
        assert.deepEqual(
          await expectJson(
            await a.req("GET", "/api/v1/repos", { token: s }),
            200,
          ),
          [],
        );
        const entries = [];
        try {
          for await (
            const e of Deno.readDir(join(a.deps.config.dataDir, "repos"))
          ) entries.push(e.name);
        } catch { /* no repos dir at all: fine */ }
        assert.deepEqual(entries, []);
      });
    } finally {
      await a.close();
    }
  },
);

dbTest("a duplicate repository name is refused with 409", async (db) => {
  const { a, s } = await adminApp(db);
  try {
    await expectJson(
      await a.req("POST", "/api/v1/repos", {
        token: s,
        body: { name: "beta" },
      }),
      201,
    );
    const p = await expectJson(
      await a.req("POST", "/api/v1/repos", {
        token: s,
        body: { name: "beta", title: "Other" },
      }),
      409,
    );
    assert.equal(p.detail, 'Repository "beta" already exists');
    assert.equal(
      await ostreeConfig(repoDir(a, "beta"), "core.mode"),
      "archive-z2",
      "the first is untouched",
    );
  } finally {
    await a.close();
  }
});

dbTest(
  "permissions: create needs admin, configure needs repo admin, reads follow visibility",
  async (db, t) => {
    const { a, s } = await adminApp(db);
    try {
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "pub" },
        }),
        201,
      );
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "priv", public: false },
        }),
        201,
      );
      await a.user("maint", "maintainer");
      await a.user("view", "viewer");
      await a.user("radmin", "viewer", { priv: "admin" });
      await a.user("rwrite", "viewer", { priv: "write" });
      const who = {
        maint: await a.login("maint"),
        view: await a.login("view"),
        radmin: await a.login("radmin"),
        rwrite: await a.login("rwrite"),
        ciToken: await a.token({ repos: ["pub"] }),
      };
      const outsider = await a.token({ scope: ["download"], repos: ["other"] });
      const downloader = await a.token({
        scope: ["download"],
        repos: ["priv"],
      });
      const table: [
        string,
        string | undefined,
        string,
        string,
        unknown,
        number,
      ][] = [
        ["maintainer creates", who.maint, "POST", "/api/v1/repos", {
          name: "x1",
        }, 403],
        ["repo admin creates", who.radmin, "POST", "/api/v1/repos", {
          name: "x2",
        }, 403],
        ["flat-manager token creates", who.ciToken, "POST", "/api/v1/repos", {
          name: "x3",
        }, 403],
        ["anonymous creates", undefined, "POST", "/api/v1/repos", {
          name: "x4",
        }, 401],
        ["maintainer configures", who.maint, "PATCH", "/api/v1/repos/priv", {
          title: "t",
        }, 403],
        ["repo writer configures", who.rwrite, "PATCH", "/api/v1/repos/priv", {
          title: "t",
        }, 403],
        [
          "repo admin configures another repo",
          who.radmin,
          "PATCH",
          "/api/v1/repos/pub",
          { title: "t" },
          403,
        ],
        [
          "repo admin configures its repo",
          who.radmin,
          "PATCH",
          "/api/v1/repos/priv",
          { title: "Private" },
          200,
        ],
        [
          "repo writer deletes",
          who.rwrite,
          "DELETE",
          "/api/v1/repos/priv?confirm=priv",
          undefined,
          403,
        ],
        [
          "repo writer validates",
          who.rwrite,
          "POST",
          "/api/v1/repos/priv/validate",
          undefined,
          403,
        ],
        [
          "anonymous reads public",
          undefined,
          "GET",
          "/api/v1/repos/pub",
          undefined,
          200,
        ],
        [
          "anonymous reads private",
          undefined,
          "GET",
          "/api/v1/repos/priv",
          undefined,
          404,
        ],
        [
          "global viewer reads private",
          who.view,
          "GET",
          "/api/v1/repos/priv",
          undefined,
          200,
        ],
        [
          "download token for another repo reads private",
          outsider,
          "GET",
          "/api/v1/repos/priv",
          undefined,
          404,
        ],
        [
          "download token for it reads private",
          downloader,
          "GET",
          "/api/v1/repos/priv",
          undefined,
          200,
        ],
      ];
      for (const [what, token, method, path, body, status] of table) {
        await t.step(`${what} → ${status}`, async () => {
          const res = await a.req(method, path, {
            ...(token ? { token } : {}),
            ...(body === undefined ? {} : { body }),
          });
          assert.equal(res.status, status, await res.text());
        });
      }
      await t.step(
        "listing shows private repositories only to those who may read them",
        async () => {
          const names = async (token?: string) =>
            (await expectJson(
              await a.req("GET", "/api/v1/repos", token ? { token } : {}),
              200,
            )).map((r: { name: string }) => r.name);
          assert.deepEqual(await names(), ["pub"]);
          assert.deepEqual(await names(outsider), ["pub"]);
          assert.deepEqual(await names(who.radmin), ["priv", "pub"]);
        },
      );
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "PATCH rewrites the config atomically, keeps foreign keys, and pins the collection ID",
  async (db) => {
    const { a, s } = await adminApp(db);
    try {
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "r1", title: "One" },
        }),
        201,
      );
      const dir = repoDir(a, "r1");
      // A key ostree writes by itself must survive our rewrite.
      await ostree(dir, ["config", "set", "core.indexed-deltas", "true"]);
      const updated = await expectJson(
        await a.req("PATCH", "/api/v1/repos/r1", {
          token: s,
          body: {
            title: "Uno",
            collectionId: "org.example.One",
            minFreeSpace: "1GB",
            homepage: "https://one.example",
          },
        }),
        200,
      );
      assert.equal(updated.title, "Uno");
      assert.equal(await ostreeConfig(dir, "flatpak.title"), "Uno");
      assert.equal(
        await ostreeConfig(dir, "core.collection-id"),
        "org.example.One",
      );
      assert.equal(await ostreeConfig(dir, "core.min-free-space-size"), "1GB");
      assert.equal(await ostreeConfig(dir, "core.indexed-deltas"), "true");
      const cleared = await expectJson(
        await a.req("PATCH", "/api/v1/repos/r1", {
          token: s,
          body: { homepage: null },
        }),
        200,
      );
      assert.equal(cleared.homepage, null);
      await assert.rejects(ostreeConfig(dir, "flatpak.homepage"));
      const pinned = await a.req("PATCH", "/api/v1/repos/r1", {
        token: s,
        body: { collectionId: "org.example.Other" },
      });
      assert.equal(pinned.status, 409);
      assert.equal(
        await ostreeConfig(dir, "core.collection-id"),
        "org.example.One",
      );
      const leftovers = [];
      for await (const e of Deno.readDir(dir)) {
        if (e.name.includes(".tmp-")) leftovers.push(e.name);
      }
      assert.deepEqual(leftovers, [], "no temporary config files");
      assert.equal(
        (await a.req("PATCH", "/api/v1/repos/r1", { token: s, body: {} }))
          .status,
        422,
      );
      assert.equal(
        (await a.req("PATCH", "/api/v1/repos/nope", {
          token: s,
          body: { title: "x" },
        })).status,
        404,
      );
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "DELETE needs confirmation, hides the repository at once and a job removes its data",
  async (db) => {
    const { a, s } = await adminApp(db);
    try {
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "old" },
        }),
        201,
      );
      for (const q of ["", "?confirm=wrong"]) {
        const p = await expectJson(
          await a.req("DELETE", `/api/v1/repos/old${q}`, { token: s }),
          400,
        );
        assert.equal(p.detail, 'Deleting repository "old" needs ?confirm=old');
      }
      assert.equal(
        (await a.req("GET", "/api/v1/repos/old", { token: s })).status,
        200,
        "still there",
      );
      const job = await expectJson(
        await a.req("DELETE", "/api/v1/repos/old?confirm=old", { token: s }),
        202,
      );
      assert.equal(job.kind, "repo.delete");
      assert.equal(
        (await a.req("GET", "/api/v1/repos/old", { token: s })).status,
        404,
        "hidden at once",
      );
      await assert.rejects(Deno.stat(repoDir(a, "old")), Deno.errors.NotFound);
      // The name is free again at once, and the new repository is a new one.
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "old", title: "New" },
        }),
        201,
      );
      const trash = (job.payload as { trashPath: string }).trashPath;
      assert.ok((await Deno.stat(trash)).isDirectory);
      await runJobs(
        a,
        async () => (await a.deps.queue.get(job.id))?.status === "succeeded",
      );
      await assert.rejects(Deno.stat(trash), Deno.errors.NotFound);
      assert.equal(
        await ostreeConfig(repoDir(a, "old"), "flatpak.title"),
        "New",
        "the new one is intact",
      );
    } finally {
      await a.close();
    }
  },
);

dbTest("validation runs ostree fsck and reports config drift", async (db) => {
  const { a, s } = await adminApp(db);
  try {
    await expectJson(
      await a.req("POST", "/api/v1/repos", {
        token: s,
        body: { name: "v", collectionId: "org.example.V" },
      }),
      201,
    );
    assert.equal(
      (await a.req("GET", "/api/v1/repos/v/validation", { token: s })).status,
      404,
    );
    const job = await expectJson(
      await a.req("POST", "/api/v1/repos/v/validate", { token: s }),
      202,
    );
    await runJobs(
      a,
      async () => (await a.deps.queue.get(job.id))?.status === "succeeded",
    );
    const ok = await expectJson(
      await a.req("GET", "/api/v1/repos/v/validation", { token: s }),
      200,
    );
    assert.deepEqual(ok.result, { ok: true, problems: [] });
    // Someone edits the config behind Flatyard's back.
    await ostree(repoDir(a, "v"), [
      "config",
      "set",
      "core.collection-id",
      "org.example.Tampered",
    ]);
    const job2 = await expectJson(
      await a.req("POST", "/api/v1/repos/v/validate", { token: s }),
      202,
    );
    await runJobs(
      a,
      async () => (await a.deps.queue.get(job2.id))?.status === "succeeded",
    );
    const bad = await expectJson(
      await a.req("GET", "/api/v1/repos/v/validation", { token: s }),
      200,
    );
    assert.equal(bad.id, job2.id);
    assert.equal(bad.result.ok, false);
    assert.match(
      bad.result.problems[0],
      /collection-id is "org.example.Tampered", expected "org.example.V"/,
    );
    assert.match(
      (await a.deps.queue.readLog(job2.id)).text,
      /1 problem\(s\) found/,
    );
  } finally {
    await a.close();
  }
});
