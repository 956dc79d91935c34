import assert from "node:assert/strict";
import { join } from "node:path";
import { ostree } from "./cli.ts";
import { setRepoConfig } from "./repo_config.ts";

Deno.test("setRepoConfig sets keys ostree reads back, and keeps the rest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-config-" });
  try {
    await ostree(dir, ["init", "--mode=archive-z2"]);
    const parent = join(dir, "parent-repo");
    await ostree(parent, ["init", "--mode=archive-z2"]);
    await setRepoConfig(dir, {
      "core.parent": parent,
      "core.fsync": "false",
      "core.collection-id": "org.example.Repo.Build7",
    });
    const get = (k: string) =>
      ostree(dir, ["config", "get", k]).then((s) => s.trim());
    assert.equal(await get("core.parent"), parent);
    assert.equal(await get("core.fsync"), "false");
    assert.equal(await get("core.collection-id"), "org.example.Repo.Build7");
    assert.equal(await get("core.mode"), "archive-z2", "kept");
    // An ostree that opens it works with it.
    await ostree(dir, ["refs"]);
    await assert.rejects(
      setRepoConfig(dir, { parent: "/x" }),
      /Not a section\.key config name: "parent"/,
    );
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.ok(!left.some((n) => n.startsWith("config.tmp")), "no temp file");
    assert.ok(left.includes("config"));
    assert.ok((await Deno.stat(join(dir, "config"))).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
