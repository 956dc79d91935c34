import assert from "node:assert/strict";
import { join } from "node:path";
import { ostree } from "./cli.ts";
import { commitParent } from "./object_graph.ts";
import { deltaNameEncode, existingDeltas } from "./static_deltas.ts";
import { listRefs } from "../builds/repo_refs.ts";

const lines = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean);

Deno.test("refs, parents and deltas read from disk are what the ostree CLI lists", async () => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-deltas-" });
  try {
    const repo = join(dir, "repo");
    const tree = join(dir, "tree");
    await Deno.mkdir(tree);
    await ostree(repo, ["init", "--mode=archive-z2"]);
    const commit = async (branch: string, content: string) => {
      await Deno.writeTextFile(join(tree, "file"), content);
      return (await ostree(repo, [
        "commit",
        `--branch=${branch}`,
        `--tree=dir=${tree}`,
      ])).trim();
    };
    const a = await commit("app/org.example.A/x86_64/master", "one");
    const b = await commit("app/org.example.A/x86_64/master", "two");
    const c = await commit("app/org.example.A/x86_64/master", "three");
    await commit("runtime/org.example.R/x86_64/1", "r");
    await commit("appstream2/x86_64", "as");
    await ostree(repo, ["static-delta", "generate", "--empty", `--to=${c}`]);
    await ostree(repo, [
      "static-delta",
      "generate",
      `--from=${b}`,
      `--to=${c}`,
    ]);
    // Not deltas: a directory without a superblock, and names that are no checksum.
    await Deno.mkdir(
      join(
        repo,
        "deltas",
        deltaNameEncode(a).slice(0, 2),
        deltaNameEncode(a).slice(2),
      ),
      {
        recursive: true,
      },
    );
    await Deno.mkdir(join(repo, "deltas", "zz", "not-a-delta"), {
      recursive: true,
    });
    await Deno.writeTextFile(join(repo, "deltas", "README"), "x");

    assert.deepEqual(
      [...await existingDeltas(repo)].sort(),
      lines(await ostree(repo, ["static-delta", "list"])).sort(),
    );
    assert.deepEqual(await existingDeltas(repo), new Set([c, `${b}-${c}`]));
    assert.deepEqual(
      await listRefs(repo),
      lines(await ostree(repo, ["refs"])).sort(),
    );
    assert.deepEqual(await commitParent(repo, c), b);
    assert.deepEqual(await commitParent(repo, b), a);
    assert.deepEqual(await commitParent(repo, a), undefined);
    // A pruned commit has no parent to follow, as `ostree rev-parse <pruned>^` fails.
    await ostree(repo, ["prune", "--refs-only", "--depth=0"]);
    assert.deepEqual(await commitParent(repo, b), undefined);
    assert.deepEqual(await commitParent(repo, c), b);
    assert.deepEqual(await existingDeltas(join(dir, "none")), new Set());
    assert.deepEqual(await listRefs(join(dir, "none")), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
