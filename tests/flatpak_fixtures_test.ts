/**
 * The offline fixture builder as later tests rely on it: unsigned x86_64 and aarch64 repos whose
 * app really installs and runs (aarch64 under qemu-user), and cached copies that are independent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  aarch64Support,
  buildFixtureRepo,
  cachedFixtureRepo,
  type FixtureArch,
  helloOutput,
  isolatedFlatpakEnv,
  PLATFORM_ID,
  SDK_ID,
} from "./support/flatpak_fixtures.ts";
import { exec } from "./support/fixture_exec.ts";

const ARCHES: FixtureArch[] = ["x86_64", "aarch64"];

async function refsOf(repo: string): Promise<string[]> {
  return (await exec("ostree", ["refs", `--repo=${repo}`])).split("\n")
    .filter((r) => r !== "").sort();
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Path of a commit's object (`commit`) or its detached metadata, where signatures go (`commitmeta`). */
function objectPath(
  repo: string,
  checksum: string,
  kind: "commit" | "commitmeta",
): string {
  return join(
    repo,
    "objects",
    checksum.slice(0, 2),
    `${checksum.slice(2)}.${kind}`,
  );
}

Deno.test("cachedFixtureRepo gives unsigned x86_64 and aarch64 repos whose app runs on each arch", async (t) => {
  const support = await aarch64Support();
  assert.ok(support.ok, `aarch64 fixtures need qemu-user: ${support.reason}`);
  await using fx = await cachedFixtureRepo({ arches: ARCHES });

  await t.step("runtime, SDK and app refs exist for both arches", async () => {
    const expected = ARCHES.flatMap((arch) => [
      `app/org.example.Hello/${arch}/master`,
      `runtime/${PLATFORM_ID}/${arch}/1`,
      `runtime/${SDK_ID}/${arch}/1`,
    ]).sort();
    assert.deepEqual(await refsOf(fx.repo), expected);
    assert.deepEqual(fx.refs, expected);
  });

  await t.step(
    "commits carry no signature and the repo has no summary",
    async () => {
      for (const [ref, checksum] of Object.entries(fx.commits)) {
        assert.ok(
          await exists(objectPath(fx.repo, checksum, "commit")),
          `commit of ${ref} is missing`,
        );
        assert.ok(
          !await exists(objectPath(fx.repo, checksum, "commitmeta")),
          `${ref} is signed`,
        );
      }
      assert.ok(!await exists(join(fx.repo, "summary")));
    },
  );

  await t.step(
    "each arch's metadata names the runtime of that arch",
    async () => {
      for (const arch of ARCHES) {
        const metadata = await exec("ostree", [
          "cat",
          `--repo=${fx.repo}`,
          `app/org.example.Hello/${arch}/master`,
          "/metadata",
        ]);
        assert.match(
          metadata,
          new RegExp(`^runtime=${PLATFORM_ID}/${arch}/1$`, "m"),
        );
        assert.match(metadata, new RegExp(`^sdk=${SDK_ID}/${arch}/1$`, "m"));
      }
    },
  );

  await t.step(
    "the app installs from a file:// remote and runs on both arches",
    async () => {
      await exec("flatpak", [
        "build-update-repo",
        "--no-update-appstream",
        fx.repo,
      ]);
      const env = await isolatedFlatpakEnv(join(fx.dir, "client"));
      const flatpak = (...args: string[]) =>
        exec("flatpak", ["--user", ...args], { env });
      await flatpak(
        "remote-add",
        "--no-gpg-verify",
        "fixture",
        `file://${fx.repo}`,
      );
      await flatpak(
        "install",
        "-y",
        "--noninteractive",
        "fixture",
        ...ARCHES.map((arch) => `app/org.example.Hello/${arch}/master`),
      );
      for (const arch of ARCHES) {
        const out = await flatpak("run", `--arch=${arch}`, "org.example.Hello");
        const expected = helloOutput("org.example.Hello", arch);
        assert.ok(
          out.includes(expected),
          `expected "${expected}", got "${out}"`,
        );
      }
    },
  );

  await t.step(
    "a second call gets the same commits in a copy of its own",
    async () => {
      await using again = await cachedFixtureRepo({
        arches: ["aarch64", "x86_64"],
      });
      assert.notEqual(again.repo, fx.repo);
      assert.deepEqual(again.commits, fx.commits);
      const victim = `app/org.example.Hello/aarch64/master`;
      await exec("ostree", ["refs", `--repo=${fx.repo}`, "--delete", victim]);
      assert.ok(!(await refsOf(fx.repo)).includes(victim));
      assert.ok((await refsOf(again.repo)).includes(victim));
    },
  );
});

Deno.test("buildFixtureRepo honours app id, branches and updateSummary", async () => {
  await using fx = await buildFixtureRepo({
    arches: ["x86_64"],
    appId: "org.example.Other",
    branch: "stable",
    runtimeVersion: "23.08",
    updateSummary: true,
  });
  assert.deepEqual(await refsOf(fx.repo), [
    "app/org.example.Other/x86_64/stable",
    `runtime/${PLATFORM_ID}/x86_64/23.08`,
    `runtime/${SDK_ID}/x86_64/23.08`,
  ]);
  const metadata = await exec("ostree", [
    "cat",
    `--repo=${fx.repo}`,
    "app/org.example.Other/x86_64/stable",
    "/metadata",
  ]);
  assert.match(metadata, /^name=org\.example\.Other$/m);
  assert.match(
    metadata,
    new RegExp(`^runtime=${PLATFORM_ID}/x86_64/23\\.08$`, "m"),
  );
  // The summary is there and unsigned: Flatyard signs it itself.
  assert.ok(await exists(join(fx.repo, "summary")));
  assert.ok(!await exists(join(fx.repo, "summary.sig")));
});

Deno.test("buildFixtureRepo rejects options it cannot build", async (t) => {
  for (
    const [name, opts, message] of [
      ["no architecture", { arches: [] }, /for no architecture/],
      [
        "an app id of two elements",
        { arches: ["x86_64"], appId: "org.Hello" },
        /app id "org\.Hello"/,
      ],
      [
        "a branch with a slash",
        { arches: ["x86_64"], branch: "a/b" },
        /branch "a\/b"/,
      ],
    ] as const
  ) {
    await t.step(name, async () => {
      await assert.rejects(
        buildFixtureRepo({ ...opts, arches: [...opts.arches] }),
        message,
      );
    });
  }
});
