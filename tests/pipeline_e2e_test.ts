/**
 * The build pipeline end to end: a fixture built offline is pushed with the Flatyard CLI
 * (flat-manager's protocol), committed, published (signed), and installed and run by the real
 * flatpak client
 * from Flatyard's server with GPG verification; a second publish is then fetched by
 * `flatpak update` through a static delta, as the server's request log shows.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { addRemote, installFrom } from "./support/flatpak_client.ts";
import { dbTest } from "./support/db.ts";
import {
  cachedFixtureRepo,
  helloOutput,
  hostArch,
  isolatedFlatpakEnv,
} from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";
import { ostree, run } from "../lib/ostree/cli.ts";

dbTest(
  "push, commit, publish, install and run; an update arrives through a static delta",
  async (db, t) => {
    const p = await startPipeline(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-e2e-" });
    try {
      /** `flatyard push --publish --wait-update`, as a CI job would run it. */
      const publish = async () => {
        const { code, out, err } = await p.pushWithCli(
          fixture.repo,
          fixture.appId,
        );
        assert.equal(code, 0, `push failed:\n${out}\n${err}`);
        const buildUrl = out.split("\n")[0]!;
        assert.match(buildUrl, new RegExp(`^${p.base}/api/v1/build/\\d+$`));
        assert.match(out, /Job completed successfully/);
        assert.match(
          err,
          /done \d+\/\d+ objects, [\d.]+\/[\d.]+ MiB/,
          "progress is shown",
        );
        const id = Number(buildUrl.split("/").at(-1));
        const build = (await p.api("GET", `/api/v1/build/${id}`)).json;
        assert.deepEqual([build.repo_state, build.published_state], [2, 2]);
        const job = await p.a.deps.queue.get(build.publish_job_id);
        return { id, result: job!.result as { refs: Record<string, string> } };
      };

      const first = await publish();
      const env = await isolatedFlatpakEnv(join(work, "client"));
      await t.step(
        "flatpak installs and runs the app from the served .flatpakrepo, GPG-verified",
        async () => {
          await addRemote(env, "yard", `${p.base}/repo/stable.flatpakrepo`);
          const remote = await run("flatpak", [
            "--user",
            "remote-ls",
            "yard",
            "--columns=ref",
          ], { env });
          assert.match(remote, new RegExp(fixture.appId));
          await installFrom(env, "yard", fixture.appId);
          assert.equal(
            (await run("flatpak", ["--user", "run", fixture.appId], { env }))
              .trim(),
            helloOutput(fixture.appId, hostArch()),
          );
          const config = await run("flatpak", [
            "--user",
            "remote-info",
            "yard",
            fixture.appId,
          ], { env });
          assert.match(
            config,
            new RegExp(
              first.result.refs[`app/${fixture.appId}/${hostArch()}/master`]!
                .slice(0, 12),
            ),
          );
        },
      );

      await t.step(
        "a second publish arrives through a static delta",
        async () => {
          const second = await publish();
          const appRef = `app/${fixture.appId}/${hostArch()}/master`;
          assert.notEqual(
            second.result.refs[appRef],
            first.result.refs[appRef],
          );
          p.requests.length = 0;
          await run("flatpak", ["--user", "update", "-y", "--noninteractive"], {
            env,
          });
          const deltaRequests = p.requests.filter((r) =>
            r.path.includes("/deltas/") && r.path.endsWith("/superblock")
          );
          assert.ok(
            deltaRequests.length > 0,
            `no delta superblock fetched: ${
              JSON.stringify(p.requests.map((r) => r.path))
            }`,
          );
          assert.ok(deltaRequests.every((r) => r.status === 200));
          const info = await run("flatpak", ["--user", "info", fixture.appId], {
            env,
          });
          assert.match(
            info,
            new RegExp(second.result.refs[appRef]!.slice(0, 12)),
          );
        },
      );

      await t.step("the main repository is consistent", async () => {
        await ostree(join(p.a.deps.config.dataDir, "repos", "stable"), [
          "fsck",
        ]);
        await assert.rejects(
          Deno.stat(join(p.a.deps.config.dataDir, "builds", String(first.id))),
          Deno.errors.NotFound,
          "published builds are removed",
        );
      });
    } finally {
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
