/**
 * Private repositories with the real flatpak client: files are served only to requests carrying
 * a download token for the repository (specs/flat-manager-api.md §2.3), which flatpak sends as
 * HTTP basic auth when the token is the password in the remote's URL.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { systemClock, unixNow } from "../lib/clock.ts";
import { run } from "../lib/ostree/cli.ts";
import { expectJson } from "./support/app.ts";
import { dbTest } from "./support/db.ts";
import {
  cachedFixtureRepo,
  helloOutput,
  hostArch,
  isolatedFlatpakEnv,
} from "./support/flatpak_fixtures.ts";
import { startPipeline } from "./support/pipeline.ts";

const root = fileURLToPath(new URL("../", import.meta.url));
const REPO = "private";

/** Runs flatpak and returns its exit code and output instead of throwing. */
async function flatpak(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command("flatpak", {
    args: ["--user", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

dbTest(
  "a private repository installs with a download token in the remote URL, and only with one",
  async (db, t) => {
    const p = await startPipeline(db);
    await using fixture = await cachedFixtureRepo({ arches: [hostArch()] });
    const work = await Deno.makeTempDir({ prefix: "flatyard-private-" });
    try {
      await expectJson(
        await p.a.req("POST", "/api/v1/repos", {
          token: p.session,
          body: { name: REPO, title: "Private", public: false },
        }),
        201,
      );
      const cli = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          join(root, "main.ts"),
          "push",
          "--repo",
          REPO,
          "--app-id",
          fixture.appId,
          "--publish",
          "--wait-update",
          p.base,
          fixture.repo,
        ],
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "",
          HOME: Deno.env.get("HOME") ?? "",
          REPO_TOKEN: p.token,
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));

      const download = await p.a.token({
        name: "download",
        sub: "download",
        scope: ["download"],
        repos: [REPO],
      });
      const url = (token?: string) =>
        `http://${token ? `x:${token}@` : ""}127.0.0.1:${p.port}/repo/${REPO}/`;
      /** A remote and an install in a fresh flatpak installation. */
      const tryInstall = async (name: string, token?: string) => {
        const env = await isolatedFlatpakEnv(join(work, name));
        p.requests.length = 0;
        const added = await flatpak(
          ["remote-add", "--no-gpg-verify", "yard", url(token)],
          env,
        );
        const installed = added.code === 0
          ? await flatpak(
            ["install", "-y", "--noninteractive", "yard", fixture.appId],
            env,
          )
          : added;
        return { env, added, installed, requests: [...p.requests] };
      };

      await t.step(
        "with a download token, install and run succeed",
        async () => {
          const r = await tryInstall("token", download);
          assert.equal(r.added.code, 0, r.added.stderr);
          assert.equal(r.installed.code, 0, r.installed.stderr);
          assert.equal(
            (await run("flatpak", ["--user", "run", fixture.appId], {
              env: r.env,
            }))
              .trim(),
            helloOutput(fixture.appId, hostArch()),
          );
          const files = r.requests.filter((q) =>
            q.path.startsWith(`/repo/${REPO}/`)
          );
          assert.ok(
            files.some((q) =>
              q.path.endsWith(".commit") || q.path.endsWith("/superblock")
            ),
          );
          assert.deepEqual(
            files.filter((q) => q.status === 401),
            [],
            "flatpak sends the credentials with every request",
          );
        },
      );

      const refused = async (
        name: string,
        token: string | undefined,
        message: RegExp,
      ) => {
        const r = await tryInstall(name, token);
        // flatpak 1.14 reads the summary on remote-add, so the remote is refused right there.
        assert.notEqual(r.added.code, 0, "remote-add fails");
        assert.match(r.added.stderr, /error: Server returned status 401/);
        const files = r.requests.filter((q) =>
          q.path.startsWith(`/repo/${REPO}/`)
        );
        assert.ok(files.length > 0, "the client asked the server");
        assert.ok(
          files.every((q) => q.status === 401),
          `every file is refused: ${JSON.stringify(files)}`,
        );
        const res = await fetch(`${p.base}/repo/${REPO}/summary.idx`, {
          headers: token
            ? { Authorization: `Basic ${btoa(`x:${token}`)}` }
            : {},
        });
        assert.equal(res.status, 401);
        assert.match(await res.text(), message);
        assert.match(res.headers.get("www-authenticate") ?? "", /^Basic /);
        assert.equal(
          (await flatpak(["info", fixture.appId], r.env)).code === 0,
          false,
          "nothing was installed",
        );
      };

      await t.step(
        "without a token, the client fails with the server's 401",
        () => refused("anonymous", undefined, /needs a download token/),
      );

      await t.step(
        "with an expired token, the client fails with the server's 401",
        async () => {
          const expired = await p.a.token({
            sub: "download",
            scope: ["download"],
            repos: [REPO],
            exp: unixNow(systemClock) - 60,
          });
          await refused("expired", expired, /Invalid download token/);
        },
      );

      await t.step("a token for another repository is refused", async () => {
        const other = await p.a.token({
          sub: "download",
          scope: ["download"],
          repos: ["stable"],
        });
        await refused("other", other, /needs a download token/);
      });
    } finally {
      await p.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
