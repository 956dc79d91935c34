/**
 * @module Publishing a fixture through a running pipeline (push, commit, publish, update-repo),
 * and giving the fixture app the appstream data `flatpak build-update-repo` reads
 * (specs/ostree-repos.md §5.3): the fixture is built with `appstream-compose: false`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ostree, run } from "../../lib/ostree/cli.ts";
import type { FixtureRepo } from "./flatpak_fixtures.ts";
import type { Pipeline } from "./pipeline.ts";

/** What one publish produced. */
export interface Published {
  build: number;
  publishJob: number;
  updateJob: number;
  refs: Record<string, string>;
  update: { status: string; error: string | null; result: unknown };
}

/** Pushes `commits` of `repo` as a new build, commits and publishes it, and waits for update-repo. */
export async function publishFixture(
  p: Pipeline,
  fixture: Pick<FixtureRepo, "repo" | "appId">,
  commits: Record<string, string>,
): Promise<Published> {
  const build = await p.pushObjects(fixture.repo, commits, fixture.appId);
  const c = await p.api("POST", `/api/v1/build/${build}/commit`, {});
  assert.equal((await p.waitJob(c.json.id)).status, "succeeded");
  const pub = await p.api("POST", `/api/v1/build/${build}/publish`, {});
  const job = await p.waitJob(pub.json.id);
  assert.equal(job.status, "succeeded", job.error ?? "");
  const result = job.result as {
    refs: Record<string, string>;
    "update-repo-job": number;
  };
  const update = await p.waitJob(result["update-repo-job"]);
  return {
    build,
    publishJob: pub.json.id,
    updateJob: result["update-repo-job"],
    refs: result.refs,
    update,
  };
}

/** The appstream component the test app gets, before build-update-repo adds its `<bundle>`. */
export function appstreamXml(appId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<components version="0.8" origin="flatpak">
  <component type="desktop-application">
    <id>${appId}</id>
    <name>Hello</name>
    <name xml:lang="de">Hallo</name>
    <summary>Says hello &amp; goodbye</summary>
    <icon type="cached" height="64" width="64">${appId}.png</icon>
    <icon type="cached" height="128" width="128">${appId}.png</icon>
  </component>
</components>
`;
}

/**
 * Re-exports the fixture's app `ref` with `files/share/app-info` (the XML and its cached icons,
 * copied from the app's hicolor icons) and returns the new commit and the icons' bytes.
 */
export async function addAppstream(
  fixture: Pick<FixtureRepo, "repo" | "appId" | "branch">,
  ref: string,
): Promise<{ commit: string; icons: Record<string, Uint8Array> }> {
  const work = await Deno.makeTempDir({ prefix: "flatyard-appstream-" });
  try {
    const tree = join(work, "tree");
    await ostree(fixture.repo, ["checkout", "-U", ref, tree]);
    const info = join(tree, "files", "share", "app-info");
    await Deno.mkdir(join(info, "xmls"), { recursive: true });
    await Deno.writeFile(
      join(info, "xmls", `${fixture.appId}.xml.gz`),
      new Uint8Array(
        await new Response(
          new Blob([appstreamXml(fixture.appId)]).stream().pipeThrough(
            new CompressionStream("gzip"),
          ),
        ).arrayBuffer(),
      ),
    );
    const icons: Record<string, Uint8Array> = {};
    for (const size of ["64x64", "128x128"]) {
      const bytes = await Deno.readFile(
        join(
          tree,
          "files/share/icons/hicolor",
          size,
          "apps",
          `${fixture.appId}.png`,
        ),
      );
      await Deno.mkdir(join(info, "icons", "flatpak", size), {
        recursive: true,
      });
      await Deno.writeFile(
        join(info, "icons", "flatpak", size, `${fixture.appId}.png`),
        bytes,
      );
      icons[size] = bytes;
    }
    const arch = ref.split("/")[2]!;
    await run("flatpak", [
      "build-export",
      "--no-update-summary",
      `--arch=${arch}`,
      fixture.repo,
      tree,
      fixture.branch,
    ]);
    const commit = (await ostree(fixture.repo, ["rev-parse", ref])).trim();
    return { commit, icons };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
