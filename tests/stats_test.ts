/**
 * Download statistics (specs/ecosystem.md §3.3): which served files count and as what, batched
 * flushes that add up across processes, the stats API and the daily files, and the counts a real
 * `flatpak install` and `flatpak update` leave.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Clock } from "../lib/clock.ts";
import type { Db, Executable } from "../lib/db/db.ts";
import { silentLogger } from "../lib/logger.ts";
import { run } from "../lib/ostree/cli.ts";
import { classifyDownload } from "../lib/stats/counting.ts";
import { DownloadStats } from "../lib/stats/download_stats.ts";
import { expectJson, testApp } from "./support/app.ts";
import { addRemote, installFrom } from "./support/flatpak_client.ts";
import { dbTest } from "./support/db.ts";
import {
  cachedFixtureRepo,
  hostArch,
  isolatedFlatpakEnv,
  PLATFORM_ID,
} from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";

const OLD = "cd".repeat(32);
const COMMIT_PATH = `objects/ab/${"ab".repeat(31)}.commit`;
// Delta names are modified base64 of the commits, split after two characters.
const SCRATCH =
  "deltas/q8/vLzr-abc_def+ghijklmnopqrstuvwxyzABCDEFGHIJKLMN/superblock"
    .replace("-", "");
const FROM_TO =
  "deltas/zU/3N_hijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV-q8vLzrabc_def+ghijklmnopqrstuvwxyzABCDEFGHIJKLMN/superblock";
const APP = "app/org.example.Hello/x86_64/stable";
const AGENT = "libostree/2022.7 flatpak/1.14.10";

function h(headers: Record<string, string>): Headers {
  return new Headers(headers);
}

function fixedClock(iso: string): Clock & { set(iso: string): void } {
  let now = new Date(iso);
  return { now: () => now, set: (s) => void (now = new Date(s)) };
}

Deno.test("classifyDownload counts what Flathub counts", async (t) => {
  const cases: [string, string, Record<string, string>, unknown][] = [
    ["the commit object of an install", COMMIT_PATH, { "Flatpak-Ref": APP }, {
      kind: "app",
      name: "org.example.Hello",
      arch: "x86_64",
      branch: "stable",
      update: false,
      delta: false,
    }],
    ["a from-scratch delta superblock", SCRATCH, { "Flatpak-Ref": APP }, {
      update: false,
      delta: false,
    }],
    ["a from→to delta superblock is an update", FROM_TO, {
      "Flatpak-Ref": APP,
    }, { update: true, delta: true }],
    ["Flatpak-Upgrade-From makes an update", COMMIT_PATH, {
      "Flatpak-Ref": APP,
      "Flatpak-Upgrade-From": OLD,
    }, { update: true, delta: false }],
    ["a malformed Flatpak-Upgrade-From is ignored", COMMIT_PATH, {
      "Flatpak-Ref": APP,
      "Flatpak-Upgrade-From": "yesterday",
    }, { update: false }],
    ["a runtime keeps its branch", SCRATCH, {
      "Flatpak-Ref": "runtime/org.example.Platform/aarch64/23.08",
    }, {
      kind: "runtime",
      name: "org.example.Platform",
      arch: "aarch64",
      branch: "23.08",
    }],
    ["client versions come from the User-Agent", COMMIT_PATH, {
      "Flatpak-Ref": APP,
      "User-Agent": AGENT,
    }, { ostreeVersion: "2022.7", flatpakVersion: "1.14.10" }],
  ];
  for (const [name, path, headers, expected] of cases) {
    await t.step(name, () => {
      const d = classifyDownload(path, h(headers));
      assert.ok(d, "counted");
      assert.deepEqual(
        Object.fromEntries(
          Object.keys(expected as object).map((
            k,
          ) => [k, d[k as keyof typeof d]]),
        ),
        expected,
      );
    });
  }
  const ignored: [string, string, Record<string, string>][] = [
    ["no Flatpak-Ref (ostree pull)", COMMIT_PATH, {}],
    ["a malformed Flatpak-Ref", COMMIT_PATH, { "Flatpak-Ref": "app/hello" }],
    ["a ref of another kind", COMMIT_PATH, {
      "Flatpak-Ref": "appstream2/x86_64",
    }],
    ["commit metadata", `objects/ab/${"ab".repeat(31)}.commitmeta`, {
      "Flatpak-Ref": APP,
    }],
    ["a dirtree", `objects/ab/${"ab".repeat(31)}.dirtree`, {
      "Flatpak-Ref": APP,
    }],
    ["a delta part", SCRATCH.replace("superblock", "0"), {
      "Flatpak-Ref": APP,
    }],
    ["the summary", "summary.idx", { "Flatpak-Ref": APP }],
    ["config", "config", { "Flatpak-Ref": APP }],
    ["a .Locale runtime", SCRATCH, {
      "Flatpak-Ref": "runtime/org.example.Hello.Locale/x86_64/stable",
    }],
    ["a .Debug runtime", SCRATCH, {
      "Flatpak-Ref": "runtime/org.example.Hello.Debug/x86_64/stable",
    }],
  ];
  for (const [name, path, headers] of ignored) {
    await t.step(`ignores ${name}`, () => {
      assert.equal(classifyDownload(path, h(headers)), undefined);
    });
  }
});

async function addRepo(db: Db, name: string, isPublic = true): Promise<void> {
  await db.query(
    `INSERT INTO repos (name, public, delta_policy) VALUES ($1, $2, '{}'::jsonb)`,
    [name, isPublic],
  );
}

async function counters(db: Db) {
  return await db.query<
    {
      day: string;
      name: string;
      arch: string;
      installs: number;
      updates: number;
      delta_downloads: number;
    }
  >(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day, name, arch, installs, updates, delta_downloads
       FROM download_stats ORDER BY day, name, arch`,
  );
}

/** Counts the transactions and statements sent to `db`. */
function countingDb(db: Db): Db & { transactions: number; statements: number } {
  const counted = {
    transactions: 0,
    statements: 0,
    kind: db.kind,
    query: (sql: string, params?: readonly unknown[]) => {
      counted.statements++;
      return db.query(sql, params);
    },
    exec: (sql: string) => db.exec(sql),
    transaction: <T>(fn: (tx: Executable) => Promise<T>) => {
      counted.transactions++;
      return db.transaction((tx) =>
        fn({
          query: (sql, params) => {
            counted.statements++;
            return tx.query(sql, params);
          },
          exec: (sql) => tx.exec(sql),
        })
      );
    },
    close: () => db.close(),
  };
  return counted as Db & { transactions: number; statements: number };
}

dbTest(
  "observations are summed in memory and written in one flush",
  async (db) => {
    await addRepo(db, "stable");
    const cdb = countingDb(db);
    const clock = fixedClock("2026-03-04T10:00:00Z");
    const stats = new DownloadStats(cdb, clock, silentLogger, {
      flushMs: 3_600_000,
    });
    for (let i = 0; i < 50; i++) {
      stats.observe(
        "stable",
        COMMIT_PATH,
        h({ "Flatpak-Ref": APP, "User-Agent": AGENT }),
      );
      stats.observe("stable", FROM_TO, h({ "Flatpak-Ref": APP }));
      stats.observe("stable", "config", h({ "Flatpak-Ref": APP }));
    }
    stats.observe(
      "stable",
      SCRATCH,
      h({
        "Flatpak-Ref": "runtime/org.example.Platform/aarch64/1",
      }),
    );
    // A repository nobody knows is dropped at flush, not an error.
    stats.observe("nosuch", COMMIT_PATH, h({ "Flatpak-Ref": APP }));
    assert.equal(cdb.statements, 0, "observing writes nothing");
    await stats.flush();
    assert.equal(cdb.transactions, 1);
    assert.equal(cdb.statements, 2, "one statement per table");
    assert.deepEqual(await counters(db), [
      {
        day: "2026-03-04",
        name: "org.example.Hello",
        arch: "x86_64",
        installs: 50,
        updates: 50,
        delta_downloads: 50,
      },
      {
        day: "2026-03-04",
        name: "org.example.Platform",
        arch: "aarch64",
        installs: 1,
        updates: 0,
        delta_downloads: 0,
      },
    ]);
    await stats.flush();
    assert.equal(cdb.transactions, 1, "nothing pending, nothing written");
    // Counts land on the UTC day they happened.
    clock.set("2026-03-05T00:00:01Z");
    stats.observe("stable", COMMIT_PATH, h({ "Flatpak-Ref": APP }));
    await stats.flush();
    assert.equal((await counters(db)).length, 3);
  },
);

dbTest(
  "stop flushes what is pending; flushes of several processes add up",
  async (db) => {
    await addRepo(db, "stable");
    const clock = fixedClock("2026-03-04T10:00:00Z");
    const one = new DownloadStats(db, clock, silentLogger, {
      flushMs: 3_600_000,
    });
    const two = new DownloadStats(db, clock, silentLogger, {
      flushMs: 3_600_000,
    });
    one.start();
    two.start();
    for (let i = 0; i < 3; i++) {
      one.observe(
        "stable",
        COMMIT_PATH,
        h({ "Flatpak-Ref": APP }),
      );
    }
    for (let i = 0; i < 4; i++) {
      two.observe(
        "stable",
        COMMIT_PATH,
        h({ "Flatpak-Ref": APP }),
      );
    }
    await Promise.all([one.stop(), two.stop()]);
    assert.deepEqual((await counters(db)).map((r) => r.installs), [7]);
    assert.equal(one.pending + two.pending, 0);
  },
);

dbTest("a failed flush keeps its counts for the next one", async (db) => {
  await addRepo(db, "stable");
  const clock = fixedClock("2026-03-04T10:00:00Z");
  let fail = true;
  const flaky = {
    ...db,
    kind: db.kind,
    query: db.query.bind(db),
    exec: db.exec.bind(db),
    close: db.close.bind(db),
    transaction: <T>(fn: (tx: Executable) => Promise<T>) =>
      fail ? Promise.reject(new Error("connection lost")) : db.transaction(fn),
  } as Db;
  const stats = new DownloadStats(flaky, clock, silentLogger);
  stats.observe("stable", COMMIT_PATH, h({ "Flatpak-Ref": APP }));
  await assert.rejects(stats.flush(), /connection lost/);
  stats.observe("stable", COMMIT_PATH, h({ "Flatpak-Ref": APP }));
  fail = false;
  await stats.flush();
  assert.deepEqual((await counters(db)).map((r) => r.installs), [2]);
});

dbTest("the stats API and the daily files", async (db, t) => {
  const clock = fixedClock("2026-03-04T10:00:00Z");
  const a = await testApp(db, { clock });
  try {
    await a.user("root", "admin");
    const session = await a.login("root");
    for (
      const [name, isPublic] of [["stable", true], ["secret", false]] as const
    ) {
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: session,
          body: { name, public: isPublic },
        }),
        201,
      );
    }
    const stats = a.deps.downloads;
    assert.ok(stats instanceof DownloadStats);
    const see = (
      repo: string,
      path: string,
      headers: Record<string, string>,
      n = 1,
    ) => {
      for (let i = 0; i < n; i++) stats.observe(repo, path, h(headers));
    };
    clock.set("2026-03-03T12:00:00Z");
    see("stable", COMMIT_PATH, { "Flatpak-Ref": APP, "User-Agent": AGENT }, 2);
    see("stable", COMMIT_PATH, {
      "Flatpak-Ref": "app/org.example.Hello/aarch64/stable",
    });
    see("stable", SCRATCH, {
      "Flatpak-Ref": "runtime/org.example.Platform/x86_64/1",
    }, 3);
    clock.set("2026-03-04T10:00:00Z");
    see("stable", FROM_TO, { "Flatpak-Ref": APP, "User-Agent": AGENT });
    see("secret", COMMIT_PATH, { "Flatpak-Ref": APP });
    await stats.flush();

    await t.step("GET /api/v1/repos/{name}/apps/{appId}/stats", async () => {
      const body = await expectJson(
        await a.req(
          "GET",
          "/api/v1/repos/stable/apps/org.example.Hello/stats?from=2026-03-01",
        ),
        200,
      );
      assert.deepEqual(body, {
        repo: "stable",
        appId: "org.example.Hello",
        from: "2026-03-01",
        to: "2026-03-04",
        totals: { installs: 3, updates: 1, downloads: 4 },
        arches: {
          aarch64: { installs: 1, updates: 0, downloads: 1 },
          x86_64: { installs: 2, updates: 1, downloads: 3 },
        },
        days: [
          {
            date: "2026-03-03",
            arch: "aarch64",
            installs: 1,
            updates: 0,
            downloads: 1,
          },
          {
            date: "2026-03-03",
            arch: "x86_64",
            installs: 2,
            updates: 0,
            downloads: 2,
          },
          {
            date: "2026-03-04",
            arch: "x86_64",
            installs: 0,
            updates: 1,
            downloads: 1,
          },
        ],
      });
      const narrow = await expectJson(
        await a.req(
          "GET",
          "/api/v1/repos/stable/apps/org.example.Hello/stats?from=2026-03-04&to=2026-03-04",
        ),
        200,
      );
      assert.deepEqual(narrow.totals, {
        installs: 0,
        updates: 1,
        downloads: 1,
      });
    });

    await t.step("GET /api/v1/repos/{name}/stats", async () => {
      const body = await expectJson(
        await a.req("GET", "/api/v1/repos/stable/stats"),
        200,
      );
      assert.equal(body.from, "2026-02-03", "30 days up to today by default");
      assert.deepEqual(body.totals, { installs: 6, updates: 1, downloads: 7 });
      assert.deepEqual(body.days, [
        { date: "2026-03-03", installs: 6, updates: 0, downloads: 6 },
        { date: "2026-03-04", installs: 0, updates: 1, downloads: 1 },
      ]);
      assert.deepEqual(body.refs, [
        {
          kind: "app",
          id: "org.example.Hello",
          installs: 3,
          updates: 1,
          downloads: 4,
        },
        {
          kind: "runtime",
          id: "org.example.Platform",
          installs: 3,
          updates: 0,
          downloads: 3,
        },
      ]);
    });

    await t.step(
      "GET /stats/{repo}/YYYY/MM/DD.json in Flathub's format",
      async () => {
        const past = await a.req("GET", "/stats/stable/2026/03/03.json");
        assert.equal(
          past.headers.get("cache-control"),
          "public, max-age=31536000, immutable",
        );
        assert.deepEqual(await expectJson(past, 200), {
          date: "2026/03/03",
          downloads: 6,
          updates: 0,
          delta_downloads: 0,
          ostree_versions: { "2022.7": 2 },
          flatpak_versions: { "1.14.10": 2 },
          refs: {
            "org.example.Hello": { aarch64: [1, 0], x86_64: [2, 0] },
            "org.example.Platform/1": { x86_64: [3, 0] },
          },
          countries: {},
        });
        const today = await a.req("GET", "/stats/stable/2026/03/04.json");
        assert.equal(today.headers.get("cache-control"), "public, max-age=300");
        const body = await expectJson(today, 200);
        assert.deepEqual(
          [body.downloads, body.updates, body.delta_downloads, body.refs],
          [1, 1, 1, { "org.example.Hello": { x86_64: [1, 1] } }],
        );
        const empty = await expectJson(
          await a.req("GET", "/stats/stable/2026/01/01.json"),
          200,
        );
        assert.deepEqual([empty.date, empty.downloads, empty.refs], [
          "2026/01/01",
          0,
          {},
        ]);
      },
    );

    await t.step("errors", async () => {
      for (
        const [path, status] of [
          ["/stats/stable/2026/03/05.json", 404], // the future
          ["/stats/stable/2026/02/30.json", 404],
          ["/stats/stable/2026/03/4.json", 422],
          ["/stats/nosuch/2026/03/04.json", 404],
          ["/api/v1/repos/nosuch/stats", 404],
          ["/api/v1/repos/stable/stats?from=2026-03-04&to=2026-03-01", 422],
          ["/api/v1/repos/stable/stats?from=2024-01-01&to=2026-03-01", 422],
          ["/api/v1/repos/stable/stats?from=2026-02-31", 422],
          ["/api/v1/repos/stable/apps/hello/stats", 422],
        ] as const
      ) {
        const res = await a.req("GET", path);
        assert.equal(res.status, status, `${path}: ${await res.text()}`);
      }
    });

    await t.step(
      "a private repository's statistics need read access",
      async () => {
        for (
          const path of [
            "/api/v1/repos/secret/stats",
            "/api/v1/repos/secret/apps/org.example.Hello/stats",
            "/stats/secret/2026/03/04.json",
          ]
        ) {
          assert.equal((await a.req("GET", path)).status, 404, path);
          const other = await a.token({
            repos: ["stable"],
            scope: ["download"],
          });
          assert.equal(
            (await a.req("GET", path, { token: other })).status,
            404,
            path,
          );
          const res = await a.req("GET", path, { token: session });
          assert.equal(res.status, 200, path);
          await res.body?.cancel();
        }
        const res = await a.req("GET", "/stats/secret/2026/03/04.json", {
          token: session,
        });
        assert.equal(res.headers.get("cache-control"), "private, max-age=300");
        assert.equal((await res.json()).downloads, 1);
        const reader = await a.token({
          repos: ["secret"],
          scope: ["download"],
        });
        const viaToken = await a.req("GET", "/api/v1/repos/secret/stats", {
          token: reader,
        });
        assert.equal((await expectJson(viaToken, 200)).totals.downloads, 1);
      },
    );
  } finally {
    await a.close();
  }
});

dbTest(
  "flatpak install and update are counted once per ref, in the API and the daily file",
  async (db) => {
    const p = await startPipeline(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-stats-" });
    const arch = hostArch();
    try {
      const publish = async () => {
        const { code, err } = await p.pushWithCli(fixture.repo, fixture.appId);
        assert.equal(code, 0, err);
      };
      const stats = p.a.deps.downloads;
      assert.ok(stats instanceof DownloadStats);
      // No periodic flush in this test: it flushes when it says so (observations still count).
      await stats.stop();
      await publish();
      const env = await isolatedFlatpakEnv(join(work, "client"));
      await addRemote(env, "yard", `${p.base}/repo/stable.flatpakrepo`);
      await installFrom(env, "yard", fixture.appId);
      await stats.flush();
      const app = `/api/v1/repos/stable/apps/${fixture.appId}/stats`;
      let res = await p.api("GET", app);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json.totals, {
        installs: 1,
        updates: 0,
        downloads: 1,
      });
      assert.deepEqual(Object.keys(res.json.arches), [arch]);
      res = await p.api(
        "GET",
        `/api/v1/repos/stable/apps/${PLATFORM_ID}/stats`,
      );
      assert.deepEqual(res.json.totals, {
        installs: 1,
        updates: 0,
        downloads: 1,
      });

      await publish();
      await run("flatpak", ["--user", "update", "-y", "--noninteractive"], {
        env,
      });
      // Nothing is written until the flush.
      res = await p.api("GET", app);
      assert.deepEqual(res.json.totals.updates, 0);
      await stats.flush();
      res = await p.api("GET", app);
      assert.deepEqual(res.json.totals, {
        installs: 1,
        updates: 1,
        downloads: 2,
      });

      const today = p.a.deps.clock.now().toISOString().slice(0, 10);
      const file = await fetch(
        `${p.base}/stats/stable/${today.replaceAll("-", "/")}.json`,
      );
      assert.equal(file.status, 200);
      assert.equal(file.headers.get("cache-control"), "public, max-age=300");
      const day = await file.json();
      assert.equal(day.date, today.replaceAll("-", "/"));
      assert.deepEqual(day.refs[fixture.appId], { [arch]: [2, 1] });
      const runtime = day.refs[`${PLATFORM_ID}/${fixture.runtimeVersion}`];
      assert.equal(
        runtime[arch][0] - runtime[arch][1],
        1,
        "the runtime was installed once",
      );
      assert.equal(
        day.delta_downloads >= 1,
        true,
        "the update came through a delta",
      );
      assert.ok(Object.keys(day.flatpak_versions).length > 0);
      assert.deepEqual(day.countries, {});
    } finally {
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
