/**
 * The pipeline when things go wrong: wrong-state requests, a commit of objects that were never
 * uploaded, a publish that fails after its import (the main repository is left exactly as it
 * was), and two publishes to one repository at once.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";
import { ostree } from "../lib/ostree/cli.ts";

async function committed(
  p: Pipeline,
  repo: string,
  commits: Record<string, string>,
  appId: string,
): Promise<number> {
  const id = await p.pushObjects(repo, commits, appId);
  const c = await p.api("POST", `/api/v1/build/${id}/commit`, {});
  assert.equal((await p.waitJob(c.json.id)).status, "succeeded");
  return id;
}

dbTest(
  "commit and publish refuse wrong states with flat-manager's errors; a broken upload fails the commit",
  async (db) => {
    const p = await startPipeline(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      const appRef = Object.keys(fixture.commits).find((r) =>
        r.startsWith("app/")
      )!;
      const empty =
        (await p.api("POST", "/api/v1/build", { repo: "stable" })).json.id;
      const pubEarly = await p.api(
        "POST",
        `/api/v1/build/${empty}/publish`,
        {},
      );
      assert.deepEqual(pubEarly.json, {
        status: 400,
        "error-type": "wrong-repo-state",
        message: "Build is not committed",
        "current-state": "uploading",
        "expected-state": "ready",
      });
      // No refs: the commit job fails and says why.
      const c0 = await p.api("POST", `/api/v1/build/${empty}/commit`, {});
      const j0 = await p.waitJob(c0.json.id);
      assert.equal(j0.status, "failed");
      assert.equal(j0.error, "No refs in build");
      const b0 = (await p.api("GET", `/api/v1/build/${empty}`)).json;
      assert.deepEqual([b0.repo_state, b0.repo_state_reason], [
        3,
        "No refs in build",
      ]);
      assert.deepEqual(
        (await p.api("POST", `/api/v1/build/${empty}/commit`, {})).json,
        {
          status: 400,
          "error-type": "wrong-repo-state",
          message: "Commit already failed: No refs in build",
          "current-state": "failed",
          "expected-state": "uploading",
        },
      );
      // A ref whose objects were never uploaded.
      const broken =
        (await p.api("POST", "/api/v1/build", { repo: "stable" })).json.id;
      await p.api("POST", `/api/v1/build/${broken}/build_ref`, {
        ref: appRef,
        commit: fixture.commits[appRef],
      });
      const c1 = await p.api("POST", `/api/v1/build/${broken}/commit`, {});
      const j1 = await p.waitJob(c1.json.id);
      assert.equal(j1.status, "failed");
      const log = (await p.a.deps.queue.readLog(c1.json.id)).text;
      assert.match(log, new RegExp(`Committing ref ${appRef}`));
      assert.match(
        log,
        /Job failed: Cannot find object "[0-9a-f]{64}\.commit"/,
      );
      // Every object uploaded but one file object: the commit names it.
      const partial = await p.pushObjects(
        fixture.repo,
        fixture.commits,
        fixture.appId,
      );
      const uploadObjects = join(
        p.a.deps.config.dataDir,
        "builds",
        String(partial),
        "upload",
        "objects",
      );
      let dropped = "";
      for await (const d of Deno.readDir(uploadObjects)) {
        for await (const f of Deno.readDir(join(uploadObjects, d.name))) {
          if (!dropped && f.name.endsWith(".filez")) {
            dropped = d.name + f.name;
            await Deno.remove(join(uploadObjects, d.name, f.name));
          }
        }
      }
      assert.ok(dropped, "the upload has file objects");
      const c2 = await p.api("POST", `/api/v1/build/${partial}/commit`, {});
      const j2 = await p.waitJob(c2.json.id);
      assert.equal(j2.status, "failed");
      assert.equal(
        j2.error,
        `Cannot find object "${dropped}": the upload is incomplete`,
      );
      // The main repository never saw any of it.
      assert.equal(
        (await ostree(join(p.a.deps.config.dataDir, "repos", "stable"), [
          "refs",
        ])).trim(),
        "",
      );

      const good = await committed(
        p,
        fixture.repo,
        fixture.commits,
        fixture.appId,
      );
      assert.equal(
        (await p.api("POST", `/api/v1/build/${good}/commit`, {})).json.message,
        "Build is already committed",
      );
      const pub = await p.api("POST", `/api/v1/build/${good}/publish`, {});
      await p.waitJob(pub.json.id);
      assert.deepEqual(
        (await p.api("POST", `/api/v1/build/${good}/publish`, {})).json,
        {
          status: 400,
          "error-type": "wrong-published-state",
          message: "Build has already been published",
          "current-state": "published",
          "expected-state": "unpublished",
        },
      );
    } finally {
      await p.close();
    }
  },
);

dbTest(
  "a publish that fails after its import leaves the main repository exactly as it was",
  async (db) => {
    const p = await startPipeline(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const main = join(p.a.deps.config.dataDir, "repos", "stable");
    try {
      // A first, good publish: the state to keep.
      const first = await committed(
        p,
        fixture.repo,
        fixture.commits,
        fixture.appId,
      );
      const pub1 = await p.api("POST", `/api/v1/build/${first}/publish`, {});
      const r1 = await p.waitJob(pub1.json.id);
      await p.waitJob(
        (r1.result as { "update-repo-job": number })["update-repo-job"],
      );
      const refsBefore = await ostree(main, ["refs", "--list"]).catch(() =>
        ostree(main, ["refs"])
      );
      const tips = Object.fromEntries(
        await Promise.all(
          refsBefore.trim().split("\n").map(async (
            r,
          ) => [r, (await ostree(main, ["rev-parse", r])).trim()]),
        ),
      );
      const summary = new Uint8Array(
        await (await fetch(`${p.base}/repo/stable/summary`)).arrayBuffer(),
      );
      const summarySig = new Uint8Array(
        await (await fetch(`${p.base}/repo/stable/summary.sig`)).arrayBuffer(),
      );

      // Rotate to a key whose sealed private part is damaged: signing fails after the import.
      await p.a.req("POST", "/api/v1/repos/stable/keys", {
        token: p.session,
        body: { generate: { algorithm: "eddsa-legacy" } },
      });
      await db.query(
        `UPDATE signing_keys SET sealed_private = $1 WHERE id = (SELECT key_id FROM repo_keys WHERE active AND purpose = 'repo')`,
        [btoa("\u0001" + "x".repeat(60))],
      );
      const second = await committed(
        p,
        fixture.repo,
        fixture.commits,
        fixture.appId,
      );
      const pub2 = await p.api("POST", `/api/v1/build/${second}/publish`, {});
      const j2 = await p.waitJob(pub2.json.id);
      assert.equal(j2.status, "failed");
      const log = (await p.a.deps.queue.readLog(pub2.json.id)).text;
      assert.match(
        log,
        /Restored the repository's refs as they were before this publish/,
      );
      const b2 = (await p.api("GET", `/api/v1/build/${second}`)).json;
      assert.equal(b2.published_state, 3);
      assert.ok(b2.published_state_reason.length > 0);

      for (const [ref, commit] of Object.entries(tips)) {
        assert.equal(
          (await ostree(main, ["rev-parse", ref])).trim(),
          commit,
          `${ref} moved`,
        );
      }
      await ostree(main, ["fsck"]);
      assert.deepEqual(
        new Uint8Array(
          await (await fetch(`${p.base}/repo/stable/summary`)).arrayBuffer(),
        ),
        summary,
      );
      assert.deepEqual(
        new Uint8Array(
          await (await fetch(`${p.base}/repo/stable/summary.sig`))
            .arrayBuffer(),
        ),
        summarySig,
      );
      const updates = await db.query(
        "SELECT id FROM jobs WHERE kind = 'update-repo' AND status = 'queued'",
      );
      assert.deepEqual(
        updates,
        [],
        "no update-repo was queued for the failed publish",
      );
    } finally {
      await p.close();
    }
  },
);

dbTest(
  "two publishes to one repository at once are serialized and both land",
  async (db) => {
    const p = await startPipeline(db);
    await using one = await cachedFixtureRepo({ arches: [hostArch()] });
    await using two = await cachedFixtureRepo({
      arches: [hostArch()],
      appId: "org.example.Second",
    });
    try {
      const b1 = await committed(p, one.repo, one.commits, one.appId);
      const b2 = await committed(p, two.repo, two.commits, two.appId);
      const [p1, p2] = await Promise.all([
        p.api("POST", `/api/v1/build/${b1}/publish`, {}),
        p.api("POST", `/api/v1/build/${b2}/publish`, {}),
      ]);
      const [j1, j2] = await Promise.all([
        p.waitJob(p1.json.id),
        p.waitJob(p2.json.id),
      ]);
      assert.deepEqual([j1.status, j2.status], ["succeeded", "succeeded"]);
      const u1 =
        (j1.result as { "update-repo-job": number })["update-repo-job"];
      const u2 =
        (j2.result as { "update-repo-job": number })["update-repo-job"];
      await p.waitJob(u1);
      await p.waitJob(u2);
      const runs = await db.query<{ started_at: Date; finished_at: Date }>(
        "SELECT started_at, finished_at FROM jobs WHERE kind IN ('publish', 'update-repo') ORDER BY started_at",
      );
      for (let i = 1; i < runs.length; i++) {
        assert.ok(
          runs[i]!.started_at >= runs[i - 1]!.finished_at,
          "repository jobs never overlap",
        );
      }
      const main = join(p.a.deps.config.dataDir, "repos", "stable");
      const refs = await ostree(main, ["refs"]);
      assert.match(refs, /app\/org\.example\.Hello\//);
      assert.match(refs, /app\/org\.example\.Second\//);
      // The summary that clients fetch lists both apps.
      const ls = await ostree(main, ["summary", "--view"]);
      assert.match(ls, /org\.example\.Hello/);
      assert.match(ls, /org\.example\.Second/);
      await ostree(main, ["fsck"]);
    } finally {
      await p.close();
    }
  },
);
