/**
 * A from-scratch delta a client uploads with its objects (specs/flat-manager-api.md §5.2 step 8)
 * is rewritten by the commit for the build's new commit (§6.1), now that the commit job moves
 * the uploaded objects into the build repository instead of pulling them (jobs/commit.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";
import { push } from "../lib/client/push.ts";
import { ostree, run } from "../lib/ostree/cli.ts";
import { readRef } from "../lib/builds/repo_refs.ts";

dbTest(
  "a client's from-scratch delta survives the commit, rewritten for the new commit",
  async (db) => {
    const p = await startPipeline(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    try {
      const appRef = Object.keys(fixture.commits).find((r) =>
        r.startsWith("app/")
      )!;
      // The client's repository gets static deltas, from scratch among them.
      await run("flatpak", [
        "build-update-repo",
        "--generate-static-deltas",
        fixture.repo,
      ]);
      const created = await p.api("POST", "/api/v1/build", {
        repo: "stable",
        "app-id": fixture.appId,
      });
      const id = created.json.id as number;
      const lines: string[] = [];
      const result = await push({
        buildUrl: `${p.base}/api/v1/build/${id}`,
        token: p.token,
        repoPath: fixture.repo,
        refs: [appRef],
        commit: true,
        log: (l) => lines.push(l),
      });
      assert.equal(result.commitJob?.job.status, 2, lines.join("\n"));
      assert.ok(
        lines.some((l) => l === "Uploading deltas"),
        "the push uploaded the delta",
      );
      const root = join(p.a.deps.config.dataDir, "builds", String(id));
      const committed = await readRef(root, appRef);
      assert.ok(committed && committed !== fixture.commits[appRef]);
      const deltas = (await ostree(root, ["static-delta", "list"])).split("\n");
      assert.ok(
        deltas.includes(committed),
        `a from-scratch delta to ${committed} in ${deltas.join(", ")}`,
      );
      await ostree(root, ["static-delta", "show", committed]);
      await ostree(root, ["fsck"]);
    } finally {
      await p.close();
    }
  },
);
