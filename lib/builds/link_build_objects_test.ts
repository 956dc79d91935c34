/** The publish job's import of a build's objects into the main repository (real ostree repos). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ostree } from "../ostree/cli.ts";
import { linkBuildObjects } from "./link_build_objects.ts";
import {
  objectFiles,
  writeSmallTree,
} from "../../tests/support/ostree_fixture.ts";

Deno.test("linkBuildObjects", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-link-" });
  try {
    const tree = await writeSmallTree(dir);
    const build = join(dir, "build");
    const main = join(dir, "main");
    for (const r of [build, main]) {
      await ostree(r, ["init", "--mode=archive-z2"]);
    }
    await ostree(build, ["commit", "-b", "app", `--tree=dir=${tree}`]);
    const commit = (await ostree(build, ["rev-parse", "app"])).trim();
    // Objects the build repository holds that the commit does not name.
    await Deno.mkdir(join(dir, "stray"));
    await Deno.writeTextFile(join(dir, "stray", "s"), "not in the commit\n");
    await ostree(build, ["commit", "-b", "other", `--tree=dir=${dir}/stray`]);
    const inBuild = await objectFiles(build);

    await t.step(
      "a missing object is named",
      async () => {
        const filez = inBuild.find((f) => f.endsWith(".filez"))!;
        await Deno.rename(join(build, "objects", filez), join(dir, "aside"));
        await assert.rejects(
          linkBuildObjects(build, main, [commit]),
          new RegExp(`Cannot find object "${filez.replace("/", "")}"`),
        );
        await Deno.rename(join(dir, "aside"), join(build, "objects", filez));
        // What was linked before it is left (harmless, unreferenced): start afresh.
        await Deno.remove(join(main, "objects"), { recursive: true });
        await Deno.mkdir(join(main, "objects"));
      },
    );

    await t.step(
      "objects the main repository has stay; the others are linked, not copied",
      async () => {
        // The main repository already has a third of them (an earlier publish).
        const had = inBuild.filter((f, i) =>
          i % 3 === 0 && f.endsWith(".filez")
        );
        for (const rel of had) {
          await Deno.mkdir(join(main, "objects", rel.slice(0, 2)), {
            recursive: true,
          });
          await Deno.copyFile(
            join(build, "objects", rel),
            join(main, "objects", rel),
          );
        }
        const added = await linkBuildObjects(build, main, [commit]);
        const now = await objectFiles(main);
        // The commit reads whole from the main repository alone.
        await ostree(main, ["ls", "-R", commit]);
        assert.equal(added, now.length - had.length);
        for (const rel of now) {
          const a = await Deno.stat(join(main, "objects", rel));
          if (had.includes(rel)) {
            assert.equal(a.nlink, 1, `${rel} was kept as it was`);
          } else {
            const b = await Deno.stat(join(build, "objects", rel));
            assert.equal(a.ino, b.ino, `${rel} is a link`);
          }
        }
        assert.ok(now.length < inBuild.length, "the stray commit stays out");
        await ostree(main, ["fsck"]);
        assert.equal(await linkBuildObjects(build, main, [commit]), 0);
      },
    );

    await t.step("across file systems each object is copied", async (t) => {
      const shm = "/dev/shm";
      const other = await Deno.stat(shm).catch(() => null);
      if (!other || other.dev === (await Deno.stat(dir)).dev) {
        return void t.step({
          name: "no other file system",
          ignore: true,
          fn() {},
        });
      }
      const far = await Deno.makeTempDir({
        dir: shm,
        prefix: "flatyard-link-",
      });
      try {
        await ostree(far, ["init", "--mode=archive-z2"]);
        const added = await linkBuildObjects(build, far, [commit]);
        assert.equal(added, (await objectFiles(far)).length);
        await ostree(far, ["fsck"]);
        assert.deepEqual(
          [...Deno.readDirSync(join(far, "tmp"))].filter((e) =>
            e.name.startsWith("flatyard-")
          ),
          [],
          "no temporary copy is left",
        );
      } finally {
        await Deno.remove(far, { recursive: true });
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
