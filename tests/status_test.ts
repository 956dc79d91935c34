/**
 * flat-manager's status pages (specs/flat-manager-api.md §4.7): the active jobs, one job's
 * contents, log and results, every value HTML-escaped and credential-like payload keys masked.
 */
import assert from "node:assert/strict";
import { createApp } from "../lib/app.ts";
import { createStatusRoutes, redactSecrets } from "../routes/status.ts";
import { dbTest } from "./support/db.ts";
import { testApp } from "./support/app.ts";

const SCRIPT = `<script>alert("pwned")</script>`;

Deno.test("redactSecrets masks values of credential-like keys at any depth, but not numbers", () => {
  assert.deepEqual(
    redactSecrets({
      build: 4,
      token: "t",
      token_type: 0,
      tokens: ["a"],
      list: [{ apiSecret: "s", name: "n" }],
      nested: { Passphrase: "p", deeper: { password: "x", repo: "stable" } },
    }),
    {
      build: 4,
      token: "[redacted]",
      token_type: 0,
      tokens: "[redacted]",
      list: [{ apiSecret: "[redacted]", name: "n" }],
      nested: {
        Passphrase: "[redacted]",
        deeper: { password: "[redacted]", repo: "stable" },
      },
    },
  );
  assert.equal(redactSecrets("token"), "token");
});

dbTest(
  "GET /status and /status/<id> show jobs, escaped, without credentials",
  async (db, t) => {
    const a = await testApp(db);
    const app = createApp(a.deps);
    app.route("/", createStatusRoutes(a.deps));
    const get = (path: string) => Promise.resolve(app.request(path));
    const q = a.deps.queue;
    try {
      const commit = await q.enqueue("commit", {
        build: 7,
        note: `</pre>${SCRIPT}`,
        token: "s3cret-token-value",
        nested: { passphrase: "hunter2" },
      });
      await q.appendLog(commit.id, `Committing ref ${SCRIPT}\n`);
      const publish = await q.enqueue("publish", { build: 7 }, {
        serialKey: "repo:stable",
      });
      const done = await q.enqueue("update-repo", { repo: "stable" });
      const maintenance = await q.enqueue("maintenance", {});
      assert.equal((await q.claim("w", ["update-repo"], 30))?.id, done.id);
      await q.complete(done.id, "w", { "<b>": "bold" });
      assert.equal((await q.claim("w", ["commit"], 30))?.id, commit.id);

      await t.step("/status lists the active jobs in id order", async () => {
        const res = await get("/status");
        assert.equal(res.status, 200);
        assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
        const page = await res.text();
        assert.match(page, /<meta http-equiv="refresh" content="5">/);
        assert.match(page, /Flatyard version: \d+\.\d+\.\d+/);
        const rows = [...page.matchAll(
          /<tr>\s*<td><a href="\/status\/(\d+)">\1<\/a><\/td>\s*<td>([^<]*)<\/td>\s*<td>([^<]*)<\/td>\s*<\/tr>/g,
        )].map((m) => [Number(m[1]), m[2], m[3]]);
        assert.deepEqual(rows, [
          [commit.id, "Commit", "Started"],
          [publish.id, "Publish", "New"],
          [maintenance.id, "maintenance", "New"],
        ]);
      });

      await t.step(
        "a running job's page escapes its payload and log, masks credentials, and refreshes",
        async () => {
          const res = await get(`/status/${commit.id}`);
          assert.equal(res.status, 200);
          const page = await res.text();
          assert.match(page, new RegExp(`<title>Job ${commit.id}</title>`));
          assert.match(
            page,
            new RegExp(`<h1>Job ${commit.id} - Commit: Started</h1>`),
          );
          assert.match(page, /<meta http-equiv="refresh" content="5">/);
          assert.doesNotMatch(page, /<script>/);
          assert.equal(page.match(/<\/pre>/g)?.length, 3, "no early </pre>");
          assert.match(
            page,
            /Committing ref &lt;script&gt;alert\(&quot;pwned&quot;\)&lt;\/script&gt;/,
          );
          assert.match(page, /&lt;\/pre&gt;&lt;script&gt;/);
          assert.doesNotMatch(page, /s3cret-token-value|hunter2/);
          assert.match(page, /&quot;token&quot;:&quot;\[redacted\]&quot;/);
          assert.match(page, /&quot;build&quot;:7/);
          assert.match(page, /Results:\s*<pre><\/pre>/);
        },
      );

      await t.step(
        "an ended job's page shows its results, escaped, and stops refreshing",
        async () => {
          const page = await (await get(`/status/${done.id}`)).text();
          assert.match(page, new RegExp(`Job ${done.id} - UpdateRepo: Ended`));
          assert.doesNotMatch(page, /http-equiv="refresh"/);
          assert.match(
            page,
            /<pre>\{&quot;&lt;b&gt;&quot;:&quot;bold&quot;\}<\/pre>/,
          );
        },
      );

      await t.step(
        "a failed job is Broken with its error message",
        async () => {
          await q.fail(commit.id, "w", "Commit failed: <oops>", {
            permanent: true,
          });
          const page = await (await get(`/status/${commit.id}`)).text();
          assert.match(page, new RegExp(`Job ${commit.id} - Commit: Broken`));
          assert.match(
            page,
            /\{&quot;error-message&quot;:&quot;Commit failed: &lt;oops&gt;&quot;\}/,
          );
          const list = await (await get("/status")).text();
          assert.doesNotMatch(list, new RegExp(`href="/status/${commit.id}"`));
        },
      );

      await t.step("an unknown job is flat-manager's 404 JSON", async () => {
        for (const path of ["/status/999999", "/status/abc", "/status/1x"]) {
          const res = await get(path);
          assert.equal(res.status, 404, path);
          assert.deepEqual(await res.json(), {
            status: 404,
            "error-type": "not-found",
            message: "Not found",
          });
        }
      });
    } finally {
      await a.close();
    }
  },
);
