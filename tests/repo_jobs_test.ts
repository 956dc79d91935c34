/**
 * Republish and prune (specs/flat-manager-api.md §3.2, §6.5): an end-of-life republish reaches
 * the flatpak client as signed commits, the endpoints answer flat-manager's errors, prune waits
 * for the other work of its repository and deletes unreachable objects only.
 *
 * Until lib/app.ts and jobs/registry.ts carry these routes and kinds, the tests mount the routes
 * on the test app and run the two kinds on a worker of their own.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { addRemote, installFrom } from "./support/flatpak_client.ts";
import { dbTest } from "./support/db.ts";
import { expectJson, type TestApp, testApp } from "./support/app.ts";
import {
  cachedFixtureRepo,
  hostArch,
  isolatedFlatpakEnv,
} from "./support/flatpak_fixtures.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";
import { PRUNE_KIND, PruneInput, runPrune } from "../jobs/prune.ts";
import {
  REPUBLISH_KIND,
  RepublishInput,
  runRepublish,
} from "../jobs/republish.ts";
import { queueUpdateRepo, UPDATE_REPO_KIND } from "../jobs/update_repo.ts";
import { createApp } from "../lib/app.ts";
import { silentLogger } from "../lib/logger.ts";
import { ostree, run } from "../lib/ostree/cli.ts";
import { objectPath } from "../lib/ostree/sign.ts";
import { startWorker, type Worker } from "../lib/queue/worker.ts";
import { createFlatManagerRepoJobRoutes } from "../routes/flat_manager/repo_jobs.ts";

/** Sends a request, JSON in, to the app with the routes mounted (`a.req`'s options). */
type Send = (
  method: string,
  path: string,
  opts?: { token?: string; body?: unknown },
) => Promise<Response>;

/**
 * The app on `a.deps` with the routes mounted: a new one, as a Hono app that has answered a
 * request takes no more routes.
 */
function withRoutes(a: TestApp): Send {
  const app = createApp(a.deps).route(
    "/",
    createFlatManagerRepoJobRoutes(a.deps),
  );
  return (method, path, opts = {}) =>
    Promise.resolve(app.request(path, {
      method,
      headers: {
        ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
        ...(opts.body === undefined
          ? {}
          : { "Content-Type": "application/json" }),
      },
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    }));
}

/** A worker for the two kinds; the pipeline's own worker runs update-repo. */
function repoJobWorker(a: TestApp): Promise<Worker> {
  const deps = {
    db: a.deps.db,
    queue: a.deps.queue,
    dataDir: a.deps.config.dataDir,
    repoKeys: a.deps.repoKeys,
    hooks: a.deps.config.hooks,
  };
  return startWorker({
    queue: a.deps.queue,
    bus: a.deps.bus,
    logger: silentLogger,
    handlers: {
      [REPUBLISH_KIND]: (payload, ctx) =>
        runRepublish(deps, RepublishInput.parse(payload), ctx),
      [PRUNE_KIND]: (payload, ctx) =>
        runPrune(deps, PruneInput.parse(payload), ctx),
    },
    concurrency: 1,
    leaseSeconds: 30,
    pollMs: 100,
  });
}

/** Pushes, commits and publishes the fixture; waits for the update-repo job too. */
async function publish(
  p: Pipeline,
  fixture: { repo: string; commits: Record<string, string>; appId: string },
): Promise<void> {
  const id = await p.pushObjects(fixture.repo, fixture.commits, fixture.appId);
  const c = await p.api("POST", `/api/v1/build/${id}/commit`, {});
  assert.equal((await p.waitJob(c.json.id)).status, "succeeded");
  const pub = await p.api("POST", `/api/v1/build/${id}/publish`, {});
  const done = await p.waitJob(pub.json.id);
  assert.equal(done.status, "succeeded");
  const update = (done.result as { "update-repo-job": number })[
    "update-repo-job"
  ];
  assert.equal((await p.waitJob(update)).status, "succeeded");
}

/** Runs a job to its end and checks it succeeded, with its log in the failure message. */
async function succeeded(p: Pipeline, id: number): Promise<unknown> {
  const job = await p.waitJob(id);
  assert.equal(
    job.status,
    "succeeded",
    `${job.error}\n${(await p.a.deps.queue.readLog(id)).text}`,
  );
  return job.result;
}

const metadata = (repo: string, commit: string, key: string) =>
  ostree(repo, ["show", commit, `--print-metadata-key=${key}`]).then(
    (s) => s.trim(),
    () => undefined,
  );

dbTest(
  "POST /api/v1/repo/{repo}/republish marks an app end-of-life with signed commits flatpak installs",
  async (db, t) => {
    const p = await startPipeline(db);
    const send = withRoutes(p.a);
    const worker = await repoJobWorker(p.a);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-republish-" });
    const main = join(p.a.deps.config.dataDir, "repos", "stable");
    const appRef = `app/${fixture.appId}/${hostArch()}/master`;
    const republish = async (body: Record<string, unknown>) => {
      const token = await p.a.token({
        scope: ["build", "republish", "jobs"],
      });
      const res = await send("POST", "/api/v1/repo/stable/republish", {
        token,
        body: { app: fixture.appId, ...body },
      });
      const job = await expectJson(res, 200);
      assert.equal(
        res.headers.get("location"),
        `${p.base}/api/v1/job/${job.id}`,
      );
      return job;
    };
    try {
      await publish(p, fixture);
      const before = (await ostree(main, ["rev-parse", appRef])).trim();
      const runtimesBefore = await ostree(main, ["refs", "runtime"]);
      const tips = async () =>
        Object.fromEntries(
          await Promise.all(
            (await ostree(main, ["refs"])).trim().split("\n").map(async (
              r,
            ) => [r, (await ostree(main, ["rev-parse", r])).trim()]),
          ),
        );
      const runtimeTips = Object.fromEntries(
        Object.entries(await tips()).filter(([r]) => r.startsWith("runtime/")),
      );

      let eol = "";
      await t.step(
        "the job answers as a Job and ends with its update-repo job",
        async () => {
          const job = await republish({
            endoflife: "Replaced by org.example.Next",
          });
          assert.equal(job.kind, 3);
          assert.equal(job.repo, "stable");
          assert.equal("results" in job, false);
          const result = await succeeded(p, job.id) as {
            "update-repo-job": number;
          };
          assert.deepEqual(Object.keys(result), ["update-repo-job"]);
          assert.equal(
            (await p.waitJob(result["update-repo-job"])).status,
            "succeeded",
          );
          const log = (await p.a.deps.queue.readLog(job.id)).text;
          assert.match(log, new RegExp(`Re-publishing ${appRef}`));
          assert.match(log, /Signed 1 commit\(s\) with key/);
          eol = (await ostree(main, ["rev-parse", appRef])).trim();
        },
      );

      await t.step(
        "the app's new commit is end-of-life, its runtimes untouched",
        async () => {
          assert.notEqual(eol, before);
          assert.equal(
            (await ostree(main, ["rev-parse", `${eol}^`])).trim(),
            before,
            "the new commit continues the app's history",
          );
          assert.equal(
            await metadata(main, eol, "ostree.endoflife"),
            "'Replaced by org.example.Next'",
          );
          assert.equal(
            await metadata(main, before, "ostree.endoflife"),
            undefined,
          );
          await Deno.stat(objectPath(main, eol, "commitmeta"));
          assert.equal(await ostree(main, ["refs", "runtime"]), runtimesBefore);
          for (const [ref, commit] of Object.entries(runtimeTips)) {
            assert.equal(
              (await ostree(main, ["rev-parse", ref])).trim(),
              commit,
            );
          }
          assert.deepEqual(
            [...Deno.readDirSync(join(main, "tmp", "republish-repos"))],
            [],
            "the temporary repository is removed",
          );
          await ostree(main, ["fsck"]);
        },
      );

      await t.step(
        "flatpak installs it with GPG checks and reports the end of life",
        async () => {
          const env = await isolatedFlatpakEnv(join(work, "client"));
          await addRemote(env, "yard", `${p.base}/repo/stable.flatpakrepo`);
          const info = await run("flatpak", [
            "--user",
            "remote-info",
            "yard",
            fixture.appId,
          ], { env });
          assert.match(info, new RegExp(eol.slice(0, 12)));
          assert.match(info, /End-of-life: Replaced by org\.example\.Next/);
          await installFrom(env, "yard", fixture.appId);
          const installed = await run("flatpak", [
            "--user",
            "info",
            fixture.appId,
          ], { env });
          assert.match(installed, new RegExp(eol.slice(0, 12)));
        },
      );

      await t.step(
        "a republish with no options changes no commit",
        async () => {
          const job = await republish({});
          await succeeded(p, job.id);
          assert.equal((await ostree(main, ["rev-parse", appRef])).trim(), eol);
          assert.match(
            (await p.a.deps.queue.readLog(job.id)).text,
            /Signed 0 commit\(s\)/,
          );
        },
      );

      await t.step(
        "endoflife_rebase names the replacing app's ref",
        async () => {
          const job = await republish({
            endoflife: "Renamed",
            endoflife_rebase: "org.example.Next",
          });
          await succeeded(p, job.id);
          const rebased = (await ostree(main, ["rev-parse", appRef])).trim();
          assert.notEqual(rebased, eol);
          assert.equal(
            await metadata(main, rebased, "ostree.endoflife-rebase"),
            `'app/org.example.Next/${hostArch()}/master'`,
          );
          await Deno.stat(objectPath(main, rebased, "commitmeta"));
        },
      );

      await t.step(
        "an app the repository does not have fails the job and changes nothing",
        async () => {
          const all = await tips();
          const token = await p.a.token({ scope: ["build", "republish"] });
          const job = await expectJson(
            await send("POST", "/api/v1/repo/stable/republish", {
              token,
              body: { app: `${fixture.appId}Suffix` },
            }),
            200,
          );
          const done = await p.waitJob(job.id);
          assert.equal(done.status, "failed");
          assert.equal(
            done.error,
            `Cannot find app "${fixture.appId}Suffix" in repository "stable"`,
          );
          assert.deepEqual(await tips(), all);
        },
      );

      await t.step(
        "a republish that fails after its import puts the refs back",
        async () => {
          const all = await tips();
          // A key whose sealed private part is damaged: signing fails after the import.
          await p.a.req("POST", "/api/v1/repos/stable/keys", {
            token: p.session,
            body: { generate: { algorithm: "eddsa-legacy" } },
          });
          await db.query(
            `UPDATE signing_keys SET sealed_private = $1 WHERE id = (SELECT key_id FROM repo_keys WHERE active AND purpose = 'repo')`,
            [btoa("\u0001" + "x".repeat(60))],
          );
          const job = await republish({ endoflife: "Once more" });
          assert.equal((await p.waitJob(job.id)).status, "failed");
          assert.match(
            (await p.a.deps.queue.readLog(job.id)).text,
            /Republishing refs to repo stable\n[^]*Restored the repository's refs as they were before this republish/,
          );
          assert.deepEqual(await tips(), all);
          assert.deepEqual(
            [...Deno.readDirSync(join(main, "tmp", "republish-repos"))],
            [],
          );
          await ostree(main, ["fsck"]);
        },
      );
    } finally {
      await worker.stop();
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);

dbTest(
  "republish and prune refuse bad tokens and requests with flat-manager's errors",
  async (db, t) => {
    const a = await testApp(db);
    const send = withRoutes(a);
    try {
      await a.user("root", "admin");
      const session = await a.login("root");
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: session,
          body: { name: "stable" },
        }),
        201,
      );
      const republisher = {
        scope: ["build", "republish"],
        prefixes: ["org.example"],
        repos: ["stable"],
      };
      const manager = { sub: "", scope: ["tokenmanagement"], repos: [] };
      const cases: {
        name: string;
        path: string;
        claims?: Record<string, unknown>;
        body: unknown;
        status: number;
        json?: Record<string, unknown>;
        text?: RegExp;
      }[] = [
        {
          name: "republish without a token",
          path: "/api/v1/repo/stable/republish",
          body: { app: "org.example.Hello" },
          status: 401,
          json: {
            status: 401,
            "error-type": "invalid-token",
            message: "No Authorization header",
          },
        },
        {
          name: "republish with an expired token",
          path: "/api/v1/repo/stable/republish",
          claims: { ...republisher, exp: 1 },
          body: { app: "org.example.Hello" },
          status: 401,
          json: {
            status: 401,
            "error-type": "invalid-token",
            message: "Token is expired",
          },
        },
        {
          name: "republish without the republish scope",
          path: "/api/v1/repo/stable/republish",
          claims: {},
          body: { app: "org.example.Hello" },
          status: 403,
          json: {
            status: 403,
            "error-type": "token-insufficient",
            message:
              "Not enough permissions: Not matching scope 'republish' in token",
          },
        },
        {
          name: "republish with a per-build sub",
          path: "/api/v1/repo/stable/republish",
          claims: { ...republisher, sub: "build/7" },
          body: { app: "org.example.Hello" },
          status: 403,
          json: {
            status: 403,
            "error-type": "token-insufficient",
            message:
              "Not enough permissions: Not matching sub 'build' in token",
          },
        },
        {
          name: "republish of an app outside the token's prefixes",
          path: "/api/v1/repo/stable/republish",
          claims: republisher,
          body: { app: "org.examples.Other" },
          status: 403,
          json: {
            status: 403,
            "error-type": "token-insufficient",
            message:
              "Not enough permissions: Id org.examples.Other not matching prefix in token",
          },
        },
        {
          name: "republish to a repository outside the token's repos",
          path: "/api/v1/repo/beta/republish",
          claims: republisher,
          body: { app: "org.example.Hello" },
          status: 403,
          json: {
            status: 403,
            "error-type": "token-insufficient",
            message: "Not enough permissions: Not matching repo in token",
          },
        },
        {
          name: "republish to a repository that does not exist",
          path: "/api/v1/repo/nope/republish",
          claims: { ...republisher, repos: [""] },
          body: { app: "org.example.Hello" },
          status: 400,
          json: {
            status: 400,
            "error-type": "generic-error",
            message: "No such repo",
          },
        },
        {
          name: "republish without an app",
          path: "/api/v1/repo/stable/republish",
          claims: republisher,
          body: { endoflife: "Gone" },
          status: 400,
          text: /^Json deserialize error: app: /,
        },
        {
          name: "prune without the tokenmanagement scope",
          path: "/api/v1/prune",
          claims: { scope: ["build", "upload", "publish", "republish"] },
          body: { repo: "stable" },
          status: 403,
          json: {
            status: 403,
            "error-type": "token-insufficient",
            message: "Not enough permissions: Missing TokenManagement scope",
          },
        },
        {
          name: "prune of a repository that does not exist",
          path: "/api/v1/prune",
          claims: manager,
          body: { repo: "nope" },
          status: 400,
          json: {
            status: 400,
            "error-type": "generic-error",
            message: "No such repo",
          },
        },
        {
          name: "prune without a repo",
          path: "/api/v1/prune",
          claims: manager,
          body: {},
          status: 400,
          text: /^Json deserialize error: repo: /,
        },
      ];
      for (const c of cases) {
        await t.step(c.name, async () => {
          const token = c.claims ? await a.token(c.claims) : undefined;
          const res = await send("POST", c.path, {
            ...(token ? { token } : {}),
            body: c.body,
          });
          if (c.json) assert.deepEqual(await expectJson(res, c.status), c.json);
          else {
            assert.equal(res.status, c.status);
            assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
            assert.match(await res.text(), c.text!);
          }
        });
      }
      assert.deepEqual(
        await db.query(
          "SELECT id FROM jobs WHERE kind IN ('republish', 'prune')",
        ),
        [],
        "no refused request queued a job",
      );

      await t.step(
        "prune needs no sub or repo in the token and answers without Location",
        async () => {
          const res = await send("POST", "/api/v1/prune", {
            token: await a.token(manager),
            body: { repo: "stable" },
          });
          const job = await expectJson(res, 200);
          assert.equal(res.headers.get("location"), null);
          assert.deepEqual(
            [job.kind, job.status, job.repo, job.start_after],
            [5, 0, "stable", null],
          );
        },
      );
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "a prune waits for every other ready job of its repository",
  async (db) => {
    const a = await testApp(db);
    const send = withRoutes(a);
    try {
      await a.user("root", "admin");
      const session = await a.login("root");
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: session,
          body: { name: "stable" },
        }),
        201,
      );
      // Queued first, claimed last.
      const prune = await expectJson(
        await send("POST", "/api/v1/prune", {
          token: await a.token({ sub: "", scope: ["tokenmanagement"] }),
          body: { repo: "stable" },
        }),
        200,
      );
      const republish = await expectJson(
        await send("POST", "/api/v1/repo/stable/republish", {
          token: await a.token({ scope: ["republish"] }),
          body: { app: "org.example.Hello" },
        }),
        200,
      );
      const update = await queueUpdateRepo(
        a.deps.queue,
        db,
        "stable",
        republish.id,
      );
      const kinds = [REPUBLISH_KIND, UPDATE_REPO_KIND, PRUNE_KIND];
      const order: number[] = [];
      for (;;) {
        const job = await a.deps.queue.claim("test", kinds, 30);
        if (!job) break;
        order.push(job.id);
        await a.deps.queue.complete(job.id, "test", {});
      }
      assert.deepEqual(order, [republish.id, update.id, prune.id]);
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "POST /api/v1/prune deletes unreachable objects and keeps the repository whole",
  async (db) => {
    const p = await startPipeline(db);
    const send = withRoutes(p.a);
    const worker = await repoJobWorker(p.a);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const main = join(p.a.deps.config.dataDir, "repos", "stable");
    const tree = await Deno.makeTempDir({ prefix: "flatyard-orphan-" });
    try {
      await publish(p, fixture);
      // An orphan: a commit of a unique file whose ref is then deleted.
      await Deno.writeTextFile(join(tree, "orphan"), crypto.randomUUID());
      const orphan = (await ostree(main, [
        "commit",
        "--branch=scratch",
        `--tree=dir=${tree}`,
        "--subject=orphan",
      ])).trim();
      await ostree(main, ["refs", "--delete", "scratch"]);
      await Deno.stat(objectPath(main, orphan, "commit"));
      const tips = await Promise.all(
        Object.keys(fixture.commits).map((r) =>
          ostree(main, ["rev-parse", r]).then((s) => s.trim())
        ),
      );

      const job = await expectJson(
        await send("POST", "/api/v1/prune", {
          token: await p.a.token({ sub: "", scope: ["tokenmanagement"] }),
          body: { repo: "stable" },
        }),
        200,
      );
      assert.deepEqual(await succeeded(p, job.id), {});
      const log = (await p.a.deps.queue.readLog(job.id)).text;
      assert.match(
        log,
        /Running prune dry-run\n[^]*Total objects: \d+[^]*Running actual prune\n[^]*Deleted [1-9]\d* objects/,
      );

      await assert.rejects(
        Deno.stat(objectPath(main, orphan, "commit")),
        Deno.errors.NotFound,
      );
      for (const commit of tips) {
        await Deno.stat(objectPath(main, commit, "commit"));
        await Deno.stat(objectPath(main, commit, "commitmeta"));
      }
      await ostree(main, ["fsck"]);
      // The summary still lists what clients can install.
      assert.match(
        await ostree(main, ["summary", "--view"]),
        new RegExp(fixture.appId.replaceAll(".", "\\.")),
      );
    } finally {
      await worker.stop();
      await p.close();
      await Deno.remove(tree, { recursive: true });
    }
  },
);
