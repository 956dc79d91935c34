/** The commit job's completeness check and the move of uploaded objects (real ostree repos). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ostree } from "../ostree/cli.ts";
import { adoptUploadedObjects, checkComplete } from "./adopt_upload.ts";
import {
  objectFiles,
  writeSmallTree,
} from "../../tests/support/ostree_fixture.ts";

Deno.test("checkComplete and adoptUploadedObjects", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-adopt-" });
  try {
    const tree = await writeSmallTree(dir);
    const upload = join(dir, "upload");
    const main = join(dir, "main");
    const root = join(dir, "root");
    for (const r of [upload, main, root]) {
      await ostree(r, ["init", "--mode=archive-z2"]);
    }
    await ostree(upload, ["commit", "-b", "app", `--tree=dir=${tree}`]);
    const commit = (await ostree(upload, ["rev-parse", "app"])).trim();
    const all = await objectFiles(upload);

    await t.step(
      "objects split between the upload and its parent: complete",
      async () => {
        // The main repository already has some of them (they were never uploaded).
        for (const rel of all.filter((_, i) => i % 3 === 0)) {
          await Deno.mkdir(join(main, "objects", rel.slice(0, 2)), {
            recursive: true,
          });
          await Deno.rename(
            join(upload, "objects", rel),
            join(main, "objects", rel),
          );
        }
        await checkComplete([upload, main], [commit]);
      },
    );

    await t.step("a missing file object is named", async () => {
      const filez = all.find((f) => f.endsWith(".filez"))!;
      const where = await Deno.stat(join(upload, "objects", filez)).then(
        () => upload,
        () => main,
      );
      await Deno.rename(join(where, "objects", filez), join(dir, "aside"));
      await assert.rejects(
        checkComplete([upload, main], [commit]),
        new RegExp(
          `Cannot find object "${
            filez.replace("/", "")
          }": the upload is incomplete`,
        ),
      );
      await Deno.rename(join(dir, "aside"), join(where, "objects", filez));
    });

    await t.step("a missing dirtree is named", async () => {
      const dirtree = all.find((f) => f.endsWith(".dirtree"))!;
      const where = await Deno.stat(join(upload, "objects", dirtree)).then(
        () => upload,
        () => main,
      );
      await Deno.rename(join(where, "objects", dirtree), join(dir, "aside"));
      await assert.rejects(
        checkComplete([upload, main], [commit]),
        /Cannot find object "[0-9a-f]{64}\.dirtree"/,
      );
      await Deno.rename(join(dir, "aside"), join(where, "objects", dirtree));
    });

    await t.step(
      "the upload's objects move into the build repository",
      async () => {
        const uploaded = await objectFiles(upload);
        // The build repository already holds one of the directories, with one of the objects.
        const first = uploaded[0]!;
        await Deno.mkdir(join(root, "objects", first.slice(0, 2)), {
          recursive: true,
        });
        await Deno.copyFile(
          join(upload, "objects", first),
          join(root, "objects", first),
        );
        adoptUploadedObjects(upload, root);
        assert.deepEqual(await objectFiles(root), uploaded);
        await checkComplete([root, main], [commit]);
        assert.equal(adoptUploadedObjects(join(dir, "nothing"), root), 0);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
