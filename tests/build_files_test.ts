/**
 * Serving build repositories under /build-repo/<id>/ (specs/flat-manager-api.md §3.3): a
 * committed build that flatpak installs and runs from its `.flatpakrepo`, objects it lacks from
 * the main repository, download tokens for private builds, and no way out of either repository.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../lib/app.ts";
import { ostree, run } from "../lib/ostree/cli.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { createBuildFileRoutes } from "../routes/build_files.ts";
import { dbTest } from "./support/db.ts";
import { expectJson, type TestApp, testApp } from "./support/app.ts";
import {
  cachedFixtureRepo,
  helloOutput,
  hostArch,
  isolatedFlatpakEnv,
} from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";

const APP_ID = "org.example.Hello";

/** createApp plus the build file routes (until lib/app.ts mounts them). */
function buildFileApp(a: TestApp) {
  const app = createApp(a.deps);
  app.route("/", createBuildFileRoutes(a.deps));
  return (path: string, init: RequestInit = {}) =>
    Promise.resolve(app.request(path, init));
}

/** Commits a one-file tree to `repo` and returns the commit's object path. */
async function commitTree(
  repo: string,
  branch: string,
  content: string,
): Promise<string> {
  const tree = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(tree, "f"), content);
    const commit = (await ostree(repo, [
      "commit",
      "-b",
      branch,
      `--tree=dir=${tree}`,
      "-s",
      content,
    ])).trim();
    return `objects/${commit.slice(0, 2)}/${commit.slice(2)}.commit`;
  } finally {
    await Deno.remove(tree, { recursive: true });
  }
}

dbTest(
  "GET /build-repo/<id>/<path> needs the right token for private builds, falls back to the main repository for objects, and never leaves either",
  async (db, t) => {
    const a = await testApp(db);
    const get = buildFileApp(a);
    try {
      await a.user("root", "admin");
      const s = await a.login("root");
      for (
        const body of [{ name: "stable" }, { name: "hidden", public: false }]
      ) {
        await expectJson(
          await a.req("POST", "/api/v1/repos", { token: s, body }),
          201,
        );
      }
      const admin = await a.token();
      const create = async (body: Record<string, unknown>) =>
        (await expectJson(
          await a.req("POST", "/api/v1/build", { token: admin, body }),
          200,
        )) as { id: number; public_download: boolean };
      const pub = await create({ repo: "stable" });
      const priv = await create({ repo: "stable", "app-id": APP_ID });
      const inHidden = await create({ repo: "hidden" });
      assert.deepEqual(
        [pub.public_download, priv.public_download, inHidden.public_download],
        [true, false, true],
      );
      const data = a.deps.config.dataDir;
      const mainRepo = join(data, "repos", "stable");
      const pubRoot = join(data, "builds", String(pub.id));
      const own = await commitTree(pubRoot, "app/x", "in the build");
      const mainOnly = await commitTree(mainRepo, "main-only", "in main");
      await Deno.writeTextFile(join(data, "outside.txt"), "not for you");
      await Deno.symlink(
        join(data, "outside.txt"),
        join(pubRoot, "refs", "heads", "escape"),
      );
      // An object path in the main repository that leads out of it.
      const escObj = `objects/ee/${"e".repeat(62)}.commit`;
      await Deno.mkdir(join(mainRepo, "objects", "ee"), { recursive: true });
      await Deno.symlink(join(data, "outside.txt"), join(mainRepo, escObj));

      const good = (over: Record<string, unknown> = {}) =>
        a.token({
          sub: `build/${priv.id}`,
          scope: ["download"],
          repos: ["stable"],
          prefixes: ["org.example"],
          ...over,
        });

      await t.step(
        "a public build's files come from its repository, and objects it lacks from the main one",
        async () => {
          for (const [rel, from] of [[own, pubRoot], [mainOnly, mainRepo]]) {
            const res = await get(`/build-repo/${pub.id}/${rel}`);
            assert.equal(res.status, 200, String(rel));
            assert.deepEqual(
              new Uint8Array(await res.arrayBuffer()),
              await Deno.readFile(join(from!, rel!)),
            );
            assert.equal(
              res.headers.get("cache-control"),
              "public, max-age=31536000, immutable",
            );
          }
          const config = await get(`/build-repo/${pub.id}/config`);
          assert.equal(
            await config.text(),
            await Deno.readTextFile(join(pubRoot, "config")),
          );
          const head = await get(`/build-repo/${pub.id}/${own}`, {
            method: "HEAD",
          });
          assert.equal(head.status, 200);
          assert.equal(
            head.headers.get("content-length"),
            String((await Deno.stat(join(pubRoot, own))).size),
          );
          assert.equal(await head.text(), "");
          // Only objects fall back: the main repository's refs are not the build's.
          assert.equal(
            (await get(`/build-repo/${pub.id}/refs/heads/main-only`)).status,
            404,
          );
          assert.equal(
            (await get(`/build-repo/${pub.id}/refs/heads/app/x`)).status,
            200,
          );
        },
      );

      await t.step("an unknown build is flat-manager's 404", async () => {
        for (
          const path of [
            "/build-repo/999999/config",
            "/build-repo/999999.flatpakrepo",
          ]
        ) {
          const res = await get(path);
          assert.equal(res.status, 404);
          assert.deepEqual(await res.json(), {
            status: 404,
            "error-type": "not-found",
            message: "Not found",
          });
        }
      });

      const refused: [string, number][] = [
        // URL parsing resolves these to another build: that build's rules apply.
        [`/build-repo/${pub.id}/../${priv.id}/config`, 401],
        [`/build-repo/${pub.id}/%2e%2e/${priv.id}/config`, 401],
        [
          `/build-repo/${pub.id}/objects/%2e%2e/%2e%2e/%2e%2e/repos/stable/config`,
          404,
        ],
        [`/build-repo/${pub.id}/parent/config`, 404],
        [`/build-repo/${pub.id}/upload/config`, 404],
        [`/build-repo/${pub.id}/refs/heads/escape`, 404],
        [`/build-repo/${pub.id}/${escObj}`, 404],
        [`/build-repo/${pub.id}/objects/ff/${"f".repeat(62)}.commit`, 404],
        [`/build-repo/${pub.id}/.lock`, 404],
        [`/build-repo/${pub.id}/tmp`, 404],
        [`/build-repo/${pub.id}/objects`, 404],
        [`/build-repo/${pub.id}/config%00`, 404],
        [`/build-repo/${pub.id}/%2e%2e%2fconfig`, 404],
        [`/build-repo/${pub.id}/config.flatpakref/x`, 404],
        [`/build-repo/${pub.id}/${"a/".repeat(600)}x`, 404],
        [`/build-repo/x${pub.id}/config`, 404],
        [`/build-repo/${pub.id}`, 404],
      ];
      for (const [path, status] of refused) {
        await t.step(`${path.slice(0, 70)} -> ${status}`, async () => {
          const res = await get(path);
          const body = await res.text();
          assert.equal(res.status, status);
          assert.doesNotMatch(body, /not for you|\[core\]/);
        });
      }

      const tokenCases: [
        string,
        () => Promise<Record<string, string>>,
        number,
        string | undefined,
      ][] = [
        ["no token", () => Promise.resolve({}), 401, "No token specified"],
        [
          "a malformed token",
          () => Promise.resolve({ Authorization: "Bearer nope" }),
          401,
          "Invalid token claims",
        ],
        [
          "an expired token",
          async () => ({ Authorization: `Bearer ${await good({ exp: 1 })}` }),
          401,
          "Token is expired",
        ],
        [
          "another build's sub",
          async () => ({
            Authorization: `Bearer ${await good({ sub: `build/${pub.id}` })}`,
          }),
          403,
          `Not enough permissions: Not matching sub 'build/${priv.id}' in token`,
        ],
        [
          "no download scope",
          async () => ({
            Authorization: `Bearer ${await good({
              scope: ["build", "upload"],
            })}`,
          }),
          403,
          "Not enough permissions: Not matching scope 'download' in token",
        ],
        [
          "another repo",
          async () => ({
            Authorization: `Bearer ${await good({ repos: ["hidden"] })}`,
          }),
          403,
          "Not enough permissions: Not matching repo in token",
        ],
        [
          "another app prefix",
          async () => ({
            Authorization: `Bearer ${await good({
              prefixes: ["org.examplex"],
            })}`,
          }),
          403,
          "Not enough permissions: Build's app ID not matching prefix in token",
        ],
        [
          "the build's token as Bearer",
          async () => ({ Authorization: `Bearer ${await good()}` }),
          200,
          undefined,
        ],
        [
          "an all-builds token as Bearer",
          async () => ({
            Authorization: `Bearer ${await good({ sub: "build" })}`,
          }),
          200,
          undefined,
        ],
        [
          "the build's token as the basic auth password",
          async () => ({
            Authorization: `Basic ${btoa(`flatpak:${await good()}`)}`,
          }),
          200,
          undefined,
        ],
      ];
      for (const [name, headers, status, message] of tokenCases) {
        await t.step(`a private build with ${name} -> ${status}`, async () => {
          const res = await get(`/build-repo/${priv.id}/config`, {
            headers: await headers(),
          });
          assert.equal(res.status, status);
          if (message === undefined) {
            assert.equal(
              await res.text(),
              await Deno.readTextFile(
                join(data, "builds", String(priv.id), "config"),
              ),
            );
            assert.equal(
              res.headers.get("cache-control"),
              "private, max-age=300",
            );
            return;
          }
          const body = await res.json();
          assert.equal(body.message, message);
          assert.equal(body.status, status);
          if (status === 401) {
            assert.match(res.headers.get("www-authenticate") ?? "", /^Basic /);
          }
        });
      }

      await t.step(
        "a private build's objects from the main repository need the token too",
        async () => {
          const path = `/build-repo/${priv.id}/${mainOnly}`;
          assert.equal((await get(path)).status, 401);
          const res = await get(path, {
            headers: { Authorization: `Bearer ${await good()}` },
          });
          assert.equal(res.status, 200);
          assert.equal(
            res.headers.get("cache-control"),
            "private, max-age=31536000, immutable",
          );
          await res.body?.cancel();
        },
      );

      await t.step(
        "a public-download build of a private repository is private",
        async () => {
          const path = `/build-repo/${inHidden.id}/config`;
          assert.equal((await get(path)).status, 401);
          assert.equal(
            (await get(`/build-repo/${inHidden.id}.flatpakrepo`)).status,
            401,
          );
          const token = await a.token({
            scope: ["download"],
            repos: ["hidden"],
          });
          const res = await get(path, {
            headers: { Authorization: `Bearer ${token}` },
          });
          assert.equal(res.status, 200);
          await res.body?.cancel();
        },
      );

      await t.step(
        "a private build's .flatpakrepo needs its token",
        async () => {
          assert.equal(
            (await get(`/build-repo/${priv.id}.flatpakrepo`)).status,
            401,
          );
          const res = await get(`/build-repo/${priv.id}.flatpakrepo`, {
            headers: { Authorization: `Bearer ${await good()}` },
          });
          assert.equal(res.status, 200);
          const kf = KeyFile.parse(await res.text());
          assert.equal(
            kf.get("Flatpak Repo", "Url"),
            `${a.deps.config.baseUrl}/build-repo/${priv.id}/`,
          );
          // No build key: clients are not told to verify signatures.
          assert.equal(kf.get("Flatpak Repo", "GPGKey"), undefined);
        },
      );
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "flatpak installs and runs a committed build from its /build-repo/<id>.flatpakrepo, GPG-verified with the build key",
  async (db, t) => {
    const p = await startPipeline(db, "stable", {
      routes: (deps) => [createBuildFileRoutes(deps)],
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-build-repo-" });
    try {
      const key = await expectJson(
        await p.a.req("POST", "/api/v1/repos/stable/keys", {
          token: p.session,
          body: { generate: { algorithm: "eddsa-legacy" }, purpose: "build" },
        }),
        201,
      );
      assert.equal(key.purpose, "build");
      // No app id: a public build, as flat-manager makes it (§3.2 create).
      const id = await p.pushObjects(fixture.repo, fixture.commits);
      const commit = await p.api("POST", `/api/v1/build/${id}/commit`, {});
      assert.equal((await p.waitJob(commit.json.id)).status, "succeeded");
      const appRef = `app/${fixture.appId}/${hostArch()}/master`;
      const repoRow = (await p.a.deps.db.query<{ id: number }>(
        "SELECT id FROM repos WHERE name = 'stable'",
      ))[0]!;
      const keyring = (await p.a.deps.repoKeys.keyring(repoRow.id, "build"))!;

      await t.step(
        "the .flatpakrepo names the build and carries the build keyring",
        async () => {
          const res = await fetch(`${p.base}/build-repo/${id}.flatpakrepo`);
          assert.equal(res.status, 200);
          assert.equal(
            res.headers.get("content-type"),
            "application/vnd.flatpak.repo",
          );
          const kf = KeyFile.parse(await res.text());
          assert.equal(kf.get("Flatpak Repo", "Title"), `Pipeline build ${id}`);
          assert.equal(
            kf.get("Flatpak Repo", "Url"),
            `${p.base}/build-repo/${id}/`,
          );
          assert.deepEqual(
            Uint8Array.from(
              atob(kf.get("Flatpak Repo", "GPGKey")!),
              (ch) => ch.charCodeAt(0),
            ),
            keyring,
          );
        },
      );

      await t.step(
        "the commit job's .flatpakref is served from the build's root",
        async () => {
          const res = await fetch(
            `${p.base}/build-repo/${id}/${fixture.appId}.flatpakref`,
          );
          assert.equal(res.status, 200);
          assert.equal(
            res.headers.get("content-type"),
            "application/vnd.flatpak.ref",
          );
          const text = await res.text();
          assert.equal(
            text,
            await Deno.readTextFile(
              join(
                p.a.deps.config.dataDir,
                "builds",
                String(id),
                `${fixture.appId}.flatpakref`,
              ),
            ),
          );
          assert.match(
            text,
            new RegExp(`^Url=${p.base}/build-repo/${id}$`, "m"),
          );
        },
      );

      await t.step(
        "ostree pulls the app from the build, verified",
        async () => {
          const local = join(work, "pulled");
          await ostree(local, ["init", "--mode=bare-user"]);
          const keyFile = join(work, "build.gpg");
          await Deno.writeFile(keyFile, keyring);
          await ostree(local, [
            "remote",
            "add",
            `--gpg-import=${keyFile}`,
            "build",
            `${p.base}/build-repo/${id}/`,
          ]);
          await ostree(local, ["pull", "build", appRef]);
          assert.equal(
            (await ostree(local, ["rev-parse", `build:${appRef}`])).trim(),
            (await ostree(join(p.a.deps.config.dataDir, "builds", String(id)), [
              "rev-parse",
              appRef,
            ])).trim(),
          );
        },
      );

      await t.step(
        "flatpak adds the .flatpakrepo, installs the app and runs it",
        async () => {
          const env = await isolatedFlatpakEnv(join(work, "client"));
          await run("flatpak", [
            "--user",
            "remote-add",
            "--from",
            "build",
            `${p.base}/build-repo/${id}.flatpakrepo`,
          ], { env });
          await run("flatpak", [
            "--user",
            "install",
            "-y",
            "--noninteractive",
            "build",
            fixture.appId,
          ], { env });
          assert.equal(
            (await run("flatpak", ["--user", "run", fixture.appId], { env }))
              .trim(),
            helloOutput(fixture.appId, hostArch()),
          );
          assert.ok(
            p.requests.some((r) =>
              r.path === `/build-repo/${id}/summary` && r.status === 200
            ),
            "flatpak fetched the build's summary",
          );
        },
      );
    } finally {
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
