/**
 * Reading a local archive-z2 repo natively: refs, the metadata and file objects of commits and
 * the from-scratch deltas to upload, compared with what the real `ostree` CLI sees in the
 * flatpak fixture repo.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cachedFixtureRepo,
  hostArch,
} from "../../tests/support/flatpak_fixtures.ts";
import { exec } from "../../tests/support/fixture_exec.ts";
import {
  assertArchiveRepo,
  commitObjects,
  deltaFiles,
  deltaNameDecode,
  deltaNameEncode,
  fileObjects,
  fnmatch,
  listRefs,
  metadataObjects,
  objectFiles,
  resolveRefs,
  scratchDeltaCommits,
} from "./local_repo.ts";

const ostree = (repo: string, ...args: string[]) =>
  exec("ostree", [`--repo=${repo}`, ...args]);

/** The objects of a commit as `ostree ls -R -C` lists them: dirs give dirtree and dirmeta. */
async function ostreeView(repo: string, commit: string) {
  const metadata = new Set([`${commit}.commit`]);
  const files = new Set<string>();
  for (
    const line of (await ostree(repo, "ls", "-R", "-C", commit)).split("\n")
  ) {
    const f = line.trim().split(/\s+/);
    if (line.startsWith("d")) {
      metadata.add(`${f[4]}.dirtree`).add(`${f[5]}.dirmeta`);
    } else if (line.startsWith("-") || line.startsWith("l")) {
      files.add(
        `${f[4]}.filez`,
      );
    }
  }
  return { metadata, files };
}

async function findObjects(repo: string): Promise<Set<string>> {
  const out = await exec("find", [
    join(repo, "objects"),
    "-type",
    "f",
    "-printf",
    "%P\n",
  ]);
  return new Set(out.trim().split("\n").map((p) => p.replace("/", "")));
}

Deno.test("local repo walk matches the ostree CLI's view of the fixture", async (t) => {
  await using fx = await cachedFixtureRepo({ arches: [hostArch()] });

  await t.step("refs resolve like ostree refs / rev-parse", async () => {
    assert.deepEqual(
      Object.fromEntries(await resolveRefs(fx.repo)),
      fx.commits,
    );
    const cli = (await ostree(fx.repo, "refs")).trim().split("\n").sort();
    assert.deepEqual([...(await listRefs(fx.repo)).keys()], cli);
    const app = fx.refs.find((r) => r.startsWith("app/"))!;
    const rev = (await ostree(fx.repo, "rev-parse", app)).trim();
    assert.deepEqual([...await resolveRefs(fx.repo, [app])], [[app, rev]]);
    assert.deepEqual([...await resolveRefs(fx.repo, [rev])], [[rev, rev]]);
    await assert.rejects(
      resolveRefs(fx.repo, ["app/org.example.Nope/x86_64/master"]),
      /Cannot resolve ref "app\/org.example.Nope\/x86_64\/master"/,
    );
  });

  await t.step(
    "each commit's metadata and file objects equal `ostree ls -R -C`",
    async () => {
      for (const ref of fx.refs) {
        const commit = fx.commits[ref]!;
        const want = await ostreeView(fx.repo, commit);
        const metadata = await metadataObjects(fx.repo, [commit]);
        assert.equal(metadata[0], `${commit}.commit`);
        assert.equal(new Set(metadata).size, metadata.length, "no duplicates");
        assert.deepEqual(new Set(metadata), want.metadata, ref);
        const files = await fileObjects(fx.repo, metadata);
        assert.equal(new Set(files).size, files.length, "no duplicates");
        assert.deepEqual(new Set(files), want.files, ref);
        assert.ok(files.length > 0);
      }
    },
  );

  await t.step("all refs together name every object in the repo", async () => {
    const metadata = await metadataObjects(fx.repo, Object.values(fx.commits));
    const files = await fileObjects(fx.repo, metadata);
    assert.deepEqual(
      new Set([...metadata, ...files]),
      await findObjects(fx.repo),
    );
    // One walk gives both lists, in the same order (push sends them in it).
    assert.deepEqual(
      await commitObjects(fx.repo, Object.values(fx.commits)),
      { metadata, files },
    );
    const sized = objectFiles(fx.repo, files);
    for (const f of sized) assert.equal(f.size, (await Deno.stat(f.path)).size);
    assert.throws(
      () => objectFiles(fx.repo, [`${"0".repeat(64)}.filez`]),
      /Cannot find object/,
    );
  });

  await t.step(
    "only from-scratch deltas of pushed app/runtime refs are listed",
    async () => {
      const refs = await resolveRefs(fx.repo);
      assert.deepEqual(await deltaFiles(fx.repo, refs), []);
      const app = fx.refs.find((r) => r.startsWith("app/"))!;
      const runtime = fx.refs.find((r) => r.startsWith("runtime/"))!;
      await ostree(
        fx.repo,
        "static-delta",
        "generate",
        "--empty",
        `--to=${app}`,
      );
      await ostree(
        fx.repo,
        "static-delta",
        "generate",
        `--from=${runtime}`,
        `--to=${app}`,
      );
      const listed = (await ostree(fx.repo, "static-delta", "list")).trim()
        .split("\n");
      assert.equal(listed.length, 2);
      const appCommit = fx.commits[app]!;
      assert.deepEqual(await scratchDeltaCommits(fx.repo), [appCommit]);

      // The on-disk directory of the scratch delta is ostree's own modified base64 of the commit.
      const name = deltaNameEncode(appCommit);
      assert.equal(name.length, 43);
      const dir = join(fx.repo, "deltas", name.slice(0, 2), name.slice(2));
      assert.ok((await Deno.stat(dir)).isDirectory);
      assert.equal(deltaNameDecode(name), appCommit);

      const files = await deltaFiles(fx.repo, refs);
      assert.deepEqual(files.map((f) => f.name), [
        `${name}.superblock.delta`,
        `${name}.0.delta`,
      ]);
      for (const f of files) {
        assert.equal(
          f.size,
          (await Deno.stat(f.path)).size,
        );
      }
      const id = app.split("/")[1]!;
      assert.deepEqual(
        await deltaFiles(fx.repo, refs, [id.replace(/\.\w+$/, ".*")]),
        [],
      );
      assert.equal(
        (await deltaFiles(fx.repo, refs, ["org.other.*"])).length,
        2,
      );
      // A ref not pushed has nothing to upload.
      assert.deepEqual(
        await deltaFiles(fx.repo, new Map([[runtime, fx.commits[runtime]!]])),
        [],
      );
    },
  );
});

Deno.test("modified base64 delta names and fnmatch globs", async (t) => {
  await t.step(
    "a checksum with 0xff bytes uses '_' for '/' and no padding",
    () => {
      const hex = "ff".repeat(32);
      assert.equal(deltaNameEncode(hex), "_".repeat(42) + "8");
      assert.equal(deltaNameDecode(deltaNameEncode(hex)), hex);
      assert.equal(deltaNameDecode("not-a-name"), null);
    },
  );
  const table: [string, string, boolean][] = [
    ["org.example.App", "org.example.*", true],
    ["org.example.App", "org.example.Ap?", true],
    ["org.example.App", "org.example.[AB]pp", true],
    ["org.example.App", "org.example.[!A]pp", false],
    ["org.example.App", "org.Example.*", false],
    ["org.example.App", "org.example", false],
    ["orgXexample.App", "org.example.App", false],
  ];
  for (const [name, glob, want] of table) {
    await t.step(`fnmatch("${name}", "${glob}") is ${want}`, () => {
      assert.equal(fnmatch(name, glob), want);
    });
  }
});

Deno.test("a repository that is not archive-z2 is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-client-" });
  try {
    await exec("ostree", ["init", `--repo=${dir}`, "--mode=bare-user"]);
    await assert.rejects(
      assertArchiveRepo(dir),
      /mode is "bare-user", not archive-z2/,
    );
    await assert.rejects(
      assertArchiveRepo(join(dir, "nope")),
      /Cannot open repo/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
