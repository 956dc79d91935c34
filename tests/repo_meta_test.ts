/**
 * Repository metadata as clients and catalogs read it, after a real publish: the JSON index,
 * the appstream catalog and icons per arch, and each app's `.flatpakref`, by the repository's
 * visibility, with strict paths.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { expectJson } from "./support/app.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";
import { addAppstream, publishFixture } from "./support/publish.ts";
import { ostree } from "../lib/ostree/cli.ts";

async function gunzip(res: Response): Promise<string> {
  return await new Response(
    res.body!.pipeThrough(new DecompressionStream("gzip")),
  ).text();
}

dbTest(
  "GET index, appstream, icons and .flatpakref after a publish, by visibility",
  async (db, t) => {
    const p = await startPipeline(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      const arch = hostArch();
      const appRef = `app/${fixture.appId}/${arch}/${fixture.branch}`;
      const { commit, icons } = await addAppstream(fixture, appRef);
      const published = await publishFixture(p, fixture, {
        ...fixture.commits,
        [appRef]: commit,
      });
      assert.equal(published.update.status, "succeeded");
      const main = join(p.a.deps.config.dataDir, "repos", "stable");
      const get = (path: string, headers: Record<string, string> = {}) =>
        fetch(p.base + path, { headers });

      await t.step(
        "GET /api/v1/repos/{name}/index lists apps and runtimes as published",
        async () => {
          const res = await get("/api/v1/repos/stable/index");
          const index = await expectJson(res, 200);
          assert.equal(index.repo, "stable");
          assert.ok(index.updatedAt);
          assert.deepEqual(
            index.apps.map((a: { id: string }) => a.id),
            [fixture.appId],
          );
          assert.deepEqual(
            index.runtimes.map((r: { id: string }) => r.id),
            ["org.example.BusyBoxPlatform", "org.example.BusyBoxSdk"],
          );
          const app = index.apps[0];
          assert.equal(app.kind, "app");
          assert.equal(app.name, "Hello");
          assert.equal(app.summary, "Says hello & goodbye");
          assert.deepEqual(app.arches, [arch]);
          assert.deepEqual(app.branches, [fixture.branch]);
          assert.equal(app.refs.length, 1);
          const ref = app.refs[0];
          assert.equal(ref.ref, appRef);
          assert.equal(ref.commit.checksum, published.refs[appRef]);
          assert.equal(ref.commit.subject, `Export ${fixture.appId}`);
          assert.ok(!Number.isNaN(Date.parse(ref.commit.timestamp)));
          const size = async (key: string) =>
            Number(
              (await ostree(main, [
                "show",
                `--print-metadata-key=${key}`,
                published.refs[appRef]!,
              ])).trim().replace(/^uint64 /, ""),
            );
          assert.equal(ref.installedSize, await size("xa.installed-size"));
          assert.equal(ref.downloadSize, await size("xa.download-size"));
          assert.ok(ref.installedSize > 0 && ref.downloadSize > 0);
          assert.equal(ref.endOfLife, null);
          assert.equal(ref.endOfLifeRebase, null);
          const platform = index.runtimes[0];
          assert.equal(platform.kind, "runtime");
          assert.equal(
            platform.name,
            null,
            "the runtime has no appstream data",
          );
          assert.deepEqual(platform.branches, [fixture.runtimeVersion]);
        },
      );

      await t.step(
        "GET …/appstream/{arch}/appstream.xml.gz is the published catalog, with its commit as ETag",
        async () => {
          const res = await get(
            `/api/v1/repos/stable/appstream/${arch}/appstream.xml.gz`,
          );
          assert.equal(res.status, 200);
          assert.equal(res.headers.get("content-type"), "application/gzip");
          assert.equal(res.headers.get("content-encoding"), null);
          const xml = await gunzip(res);
          assert.match(xml, new RegExp(`<id>${fixture.appId}</id>`));
          assert.match(xml, new RegExp(`>${appRef}</bundle>`));
          const commit =
            (await ostree(main, ["rev-parse", `appstream2/${arch}`]))
              .trim();
          assert.equal(res.headers.get("etag"), `"${commit}"`);
          const again = await get(
            `/api/v1/repos/stable/appstream/${arch}/appstream.xml.gz`,
            { "If-None-Match": `"${commit}"` },
          );
          assert.equal(again.status, 304);
          await again.body?.cancel();
        },
      );

      await t.step(
        "GET …/icons/{size}/{file} serves the app's icons",
        async () => {
          for (const size of ["64x64", "128x128"]) {
            const res = await get(
              `/api/v1/repos/stable/appstream/${arch}/icons/${size}/${fixture.appId}.png`,
            );
            assert.equal(res.status, 200, size);
            assert.equal(res.headers.get("content-type"), "image/png");
            assert.deepEqual(
              new Uint8Array(await res.arrayBuffer()),
              icons[size],
            );
          }
        },
      );

      await t.step(
        "GET /repo/{name}/{id}.flatpakref serves the app's .flatpakref",
        async () => {
          const res = await get(`/repo/stable/${fixture.appId}.flatpakref`);
          assert.equal(res.status, 200);
          assert.equal(
            res.headers.get("content-type"),
            "application/vnd.flatpak.ref",
          );
          assert.equal(res.headers.get("cache-control"), "public, max-age=300");
          const text = await res.text();
          assert.match(text, /^\[Flatpak Ref\]\n/);
          for (
            const line of [
              `Name=${fixture.appId}`,
              `Branch=${fixture.branch}`,
              "IsRuntime=false",
              `Url=${p.base}/repo/stable`,
              "SuggestRemoteName=stable",
              `RuntimeRepo=${p.base}/repo/stable.flatpakrepo`,
            ]
          ) assert.ok(text.includes(`\n${line}\n`), `${line} in\n${text}`);
          assert.match(text, /\nGPGKey=[A-Za-z0-9+/=]{40,}\n/);
          // The generic file routes still answer everything else.
          const summary = await get("/repo/stable/summary.idx");
          assert.equal(summary.status, 200);
          await summary.body?.cancel();
        },
      );

      await t.step("unknown and malformed paths are refused", async () => {
        const cases: [string, number][] = [
          ["/repo/stable/org.example.Nope.flatpakref", 404],
          ["/repo/stable/org.example.flatpakref", 404],
          ["/repo/stable/.hidden.x.y.flatpakref", 404],
          ["/repo/nope/org.example.Hello.flatpakref", 404],
          ["/api/v1/repos/nope/index", 404],
          ["/api/v1/repos/stable/appstream/nope/appstream.xml.gz", 404],
          ["/api/v1/repos/stable/appstream/x86%2F64/appstream.xml.gz", 422],
          ["/api/v1/repos/stable/appstream/x86.64/appstream.xml.gz", 422],
          [`/api/v1/repos/stable/appstream/${arch}/icons/32x32/a.png`, 422],
          [`/api/v1/repos/stable/appstream/${arch}/icons/flatpak/a.png`, 422],
          [`/api/v1/repos/stable/appstream/${arch}/icons/64x64/a.svg`, 422],
          [
            `/api/v1/repos/stable/appstream/${arch}/icons/64x64/..%2F..%2Fappstream.xml.png`,
            422,
          ],
          [`/api/v1/repos/stable/appstream/${arch}/icons/64x64/.x.png`, 422],
          [
            `/api/v1/repos/stable/appstream/${arch}/icons/64x64/org.example.Nope.png`,
            404,
          ],
        ];
        for (const [path, status] of cases) {
          const res = await get(path);
          assert.equal(res.status, status, path);
          await res.body?.cancel();
        }
      });

      await t.step(
        "a private repository refuses anonymous readers",
        async () => {
          await expectJson(
            await p.a.req("PATCH", "/api/v1/repos/stable", {
              token: p.session,
              body: { public: false },
            }),
            200,
          );
          const paths = [
            "/api/v1/repos/stable/index",
            `/api/v1/repos/stable/appstream/${arch}/appstream.xml.gz`,
            `/api/v1/repos/stable/appstream/${arch}/icons/64x64/${fixture.appId}.png`,
          ];
          for (const path of paths) {
            const anon = await get(path);
            assert.equal(anon.status, 404, path);
            await anon.body?.cancel();
            const other = await p.a.token({
              scope: ["download"],
              repos: ["other"],
            });
            const wrong = await get(path, { Authorization: `Bearer ${other}` });
            assert.equal(
              wrong.status,
              404,
              `${path} with another repo's token`,
            );
            await wrong.body?.cancel();
            const ok = await get(path, {
              Authorization: `Bearer ${p.session}`,
            });
            assert.equal(ok.status, 200, path);
            assert.match(ok.headers.get("cache-control") ?? "", /^private/);
            await ok.body?.cancel();
          }
          const ref = `/repo/stable/${fixture.appId}.flatpakref`;
          const anon = await get(ref);
          assert.equal(anon.status, 401);
          assert.match(anon.headers.get("www-authenticate") ?? "", /^Basic /);
          await anon.body?.cancel();
          const bad = await get(ref, { Authorization: "Bearer nonsense" });
          assert.equal(bad.status, 401);
          await bad.body?.cancel();
          const download = await p.a.token({
            name: "download",
            sub: "download",
            scope: ["download"],
            repos: ["stable"],
          });
          const ok = await get(ref, {
            Authorization: `Basic ${btoa(`x:${download}`)}`,
          });
          assert.equal(ok.status, 200);
          assert.equal(ok.headers.get("cache-control"), "private, max-age=300");
          await ok.body?.cancel();
        },
      );
    } finally {
      await p.close();
    }
  },
);
