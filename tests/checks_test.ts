/**
 * Check and publish hooks (specs/flat-manager-api.md §4.5, §6.2, §6.3): hooks from
 * FLATYARD_HOOKS_FILE hold a committed build in Validating until its checks finish or are
 * reviewed through `POST /api/v1/job/{id}/check/review`; a failed check fails the build; a hook
 * that cannot start leaves its check Pending; a failing publish hook fails the publish before
 * the main repository is touched. Hooks never see the server's secrets.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../lib/config.ts";
import { buildPaths } from "../lib/builds/build_disk.ts";
import { ostree } from "../lib/ostree/cli.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { dbTest } from "./support/db.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";

async function withHooks(
  hooks: unknown,
): Promise<{ file: string; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-hooks-" });
  const file = join(dir, "hooks.json");
  await Deno.writeTextFile(
    file,
    JSON.stringify(hooks).replaceAll("MARK", dir),
  );
  return { file, dir };
}

/** Pushes the fixture into a new build and commits it; returns the build id. */
async function commitFixture(
  p: Pipeline,
  fixture: { repo: string; commits: Record<string, string>; appId: string },
): Promise<number> {
  const id = await p.pushObjects(fixture.repo, fixture.commits, fixture.appId);
  const c = await p.api("POST", `/api/v1/build/${id}/commit`, {});
  assert.equal(c.status, 200, JSON.stringify(c.json));
  const job = await p.waitJob(c.json.id);
  assert.equal(job.status, "succeeded", job.error ?? "");
  return id;
}

type Check = {
  check_name: string;
  job_id: number;
  status: number;
  status_reason: string | null;
  results: string | null;
};

async function checksOf(p: Pipeline, id: number): Promise<Check[]> {
  return (await p.api("GET", `/api/v1/build/${id}/extended`)).json.checks;
}

dbTest(
  "check hooks hold a build in Validating until each check passes or is reviewed",
  async (db, t) => {
    const hooks = await withHooks({
      stable: {
        publish: [
          "sh",
          "-c",
          'echo "$FLAT_MANAGER_IS_REPUBLISH $FLAT_MANAGER_BUILD_ID ${FLATYARD_SECRET:-nosecret} $(pwd)" >> MARK/publish.log',
        ],
        checks: {
          env: {
            command: [
              "sh",
              "-c",
              'echo checking; echo "$FLAT_MANAGER_BUILD_ID $FLAT_MANAGER_JOB_ID ${FLATYARD_SECRET:-nosecret} $(pwd)" >> MARK/check.log',
            ],
          },
          manual: {
            command: ["sh", "-c", "echo needs a human >&2; exit 3"],
            reviewable: true,
          },
        },
      },
    });
    const p = await startPipeline(db, "stable", {
      env: { FLATYARD_HOOKS_FILE: hooks.file },
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      const id = await commitFixture(p, fixture);
      const root = await Deno.realPath(
        buildPaths(p.a.deps.config.dataDir, id).root,
      );
      let checks: Check[] = [];

      await t.step("the commit queues one check job per hook", async () => {
        checks = await checksOf(p, id);
        assert.deepEqual(checks.map((c) => c.check_name), ["env", "manual"]);
        const build = (await p.api("GET", `/api/v1/build/${id}`)).json;
        assert.equal(build.repo_state, 6);
        for (const c of checks) await p.waitJob(c.job_id);
      });

      await t.step(
        "a passing hook passes; a reviewable failing one needs review",
        async () => {
          checks = await checksOf(p, id);
          const env = checks.find((c) => c.check_name === "env")!;
          const manual = checks.find((c) => c.check_name === "manual")!;
          assert.deepEqual([env.status, env.status_reason], [1, null]);
          assert.equal(manual.status, 4);
          assert.equal(
            manual.status_reason,
            'Check command ["sh","-c","echo needs a human >&2; exit 3"] exited unsuccessfully: 3, stderr: needs a human',
          );
          // The hook ran in the build directory with the build and job ids, and no secrets.
          assert.equal(
            (await Deno.readTextFile(join(hooks.dir, "check.log"))).trim(),
            `${id} ${env.job_id} nosecret ${root}`,
          );
          const build = (await p.api("GET", `/api/v1/build/${id}`)).json;
          assert.equal(build.repo_state, 6);
        },
      );

      await t.step("check jobs are polled by name", async () => {
        const job = await p.api("GET", `/api/v1/build/${id}/check/manual/job`);
        assert.equal(job.status, 200);
        assert.equal(job.json.kind, 4);
        assert.equal(job.json.status, 2);
        assert.match(job.json.log, /needs a human/);
        assert.equal(
          (await p.api("GET", `/api/v1/build/${id}/check/nope/job`)).status,
          404,
        );
      });

      await t.step("a validating build cannot publish yet", async () => {
        const r = await p.api("POST", `/api/v1/build/${id}/publish`, {});
        assert.equal(r.status, 400);
        assert.equal(r.json["current-state"], "validating");
      });

      const manualJob = checks.find((c) => c.check_name === "manual")!.job_id;
      const review = async (token: string, body: unknown, job = manualJob) => {
        const res = await fetch(`${p.base}/api/v1/job/${job}/check/review`, {
          method: "POST",
          headers: {
            Authorization: `Bearer ${token}`,
            "Content-Type": "application/json",
          },
          body: JSON.stringify(body),
        });
        return { status: res.status, text: await res.text() };
      };
      const passed = { "new-status": { status: "Passed" } };

      await t.step(
        "review needs sub build and the reviewcheck scope",
        async () => {
          assert.equal((await review(p.token, passed)).status, 403);
          const narrow = await p.a.token({
            sub: `build/${id}`,
            scope: ["reviewcheck"],
          });
          assert.equal((await review(narrow, passed)).status, 403);
        },
      );

      const reviewer = await p.a.token({
        sub: "build",
        scope: ["reviewcheck"],
      });

      await t.step("bad reviews are refused and change nothing", async () => {
        const noReason = await review(reviewer, {
          "new-status": { status: "Failed" },
        });
        assert.equal(noReason.status, 400);
        const unknown = await review(reviewer, {
          "new-status": { status: "Maybe" },
        });
        assert.equal(unknown.status, 400);
        assert.equal((await review(reviewer, passed, 999999)).status, 404);
        const manual = (await checksOf(p, id)).find((c) =>
          c.check_name === "manual"
        )!;
        assert.equal(manual.status, 4);
      });

      await t.step(
        "a review that passes the last check makes the build Ready",
        async () => {
          const r = await review(reviewer, {
            ...passed,
            "new-results": "looked at it",
          });
          assert.equal(r.status, 204);
          const manual = (await checksOf(p, id)).find((c) =>
            c.check_name === "manual"
          )!;
          assert.deepEqual(
            [manual.status, manual.status_reason, manual.results],
            [1, null, "looked at it"],
          );
          const build = (await p.api("GET", `/api/v1/build/${id}`)).json;
          assert.deepEqual([build.repo_state, build.repo_state_reason], [
            2,
            undefined,
          ]);
        },
      );

      await t.step(
        "publish runs the publish hook in the build repository",
        async () => {
          const r = await p.api("POST", `/api/v1/build/${id}/publish`, {});
          assert.equal(r.status, 200, JSON.stringify(r.json));
          const job = await p.waitJob(r.json.id);
          assert.equal(job.status, "succeeded", job.error ?? "");
          assert.equal(
            (await Deno.readTextFile(join(hooks.dir, "publish.log"))).trim(),
            `false ${id} nosecret ${root}`,
          );
        },
      );
    } finally {
      await p.close();
      await Deno.remove(hooks.dir, { recursive: true });
    }
  },
);

dbTest(
  "a failed check fails the build; a hook that cannot start stays Pending until reviewed",
  async (db) => {
    const hooks = await withHooks({
      stable: {
        checks: {
          bad: { command: ["false"] },
          good: { command: ["true"] },
          ghost: { command: ["/nonexistent/flatyard-hook"] },
        },
      },
    });
    const p = await startPipeline(db, "stable", {
      env: { FLATYARD_HOOKS_FILE: hooks.file },
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      const id = await commitFixture(p, fixture);
      const jobs = new Map(
        (await checksOf(p, id)).map((c) => [c.check_name, c.job_id]),
      );
      const ghostJob = await p.waitJob(jobs.get("ghost")!);
      assert.equal(ghostJob.status, "failed");
      assert.match(ghostJob.error!, /could not start/);
      await p.waitJob(jobs.get("bad")!);
      await p.waitJob(jobs.get("good")!);
      const checks = await checksOf(p, id);
      assert.deepEqual(
        checks.map((c) => [c.check_name, c.status]),
        [["bad", 3], ["ghost", 0], ["good", 1]],
      );
      assert.equal(
        (await p.api("GET", `/api/v1/build/${id}`)).json
          .repo_state,
        6,
      );

      const reviewer = await p.a.token({
        sub: "build",
        scope: ["reviewcheck"],
      });
      const res = await fetch(
        `${p.base}/api/v1/job/${jobs.get("ghost")}/check/review`,
        {
          method: "POST",
          headers: {
            Authorization: `Bearer ${reviewer}`,
            "Content-Type": "application/json",
          },
          body: JSON.stringify({
            "new-status": { status: "PassedWithWarnings", reason: "by hand" },
          }),
        },
      );
      assert.equal(res.status, 204);
      await res.body?.cancel();
      const build = (await p.api("GET", `/api/v1/build/${id}`)).json;
      assert.deepEqual([build.repo_state, build.repo_state_reason], [
        3,
        "1 out of 3 checks failed (bad)",
      ]);
    } finally {
      await p.close();
      await Deno.remove(hooks.dir, { recursive: true });
    }
  },
);

dbTest(
  "a failing publish hook fails the publish before the main repository is touched",
  async (db) => {
    const hooks = await withHooks({
      stable: { publish: ["sh", "-c", "echo no way >&2; exit 4"] },
    });
    const p = await startPipeline(db, "stable", {
      env: { FLATYARD_HOOKS_FILE: hooks.file },
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      const id = await commitFixture(p, fixture);
      assert.equal(
        (await p.api("GET", `/api/v1/build/${id}`)).json
          .repo_state,
        2,
      );
      const r = await p.api("POST", `/api/v1/build/${id}/publish`, {});
      const job = await p.waitJob(r.json.id);
      assert.equal(job.status, "failed");
      assert.match(
        job.error!,
        /Publish hook \["sh","-c","echo no way >&2; exit 4"\] exited unsuccessfully: 4, stderr: no way/,
      );
      const main = repoPaths(p.a.deps.config.dataDir).repo("stable");
      assert.equal((await ostree(main, ["refs"])).trim(), "");
      const build = (await p.api("GET", `/api/v1/build/${id}`)).json;
      assert.equal(build.published_state, 3);
    } finally {
      await p.close();
      await Deno.remove(hooks.dir, { recursive: true });
    }
  },
);

Deno.test("a hooks file with an unknown key or a bad command stops start-up, naming the field", async () => {
  const { file, dir } = await withHooks({
    stable: { publsh: ["true"], checks: { x: { command: [] } } },
  });
  try {
    assert.throws(
      () => parseConfig({ FLATYARD_HOOKS_FILE: file }),
      (e: Error) => {
        assert.match(
          e.message,
          /FLATYARD_HOOKS_FILE .*: stable: Unrecognized key: "publsh"/,
        );
        assert.match(
          e.message,
          /stable\.checks\.x\.command: must name a program/,
        );
        return true;
      },
    );
    assert.throws(
      () => parseConfig({ FLATYARD_HOOKS_FILE: join(dir, "missing.json") }),
      /FLATYARD_HOOKS_FILE: cannot read/,
    );
    const good = join(dir, "good.json");
    await Deno.writeTextFile(
      good,
      JSON.stringify({ stable: { checks: { lint: { command: ["true"] } } } }),
    );
    assert.deepEqual(parseConfig({ FLATYARD_HOOKS_FILE: good }).hooks, {
      stable: {
        publish: null,
        checks: { lint: { command: ["true"], reviewable: false } },
      },
    });
    assert.deepEqual(parseConfig({}).hooks, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
