/**
 * Interoperability of Flatyard's own signing with the real clients (specs/ostree-repos.md §3):
 * an unsigned fixture repository is signed by lib/ostree/sign.ts with a key generated through
 * the API, served by Flatyard's HTTP server, and then
 * - `ostree pull` with gpg-verify and gpg-verify-summary succeeds;
 * - `flatpak remote-add --from <served .flatpakrepo>`, install and run succeed;
 * - a tampered summary is rejected;
 * - a commit signed only with an unknown key is rejected.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { createFastPath } from "../lib/app.ts";
import { serveApp } from "../lib/http/node_server.ts";
import { expectJson, testApp } from "./support/app.ts";
import {
  cachedFixtureRepo,
  helloOutput,
  hostArch,
  isolatedFlatpakEnv,
} from "./support/flatpak_fixtures.ts";
import { CommandError, ostree, run } from "../lib/ostree/cli.ts";
import { objectPath, signCommit, signSummaries } from "../lib/ostree/sign.ts";
import { createSigner, generateSigningKey } from "../lib/pgp/keys.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function fails(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CommandError) return err.stderr;
    throw err;
  }
  throw new Error("expected the client to refuse");
}

dbTest(
  "Flatyard-signed repositories verify in ostree and flatpak; tampering and unknown keys are refused",
  async (db, t) => {
    const arch = hostArch();
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const a = await testApp(db, { env: { FLATYARD_BASE_URL: base } });
    // With the fast path, as main.ts serves: the real clients fetch through it.
    const server = await serveApp(a.app, {
      hostname: "127.0.0.1",
      port,
      fastPath: createFastPath(a.deps),
    });
    const work = await Deno.makeTempDir({ prefix: "flatyard-interop-" });
    await using fixture = await cachedFixtureRepo({ arches: [arch] });
    try {
      await a.user("root", "admin");
      const s = await a.login("root");
      await expectJson(
        await a.req("POST", "/api/v1/repos", {
          token: s,
          body: { name: "interop", title: "Interop" },
        }),
        201,
      );
      const key = await expectJson(
        await a.req("POST", "/api/v1/repos/interop/keys", {
          token: s,
          body: { generate: { algorithm: "eddsa-legacy" } },
        }),
        201,
      );
      const repo = join(a.deps.config.dataDir, "repos", "interop");
      const repoId = (await db.query<{ id: number }>(
        "SELECT id FROM repos WHERE name = 'interop'",
      ))[0]!.id;
      const signer = (await a.deps.repoKeys.signer(repoId, "repo"))!;
      assert.equal(signer.fingerprint, key.fingerprint);

      // Unsigned commits in; Flatyard signs each, then the summary (made unsigned by flatpak).
      await ostree(repo, ["pull-local", fixture.repo, ...fixture.refs]);
      for (const ref of fixture.refs) {
        await signCommit(repo, fixture.commits[ref]!, signer);
      }
      await run("flatpak", [
        "build-update-repo",
        "--no-update-appstream",
        repo,
      ]);
      const { idxDigest } = await signSummaries(repo, signer);
      assert.ok(idxDigest);
      const appRef = fixture.refs.find((r) => r.startsWith("app/"))!;
      const runtimeRef = fixture.refs.find((r) =>
        r.startsWith("runtime/org.example.BusyBoxPlatform/")
      )!;

      const pubKey = join(work, "pub.gpg");
      await Deno.writeFile(
        pubKey,
        new Uint8Array(
          await (await a.req(
            "GET",
            `/api/v1/repos/interop/keys/${key.fingerprint}?format=binary`,
          )).arrayBuffer(),
        ),
      );
      const ostreeClient = async (name: string) => {
        const dir = join(work, name);
        await ostree(dir, ["init", "--mode=bare-user-only"]);
        await ostree(dir, [
          "remote",
          "add",
          "--set=gpg-verify=true",
          "--set=gpg-verify-summary=true",
          `--gpg-import=${pubKey}`,
          "origin",
          `${base}/repo/interop`,
        ]);
        return dir;
      };

      await t.step(
        "ostree pull with gpg-verify over HTTP succeeds",
        async () => {
          const client = await ostreeClient("oclient");
          await ostree(client, ["pull", "origin", appRef]);
          const shown = await ostree(client, [
            "show",
            `--gpg-verify-remote=origin`,
            fixture.commits[appRef]!,
          ]);
          assert.match(shown, /Good signature/);
          assert.match(shown, new RegExp(key.fingerprint.slice(-16), "i"));
        },
      );

      await t.step(
        "flatpak remote-add from the served .flatpakrepo, install and run succeed",
        async () => {
          const env = await isolatedFlatpakEnv(join(work, "flatpak"));
          await run("flatpak", [
            "--user",
            "remote-add",
            "--from",
            "interop",
            `${base}/repo/interop.flatpakrepo`,
          ], { env });
          const remotes = await run("flatpak", [
            "--user",
            "remotes",
            "--columns=name,title,url",
          ], { env });
          assert.match(remotes, /interop\s+Interop/);
          await run("flatpak", [
            "--user",
            "install",
            "-y",
            "--noninteractive",
            "interop",
            fixture.appId,
          ], { env });
          const out = await run("flatpak", ["--user", "run", fixture.appId], {
            env,
          });
          assert.equal(out.trim(), helloOutput(fixture.appId, arch));
        },
      );

      await t.step("a tampered summary is rejected", async () => {
        const path = join(repo, "summary");
        const good = await Deno.readFile(path);
        const bad = good.slice();
        bad[bad.length - 20] = bad[bad.length - 20]! ^ 0xff;
        await Deno.writeFile(path, bad);
        try {
          const client = await ostreeClient("tampered");
          const err = await fails(ostree(client, ["pull", "origin", appRef]));
          assert.match(err, /signature|GPG/i);
        } finally {
          await Deno.writeFile(path, good);
        }
      });

      await t.step(
        "a commit signed only with an unknown key is rejected",
        async () => {
          const meta = objectPath(
            repo,
            fixture.commits[runtimeRef]!,
            "commitmeta",
          );
          const good = await Deno.readFile(meta);
          const stranger = await createSigner(
            (await generateSigningKey({
              algorithm: "eddsa-legacy",
              name: "Stranger",
            })).privateKey,
          );
          await Deno.remove(meta);
          await signCommit(repo, fixture.commits[runtimeRef]!, stranger);
          try {
            const client = await ostreeClient("unknown-key");
            const err = await fails(
              ostree(client, ["pull", "origin", runtimeRef]),
            );
            assert.match(
              err,
              /public key not found|No GPG signatures|signature/i,
            );
            // The app, still signed with the repository's key, pulls fine from the same remote.
            await ostree(client, ["pull", "origin", appRef]);
          } finally {
            await Deno.writeFile(meta, good);
          }
        },
      );
    } finally {
      await server.shutdown();
      await a.close();
      await Deno.remove(work, { recursive: true });
    }
  },
);
