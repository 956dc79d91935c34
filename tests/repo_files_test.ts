/**
 * Serving a repository's files under /repo/<name>/: byte-for-byte bodies, caching classes, no
 * way out of the repository, and download tokens for private repositories.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { expectJson, testApp } from "./support/app.ts";
import { ostree } from "../lib/ostree/cli.ts";
import { cacheControl, safeRepoPath } from "../lib/http/repo_path.ts";

Deno.test("cacheControl classifies repository files as specs/ostree-repos.md §0 says", () => {
  const hex = "ab".repeat(32);
  const obj = `objects/${hex.slice(0, 2)}/${hex.slice(2)}`;
  const table: [string, string][] = [
    [`${obj}.commit`, "public, max-age=31536000, immutable"],
    [`${obj}.filez`, "public, max-age=31536000, immutable"],
    [`${obj}.dirtree`, "public, max-age=31536000, immutable"],
    [`${obj}.commitmeta`, "public, max-age=86400"],
    [`summaries/${hex}.gz`, "public, max-age=31536000, immutable"],
    [`deltas/ab/cdef/superblock`, "public, max-age=31536000, immutable"],
    ["summary", "public, max-age=300"],
    ["summary.idx.sig", "public, max-age=300"],
    ["config", "public, max-age=300"],
    [`delta-indexes/ab/${hex.slice(2)}.index`, "public, max-age=300"],
    ["refs/heads/app/org.x.Y/x86_64/stable", "public, max-age=300"],
  ];
  for (const [path, want] of table) {
    assert.equal(cacheControl(path), want, path);
  }
});

Deno.test("safeRepoPath refuses every way out and every file clients never fetch", () => {
  const refused = [
    "",
    "../config",
    "objects/../../secret",
    "./config",
    "objects//x",
    "objects/%2e%2e/x",
    "%2e%2e/config",
    "objects\\..\\x",
    "tmp/deltas/x",
    "state/x.commitpartial",
    ".lock",
    "objects/.hidden",
    "config\u0000.txt",
    "a".repeat(1025),
    "refs/heads/a b",
    "unknown-top",
  ];
  for (const p of refused) {
    assert.equal(safeRepoPath(p), undefined, JSON.stringify(p));
  }
  for (
    const p of [
      "config",
      "summary",
      "summaries/x.gz",
      "objects/ab/cd.commit",
      "refs/heads/app/a+b_c/x86_64/stable",
    ]
  ) {
    assert.equal(safeRepoPath(p), p);
  }
});

dbTest(
  "GET /repo/<name>/<path> serves files byte for byte and nothing outside the repository",
  async (db, t) => {
    const a = await testApp(db);
    try {
      await a.user("root", "admin");
      const s = await a.login("root");
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "files" },
        }),
        201,
      );
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "secret", public: false },
        }),
        201,
      );
      const repo = join(a.deps.config.dataDir, "repos", "files");
      const tree = await Deno.makeTempDir();
      await Deno.writeTextFile(join(tree, "f"), "payload");
      const commit = (await ostree(repo, [
        "commit",
        "-b",
        "test/x",
        `--tree=dir=${tree}`,
        "-s",
        "s",
      ])).trim();
      await ostree(repo, ["summary", "-u"]);
      // A symlink inside the repository that points outside it.
      await Deno.writeTextFile(
        join(a.deps.config.dataDir, "outside.txt"),
        "not for you",
      );
      await Deno.symlink(
        join(a.deps.config.dataDir, "outside.txt"),
        join(repo, "refs", "heads", "escape"),
      );

      await t.step(
        "objects, summary and config come back byte for byte with their caching class",
        async () => {
          const path = `objects/${commit.slice(0, 2)}/${
            commit.slice(2)
          }.commit`;
          const res = await a.req("GET", `/repo/files/${path}`);
          assert.equal(res.status, 200);
          assert.deepEqual(
            new Uint8Array(await res.arrayBuffer()),
            await Deno.readFile(join(repo, path)),
          );
          assert.equal(
            res.headers.get("cache-control"),
            "public, max-age=31536000, immutable",
          );
          assert.equal(res.headers.get("content-encoding"), null);
          const summary = await a.req("GET", "/repo/files/summary");
          assert.deepEqual(
            new Uint8Array(await summary.arrayBuffer()),
            await Deno.readFile(join(repo, "summary")),
          );
          assert.equal(
            summary.headers.get("cache-control"),
            "public, max-age=300",
          );
          const head = await a.req("HEAD", "/repo/files/config");
          assert.equal(head.status, 200);
          assert.equal(
            head.headers.get("content-length"),
            String((await Deno.stat(join(repo, "config"))).size),
          );
          assert.equal(await head.text(), "");
        },
      );

      const refused: [string, number][] = [
        // URL parsing resolves these to /repo/secret/config: the private repository still says no.
        ["/repo/files/../secret/config", 401],
        ["/repo/files/%2e%2e/secret/config", 401],
        ["/repo/files/objects/%2e%2e/%2e%2e/config", 404],
        ["/repo/files/refs/heads/escape", 404],
        ["/repo/files/.lock", 404],
        ["/repo/files/tmp", 404],
        ["/repo/files/objects", 404],
        ["/repo/files/config%00", 404],
        [`/repo/files/${"a/".repeat(600)}x`, 404],
        ["/repo/nope/config", 404],
        ["/repo/..%2Fdata/config", 404],
      ];
      for (const [path, status] of refused) {
        await t.step(`${path.slice(0, 60)} -> ${status}`, async () => {
          const res = await a.req("GET", path);
          const body = await res.text();
          assert.equal(res.status, status);
          assert.doesNotMatch(body, /not for you|\[core\]/);
        });
      }

      await t.step(
        "a private repository needs a download token, as Bearer or basic auth",
        async () => {
          const anon = await a.req("GET", "/repo/secret/config");
          assert.equal(anon.status, 401);
          assert.match(anon.headers.get("www-authenticate") ?? "", /^Basic /);
          const token = await a.token({
            scope: ["download"],
            repos: ["secret"],
          });
          assert.equal(
            (await a.req("GET", "/repo/secret/config", { token })).status,
            200,
          );
          const basic = await a.req("GET", "/repo/secret/config", {
            headers: { Authorization: `Basic ${btoa(`any:${token}`)}` },
          });
          assert.equal(basic.status, 200);
          const wrongRepo = await a.token({
            scope: ["download"],
            repos: ["files"],
          });
          assert.equal(
            (await a.req("GET", "/repo/secret/config", { token: wrongRepo }))
              .status,
            401,
          );
          const noScope = await a.token({
            scope: ["build"],
            repos: ["secret"],
          });
          assert.equal(
            (await a.req("GET", "/repo/secret/config", { token: noScope }))
              .status,
            401,
          );
          const expired = await a.token({
            scope: ["download"],
            repos: ["secret"],
            exp: 1,
          });
          assert.equal(
            (await a.req("GET", "/repo/secret/config", { token: expired }))
              .status,
            401,
          );
          assert.equal(
            (await a.req("GET", "/repo/secret.flatpakrepo")).status,
            401,
          );
          assert.equal(
            (await a.req("GET", "/repo/secret.flatpakrepo", { token })).status,
            200,
          );
        },
      );
      await Deno.remove(tree, { recursive: true });
    } finally {
      await a.close();
    }
  },
);
