/**
 * The publish job's import (jobs/publish.ts: the build's objects hard-linked in, each commit made
 * from the build's one inside the main repository) gives the main repository the commits that
 * flat-manager's `flatpak build-commit-from --src-repo=<build>` gives: the same tree, parent,
 * subject, timestamp and metadata, bindings to the repository's collection and the build's extra
 * ids and the download size included. The reference runs on copies of both repositories made
 * just before the publish.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { cachedFixtureRepo, hostArch } from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";
import { ostree, run } from "../lib/ostree/cli.ts";
import {
  decode,
  encode,
  type Value,
  type Variant,
} from "../lib/ostree/gvariant.ts";
import { objectPath } from "../lib/ostree/object_graph.ts";

const COMMIT = "(a{sv}aya(say)sstayay)";

/** A commit's fields, its metadata as key → serialized variant (order aside). */
async function readCommit(repo: string, checksum: string) {
  const [meta, parent, , subject, body, timestamp, tree, dirmeta] = decode(
    COMMIT,
    await Deno.readFile(objectPath(repo, `${checksum}.commit`)),
  ) as [
    Map<string, Variant>,
    Uint8Array,
    Value,
    string,
    string,
    bigint,
    Uint8Array,
    Uint8Array,
  ];
  const metadata = Object.fromEntries(
    [...meta].map(([k, v]) => [k, `${v.type} ${[...encode(v.type, v.value)]}`]),
  );
  return { metadata, parent, subject, body, timestamp, tree, dirmeta };
}

dbTest(
  "a publish makes the main repository's commits as build-commit-from --src-repo does",
  async (db) => {
    const p = await startPipeline(db, "stable", {
      collectionId: "org.example.Stable",
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const data = p.a.deps.config.dataDir;
    const main = join(data, "repos", "stable");
    const scratch = await Deno.makeTempDir({ prefix: "flatyard-import-" });
    try {
      // Twice: into an empty repository, then on top of the first publish (a parent).
      for (const round of [1, 2]) {
        const id = await p.pushObjects(
          fixture.repo,
          fixture.commits,
          fixture.appId,
        );
        await p.api("POST", `/api/v1/build/${id}/add_extra_ids`, {
          ids: ["Extra"],
        });
        const c = await p.api("POST", `/api/v1/build/${id}/commit`, {});
        assert.equal((await p.waitJob(c.json.id)).status, "succeeded");

        // flat-manager's import, on copies.
        const refMain = join(scratch, `main-${round}`);
        const refBuild = join(scratch, `build-${round}`);
        await run("cp", ["-a", main, refMain]);
        await run("cp", ["-a", join(data, "builds", String(id)), refBuild]);
        await run("flatpak", [
          "build-commit-from",
          "--force",
          "--no-update-summary",
          "--extra-collection-id=org.example.Stable.Extra",
          `--src-repo=${refBuild}`,
          refMain,
        ]);

        const pub = await p.api("POST", `/api/v1/build/${id}/publish`, {});
        const job = await p.waitJob(pub.json.id);
        assert.equal(job.status, "succeeded", JSON.stringify(job));
        const refs = (job.result as { refs: Record<string, string> }).refs;
        // An app and runtimes in one build: one commit each.
        assert.ok(Object.keys(refs).some((r) => r.startsWith("app/")));
        assert.ok(Object.keys(refs).some((r) => r.startsWith("runtime/")));
        for (const [ref, commit] of Object.entries(refs)) {
          const expected = (await ostree(refMain, ["rev-parse", ref])).trim();
          const ours = await readCommit(main, commit);
          const theirs = await readCommit(refMain, expected);
          assert.deepEqual(ours, theirs, `${ref} (round ${round})`);
          assert.ok(
            ours.metadata["xa.download-size"],
            "it has a download size",
          );
          assert.match(
            ours.metadata["ostree.collection-refs-binding"] ?? "",
            /^a\(ss\) /,
          );
          if (round === 2) assert.ok(ours.parent.length === 32, "a parent");
        }
        await ostree(main, ["fsck"]);
      }
    } finally {
      await Deno.remove(scratch, { recursive: true });
      await p.close();
    }
  },
);
