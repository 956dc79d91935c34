/**
 * Server-side builds end to end on the local runner: the busybox runtime and SDK are published
 * for x86_64 and aarch64, then the test app's manifest is submitted through the API with its
 * sources in a git repository. Both architectures build at the same time (aarch64 for real under
 * qemu-user and binfmt), the build is committed and published, and `flatpak install --arch`
 * of each from Flatyard's server runs and prints its architecture. Also: a build that does not
 * compile (the compiler output in the log, not retried, the repository unchanged) and a
 * cancellation mid-build that leaves no process behind.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ostree, run } from "../lib/ostree/cli.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { urlWithToken } from "../lib/cli/builder_deps.ts";
import { addRemote, installFrom } from "./support/flatpak_client.ts";
import { dbTest } from "./support/db.ts";
import {
  aarch64Support,
  cachedFixtureRepo,
  helloOutput,
  hostArch,
  isolatedFlatpakEnv,
} from "./support/flatpak_fixtures.ts";
import { writeHelloApp } from "./support/hello_app.ts";
import { sha256File, uploadArtifact } from "../lib/client/artifact_upload.ts";
import { type Pipeline, startPipeline } from "./support/pipeline.ts";

const GIT_ENV = {
  GIT_AUTHOR_NAME: "Flatyard Test",
  GIT_AUTHOR_EMAIL: "test@example.invalid",
  GIT_COMMITTER_NAME: "Flatyard Test",
  GIT_COMMITTER_EMAIL: "test@example.invalid",
};

/** A git repository holding the app's sources; returns its URL and commit. */
async function gitSources(
  dir: string,
  appId: string,
  runtimeVersion: string,
  tweak?: (manifest: Record<string, unknown>) => void,
): Promise<
  { url: string; commit: string; manifestName: string; manifest: string }
> {
  const manifestName = await writeHelloApp(dir, { appId, runtimeVersion });
  if (tweak) {
    const m = JSON.parse(await Deno.readTextFile(join(dir, manifestName)));
    tweak(m);
    await Deno.writeTextFile(join(dir, manifestName), JSON.stringify(m));
  }
  await run("git", ["init", "--quiet", dir]);
  await run("git", ["-C", dir, "add", "."]);
  await run("git", ["-C", dir, "commit", "--quiet", "-m", "sources"], {
    env: GIT_ENV,
  });
  const commit = (await run("git", ["-C", dir, "rev-parse", "HEAD"])).trim();
  return {
    url: `file://${dir}`,
    commit,
    manifestName,
    manifest: await Deno.readTextFile(join(dir, manifestName)),
  };
}

/**
 * Adds the pipeline's private repository as remote `name`, as the builder does: its
 * `.flatpakrepo` fetched with the token, which then goes into the remote's URL.
 */
async function addPrivateRemote(
  env: Record<string, string>,
  name: string,
  p: Pipeline,
  work: string,
): Promise<void> {
  const url = `${p.base}/repo/stable.flatpakrepo`;
  const denied = await fetch(url);
  await denied.body?.cancel();
  assert.equal(denied.status, 401, "the repository is private");
  const res = await fetch(url, {
    headers: { Authorization: `Bearer ${p.token}` },
  });
  assert.equal(res.status, 200);
  const kf = KeyFile.parse(await res.text());
  kf.set(
    "Flatpak Repo",
    "Url",
    urlWithToken(kf.get("Flatpak Repo", "Url")!, p.token),
  );
  const file = join(work, `${name}.flatpakrepo`);
  await Deno.writeTextFile(file, kf.toString());
  await addRemote(env, name, file);
}

/** Publishes the fixture's runtime and SDK (every arch) into the pipeline's repository. */
async function publishRuntimes(
  p: Pipeline,
  fixture: { repo: string; commits: Record<string, string> },
): Promise<void> {
  const runtimes = Object.fromEntries(
    Object.entries(fixture.commits).filter(([r]) => r.startsWith("runtime/")),
  );
  const id = await p.pushObjects(fixture.repo, runtimes);
  const c = await p.api("POST", `/api/v1/build/${id}/commit`, {});
  assert.equal((await p.waitJob(c.json.id)).status, "succeeded");
  const pub = await p.api("POST", `/api/v1/build/${id}/publish`, {});
  const done = await p.waitJob(pub.json.id);
  assert.equal(done.status, "succeeded", done.error ?? "");
  await p.waitJob(
    (done.result as { "update-repo-job": number })["update-repo-job"],
  );
}

// deno-lint-ignore no-explicit-any -- tests read whatever shape they assert on
async function waitBuild(p: Pipeline, id: number, until: (b: any) => boolean) {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    const b = (await p.api("GET", `/api/v1/repos/stable/builds/${id}`)).json;
    if (until(b)) return b;
    if (Date.now() > deadline) {
      throw new Error(`Build ${id} still ${b.state}: ${JSON.stringify(b)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
const ended = (b: { state: string }) =>
  ["published", "built", "failed", "cancelled"].includes(b.state);

dbTest(
  "a manifest submitted for x86_64 and aarch64 builds both in parallel, publishes, installs and runs",
  async (db, t) => {
    const support = await aarch64Support();
    assert.ok(
      support.ok,
      `aarch64 builds need qemu-user and binfmt: ${support.reason}`,
    );
    const p = await startPipeline(db, "stable", { concurrency: 4 });
    await using fixture = await cachedFixtureRepo({
      arches: ["x86_64", "aarch64"],
    });
    const work = await Deno.makeTempDir({ prefix: "flatyard-sbuild-" });
    try {
      await publishRuntimes(p, fixture);
      const appId = "org.example.Built";
      const src = await gitSources(
        join(work, "src"),
        appId,
        fixture.runtimeVersion,
      );
      let id = 0;

      await t.step("the submission is checked and queued", async () => {
        const r = await p.api("POST", "/api/v1/repos/stable/builds", {
          manifest: src.manifest,
          manifestName: src.manifestName,
          source: { git: { url: src.url, commit: src.commit } },
          arches: ["x86_64", "aarch64"],
        });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        id = r.json.id;
        assert.equal(r.json.appId, appId);
        assert.equal(r.json.sdk, "org.example.BusyBoxSdk");
        assert.equal(r.json.moduleCount, 1);
        assert.deepEqual(r.json.tasks.map((x: { arch: string }) => x.arch), [
          "x86_64",
          "aarch64",
        ]);
      });

      // deno-lint-ignore no-explicit-any
      let b: any;
      await t.step(
        "both architectures build at once, then it publishes",
        async () => {
          b = await waitBuild(p, id, ended);
          if (b.state !== "published") {
            const logs = await Promise.all(
              b.tasks.map(async (x: { jobId: number }) =>
                (await p.a.deps.queue.readLog(x.jobId)).text
              ),
            );
            assert.fail(`${b.state}: ${b.reason}\n${logs.join("\n----\n")}`);
          }
          const [x86, arm] = b.tasks;
          for (const task of b.tasks) {
            assert.equal(task.status, "succeeded");
            assert.ok(task.durationSeconds > 0);
          }
          // Overlapping runs: each started before the other finished.
          assert.ok(Date.parse(x86.startedAt) < Date.parse(arm.finishedAt));
          assert.ok(Date.parse(arm.startedAt) < Date.parse(x86.finishedAt));
          const log = (await p.a.deps.queue.readLog(arm.jobId)).text;
          assert.match(log, /Building for aarch64/);
        },
      );

      await t.step("flatpak installs and runs each architecture", async () => {
        const env = await isolatedFlatpakEnv(join(work, "client"));
        await addRemote(env, "yard", `${p.base}/repo/stable.flatpakrepo`);
        for (const arch of ["x86_64", "aarch64"]) {
          await installFrom(env, "yard", `app/${appId}/${arch}/stable`, [
            `--arch=${arch}`,
          ]);
          assert.equal(
            (await run("flatpak", [
              "--user",
              "run",
              `--arch=${arch}`,
              `${appId}//stable`,
            ], { env })).trim(),
            helloOutput(appId, arch),
          );
        }
      });
    } finally {
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);

dbTest(
  "a build that does not compile fails with the compiler output, is not retried, and changes nothing; a cancelled one leaves no process",
  async (db, t) => {
    const p = await startPipeline(db, "stable", { concurrency: 4 });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-sbuild-" });
    try {
      await publishRuntimes(p, fixture);
      const main = repoPaths(p.a.deps.config.dataDir).repo("stable");
      const refsBefore = await ostree(main, ["refs"]);

      await t.step("a compile error", async () => {
        const src = await gitSources(
          join(work, "broken"),
          "org.example.Broken",
          fixture.runtimeVersion,
          (m) => {
            // deno-lint-ignore no-explicit-any
            (m.modules as any)[0]["build-commands"] = [
              "echo compiling hello.c",
              "echo 'hello.c:3:1: error: expected ; before }' >&2",
              "exit 1",
            ];
          },
        );
        const r = await p.api("POST", "/api/v1/repos/stable/builds", {
          manifest: src.manifest,
          manifestName: src.manifestName,
          source: { git: { url: src.url, commit: src.commit } },
          arches: [hostArch()],
        });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        const b = await waitBuild(p, r.json.id, ended);
        assert.equal(b.state, "failed");
        assert.equal(b.tasks[0].attempts, 1, "a compile error is not retried");
        const log = (await p.a.deps.queue.readLog(b.tasks[0].jobId)).text;
        assert.match(log, /hello\.c:3:1: error: expected ; before \}/);
        assert.match(log, /flatpak-builder failed/);
        const commit = await p.a.deps.queue.get(b.commitJobId);
        assert.equal(commit!.status, "cancelled");
        assert.equal(await ostree(main, ["refs"]), refsBefore);
      });

      await t.step("cancelled mid-build, no process is left", async () => {
        const marker = `flatyard-cancel-${crypto.randomUUID()}`;
        const src = await gitSources(
          join(work, "slow"),
          "org.example.Slow",
          fixture.runtimeVersion,
          (m) => {
            // deno-lint-ignore no-explicit-any
            (m.modules as any)[0]["build-commands"] = [
              `echo started ${marker}; sleep 600; echo ${marker}`,
            ];
          },
        );
        const r = await p.api("POST", "/api/v1/repos/stable/builds", {
          manifest: src.manifest,
          manifestName: src.manifestName,
          source: { git: { url: src.url, commit: src.commit } },
          arches: [hostArch()],
        });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        const id = r.json.id;
        const jobId = r.json.tasks[0].jobId;
        const deadline = Date.now() + 5 * 60_000;
        while (
          !(await p.a.deps.queue.readLog(jobId)).text.includes(
            `started ${marker}`,
          )
        ) {
          assert.ok(Date.now() < deadline, "the build never started");
          await new Promise((res) => setTimeout(res, 200));
        }
        const pgrep = async () =>
          (await new Deno.Command("pgrep", { args: ["-f", marker] }).output())
            .stdout.length > 0;
        assert.ok(await pgrep(), "the build's processes are running");
        const c = await p.api(
          "POST",
          `/api/v1/repos/stable/builds/${id}/cancel`,
        );
        assert.equal(c.status, 200);
        const b = await waitBuild(p, id, ended);
        assert.equal(b.state, "cancelled");
        // Give the kernel a moment to reap, bounded; then nothing with the marker may remain.
        for (let i = 0; i < 50 && await pgrep(); i++) {
          await new Promise((res) => setTimeout(res, 100));
        }
        assert.equal(await pgrep(), false, "stray build processes");
        assert.equal(await ostree(main, ["refs"]), refsBefore);
      });
    } finally {
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);

dbTest(
  "in a private repository: sources uploaded as a chunked archive; a dependent build waits for the one it needs to publish",
  async (db, t) => {
    // Private: the builders install the runtime and SDK from it with their task's token.
    const p = await startPipeline(db, "stable", {
      concurrency: 4,
      private: true,
    });
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-sbuild-" });
    try {
      await publishRuntimes(p, fixture);
      const dir = join(work, "tarball");
      const manifestName = await writeHelloApp(dir, {
        appId: "org.example.Packed",
        runtimeVersion: fixture.runtimeVersion,
      });
      const archive = join(work, "sources.tar.gz");
      await run("tar", ["-czf", archive, "-C", dir, "."]);
      const bytes = await Deno.readFile(archive);
      const sha256 = await sha256File(archive);
      const arch = hostArch();

      const first = await p.api("POST", "/api/v1/repos/stable/builds", {
        manifest: await Deno.readTextFile(join(dir, manifestName)),
        manifestName,
        source: {
          archive: { name: "sources.tar.gz", size: bytes.length, sha256 },
        },
        arches: [arch],
      });
      assert.equal(first.status, 201, JSON.stringify(first.json));
      assert.match(
        first.json.sourceUploadUrl,
        /\/api\/v1\/build\/\d+\/artifacts\/\d+$/,
      );
      const second = await gitSources(
        join(work, "second"),
        "org.example.Second",
        fixture.runtimeVersion,
      );
      const dependent = await p.api("POST", "/api/v1/repos/stable/builds", {
        manifest: second.manifest,
        manifestName: second.manifestName,
        source: { git: { url: second.url, commit: second.commit } },
        arches: [arch],
        dependsOn: [first.json.id],
      });
      assert.equal(dependent.status, 201, JSON.stringify(dependent.json));

      await t.step("nothing builds before the sources are in", async () => {
        await new Promise((r) => setTimeout(r, 1500));
        const a =
          (await p.api("GET", `/api/v1/repos/stable/builds/${first.json.id}`))
            .json;
        assert.equal(a.state, "queued");
        assert.equal(a.tasks[0].attempts, 0, "waiting is not an attempt");
      });

      await t.step(
        "the archive goes up in chunks, then both build in order",
        async () => {
          const record = await uploadArtifact({
            buildUrl: "",
            resumeUrl: first.json.sourceUploadUrl,
            token: p.token,
            path: archive,
            chunkSize: 1024,
          });
          assert.equal(record.status, "complete");
          const a = await waitBuild(p, first.json.id, ended);
          assert.equal(a.state, "published", a.reason);
          const b = await waitBuild(p, dependent.json.id, ended);
          assert.equal(b.state, "published", b.reason);
          const publishedA = await p.a.deps.queue.get(a.publishJobId);
          assert.ok(
            Date.parse(b.tasks[0].startedAt) >=
              publishedA!.finishedAt!.getTime(),
            "the dependent build started after the first one was published",
          );
          // The builders installed from the private repository with their task's token in
          // the runner's remote URL, and took it out again: no credential stays at rest.
          const runnerConfig = await Deno.readTextFile(
            join(
              p.a.deps.config.dataDir,
              "runner",
              "flatpak",
              "repo",
              "config",
            ),
          );
          const urls = runnerConfig.split("\n").filter((l) =>
            l.startsWith("url=")
          );
          assert.deepEqual(urls, [`url=${p.base}/repo/stable/`], runnerConfig);
          const env = await isolatedFlatpakEnv(join(work, "client"));
          await addPrivateRemote(env, "yard", p, work);
          await installFrom(
            env,
            "yard",
            "app/org.example.Packed/" + arch + "/stable",
          );
          assert.equal(
            (await run("flatpak", [
              "--user",
              "run",
              "org.example.Packed//stable",
            ], {
              env,
            })).trim(),
            helloOutput("org.example.Packed", arch),
          );
        },
      );
    } finally {
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
