/**
 * CDN purge hooks after publishes: configured per repository (validated), run by a job of their
 * own once update-repo has made a publish visible, for exactly the files that changed; retried
 * with backoff; and a purge that keeps failing fails only its own job, never the publish.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dbTest } from "./support/db.ts";
import { expectJson } from "./support/app.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";
import { publishFixture } from "./support/publish.ts";
import { runCdnPurge } from "../jobs/cdn_purge.ts";

/** A CDN stand-in on 127.0.0.1 that records requests and answers `status(url, nth)`. */
async function fakeCdn() {
  const seen: {
    method: string;
    url: string;
    headers: Record<string, string | string[] | undefined>;
  }[] = [];
  let status = (_url: string, _nth: number) => 200;
  const server = createServer((req, res) => {
    const url = req.url ?? "";
    seen.push({ method: req.method ?? "", url, headers: req.headers });
    res.statusCode = status(url, seen.filter((s) => s.url === url).length);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    seen,
    answer(f: (url: string, nth: number) => number) {
      status = f;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

dbTest("PATCH /api/v1/repos/{name} validates cdnPurge hooks", async (db) => {
  const p = await startPipeline(db, "stable", {
    sign: false,
    // The operator's allow-list: the hooks below call cdn.example and api.cdn.example.
    env: { FLATYARD_CDN_HOSTS: "cdn.example, *.cdn.example" },
  });
  try {
    const patch = (cdnPurge: unknown, token = p.session) =>
      p.a.req("PATCH", "/api/v1/repos/stable", {
        token,
        body: { cdnPurge },
      });
    const hook = { method: "PURGE", url: "https://cdn.example/{repo}/{path}" };
    const bad: [string, unknown][] = [
      ["an ftp URL", [{ ...hook, url: "ftp://cdn.example/{path}" }]],
      ["not a URL", [{ ...hook, url: "cdn.example/{path}" }]],
      ["an unknown placeholder", [{ ...hook, url: "https://c.example/{id}" }]],
      ["a stray brace", [{ ...hook, url: "https://c.example/{path" }]],
      ["a placeholder in the host", [{ ...hook, url: "https://{repo}.c/x" }]],
      ["credentials", [{ ...hook, url: "https://u:p@c.example/{path}" }]],
      ["a method outside the list", [{ ...hook, method: "PATCH" }]],
      ["an unknown field", [{ ...hook, extra: {} }]],
      ["too many hooks", Array.from({ length: 11 }, () => hook)],
      ["a Host header", [{ ...hook, headers: { Host: "x" } }]],
      ["a header name with a space", [{ ...hook, headers: { "A B": "x" } }]],
      ["a header value with CRLF", [{ ...hook, headers: { A: "x\r\nB: y" } }]],
      ["an {env:…} placeholder", [{ ...hook, headers: { A: "{env:HOME}" } }]],
      ["a lowercase secret name", [{
        ...hook,
        headers: { A: "{secret:key}" },
      }]],
      ["a header twice", [{ ...hook, headers: { A: "1", a: "2" } }]],
      ["a host off the allow-list", [{
        ...hook,
        url: "http://10.0.0.1/{path}",
      }]],
      ["a look-alike host", [{
        ...hook,
        url: "https://evilcdn.example/{path}",
      }]],
      [
        "nine headers",
        [{
          ...hook,
          headers: Object.fromEntries(
            Array.from({ length: 9 }, (_, i) => [`X-H${i}`, "v"]),
          ),
        }],
      ],
    ];
    for (const [what, value] of bad) {
      const res = await patch(value);
      assert.equal(res.status, 422, what);
      assert.equal(
        res.headers.get("content-type"),
        "application/problem+json",
      );
      await res.body?.cancel();
    }
    const offList = await patch([{
      ...hook,
      url: "http://metadata.internal/x",
    }]);
    assert.equal(offList.status, 422);
    assert.match(
      JSON.stringify(await offList.json()),
      /host \\"metadata.internal\\" is not one FLATYARD_CDN_HOSTS allows/,
    );
    await p.a.user("writer", "viewer", { stable: "write" });
    const writer = await p.a.login("writer");
    assert.equal((await patch([hook], writer)).status, 403);
    const ok = await expectJson(
      await patch([hook, {
        method: "GET",
        url: "https://api.cdn.example/purge?u={url}",
      }]),
      200,
    );
    assert.deepEqual(ok.cdnPurge[0], hook);

    const read = await expectJson(
      await p.a.req("GET", "/api/v1/repos/stable", { token: p.session }),
      200,
    );
    assert.equal(read.cdnPurge.length, 2);
    const withHeaders = {
      ...hook,
      headers: {
        Authorization: "Bearer {secret:FASTLY}",
        "Fastly-Soft-Purge": "1",
      },
    };
    const shown = await expectJson(await patch([withHeaders]), 200);
    assert.deepEqual(
      shown.cdnPurge[0],
      withHeaders,
      "the template is kept and shown, never a secret's value",
    );
  } finally {
    await p.close();
  }
});

dbTest(
  "a publish purges the changed files through each hook; retries; a failing CDN fails only the purge job",
  async (db, t) => {
    const cdn = await fakeCdn();
    const p = await startPipeline(db, "stable", {
      env: {
        FLATYARD_CDN_PURGE_ATTEMPTS: "3",
        FLATYARD_CDN_PURGE_RETRY_MS: "20",
        FLATYARD_CDN_SECRET_TEST: "s3cr3t-token",
      },
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      const arch = hostArch();
      await expectJson(
        await p.a.req("PATCH", "/api/v1/repos/stable", {
          token: p.session,
          body: {
            cdnPurge: [{
              method: "PURGE",
              url: `http://127.0.0.1:${cdn.port}/repo/{repo}/{path}`,
            }],
          },
        }),
        200,
      );
      const always = [
        "summary",
        "summary.sig",
        "summary.idx",
        "summary.idx.sig",
        "config",
      ].map((f) => `/repo/stable/${f}`);
      const publishAndPurge = async () => {
        cdn.seen.length = 0;
        const published = await publishFixture(p, fixture, fixture.commits);
        assert.equal(published.update.status, "succeeded");
        const purgeId = (published.update.result as Record<string, number>)[
          "cdn-purge-job"
        ];
        assert.ok(purgeId, "update-repo queued a purge job");
        const purge = await p.waitJob(purgeId);
        const log = (await p.a.deps.queue.readLog(purgeId)).text;
        return { published, purge, log };
      };

      await t.step(
        "the first publish purges the summary files, config, the new .flatpakref and appstream refs",
        async () => {
          const { purge, log } = await publishAndPurge();
          assert.equal(purge.status, "succeeded", log);
          assert.deepEqual(
            cdn.seen.map((s) => `${s.method} ${s.url}`).sort(),
            [
              ...always,
              `/repo/stable/${fixture.appId}.flatpakref`,
              `/repo/stable/appstream/${fixture.appId}.flatpakref`,
              `/repo/stable/refs/heads/appstream/${arch}`,
              `/repo/stable/refs/heads/appstream2/${arch}`,
            ].map((u) => `PURGE ${u}`).sort(),
          );
          assert.match(log, /: HTTP 200 \(attempt 1\/3\)/);
        },
      );

      await t.step(
        "an unchanged .flatpakref is not purged again; failed attempts are retried",
        async () => {
          cdn.answer((_url, nth) => nth <= 2 ? 503 : 200);
          const { purge, log } = await publishAndPurge();
          assert.equal(purge.status, "succeeded", log);
          const urls = cdn.seen.map((s) => s.url);
          assert.deepEqual([...new Set(urls)].sort(), [...always].sort());
          for (const u of always) {
            assert.equal(urls.filter((x) => x === u).length, 3, u);
          }
          assert.match(
            log,
            /PURGE http:\/\/127\.0\.0\.1:\d+\/repo\/stable\/summary: HTTP 503 \(attempt 1\/3\), retrying in 20 ms/,
          );
          assert.match(
            log,
            /summary: HTTP 503 \(attempt 2\/3\), retrying in 40 ms/,
          );
          assert.match(log, /summary: HTTP 200 \(attempt 3\/3\)/);
        },
      );

      await t.step(
        "a CDN that keeps failing fails the purge job, not the publish",
        async () => {
          cdn.answer(() => 500);
          // A new title changes the app's .flatpakref: two more paths to purge.
          await expectJson(
            await p.a.req("PATCH", "/api/v1/repos/stable", {
              token: p.session,
              body: { title: "Renamed" },
            }),
            200,
          );
          const { published, purge, log } = await publishAndPurge();
          assert.equal(purge.status, "failed");
          assert.match(
            purge.error ?? "",
            /^CDN purge failed for 7 of 7 request\(s\) after 3 attempt\(s\) each: PURGE http:\/\/127\.0\.0\.1:\d+\/repo\/stable\/\S+: HTTP 500/,
          );
          assert.match(log, /HTTP 500 \(attempt 3\/3\), giving up/);
          assert.equal(cdn.seen.length, 21);
          const build = (await p.api("GET", `/api/v1/build/${published.build}`))
            .json;
          assert.equal(build.published_state, 2, "the build stays published");
          const index = await expectJson(
            await p.a.req("GET", "/api/v1/repos/stable/index"),
            200,
          );
          const appRef = `app/${fixture.appId}/${arch}/${fixture.branch}`;
          assert.equal(
            index.apps[0].refs[0].commit.checksum,
            published.refs[appRef],
            "clients see the new commit",
          );
        },
      );

      await t.step(
        "what a failed purge missed is purged with the next publish",
        async () => {
          cdn.answer(() => 200);
          const { purge, log } = await publishAndPurge();
          assert.equal(purge.status, "succeeded", log);
          assert.deepEqual(
            cdn.seen.map((s) => s.url).sort(),
            [
              ...always,
              `/repo/stable/${fixture.appId}.flatpakref`,
              `/repo/stable/appstream/${fixture.appId}.flatpakref`,
            ].sort(),
          );
        },
      );

      await t.step(
        "hook headers go with each request, secrets filled in from the server's environment",
        async () => {
          const setHooks = async (headers: Record<string, string>) =>
            await expectJson(
              await p.a.req("PATCH", "/api/v1/repos/stable", {
                token: p.session,
                body: {
                  cdnPurge: [{
                    method: "POST",
                    url: `http://127.0.0.1:${cdn.port}/purge?u={url}`,
                    headers,
                  }],
                },
              }),
              200,
            );
          await setHooks({
            Authorization: "Bearer {secret:TEST}",
            "X-Purge-Kind": "soft",
          });
          const { purge, log } = await publishAndPurge();
          assert.equal(purge.status, "succeeded", log);
          assert.ok(cdn.seen.length >= always.length);
          for (const s of cdn.seen) {
            assert.equal(s.method, "POST");
            assert.equal(s.headers["authorization"], "Bearer s3cr3t-token");
            assert.equal(s.headers["x-purge-kind"], "soft");
          }
          assert.ok(!log.includes("s3cr3t"), "the secret is never logged");

          // A hook saved before the operator listed the hosts it may call: refused at run time.
          await assert.rejects(
            runCdnPurge(
              {
                db: p.a.deps.db,
                baseUrl: p.base,
                retry: { attempts: 1, retryMs: 0 },
                secrets: { TEST: "s3cr3t-token" },
                hosts: ["cdn.example"],
              },
              { repo: "stable", paths: ["summary"], digests: {} },
              {
                log: () => Promise.resolve(),
                signal: new AbortController().signal,
              },
            ),
            /calls host "127\.0\.0\.1", which FLATYARD_CDN_HOSTS does not allow/,
          );
          cdn.seen.length = 0;

          // A secret this server lacks: the job fails at once, saying which, and sends nothing.
          await setHooks({ Authorization: "Bearer {secret:NOT_SET}" });
          const missing = await publishAndPurge();
          assert.equal(missing.purge.status, "failed");
          assert.match(
            missing.purge.error ?? "",
            /uses \{secret:NOT_SET\}, but FLATYARD_CDN_SECRET_NOT_SET is not set on the server/,
          );
          assert.equal(cdn.seen.length, 0);
        },
      );
    } finally {
      await p.close();
      await cdn.close();
    }
  },
);
