/**
 * Repository signing keys through the API: generation, import (with passphrases), idempotent
 * re-import, rotation, exports, sealing at rest, permissions, and the served `.flatpakrepo`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dbTest } from "./support/db.ts";
import { expectJson, type TestApp, testApp } from "./support/app.ts";
import { run } from "../lib/ostree/cli.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";

async function setup(db: Parameters<typeof testApp>[0]) {
  const a = await testApp(db);
  await a.user("root", "admin");
  const s = await a.login("root");
  await expectJson(
    await a.req("POST", "/api/v1/repos", {
      token: s,
      body: {
        name: "stable",
        title: "Stable Apps",
        collectionId: "org.example.Stable",
        homepage: "https://example.org",
        description: "Our apps\nMore text",
      },
    }),
    201,
  );
  return { a, s };
}

/** A passphrase-protected RSA key made by real GnuPG, armored. */
async function gnupgKey(
  passphrase: string,
): Promise<{ armored: string; fingerprint: string; home: string }> {
  const home = await Deno.makeTempDir({ prefix: "flatyard-gpg-" });
  await Deno.chmod(home, 0o700);
  const env = { GNUPGHOME: home };
  await run("gpg", [
    "--batch",
    "--pinentry-mode",
    "loopback",
    "--passphrase",
    passphrase,
    "--quick-gen-key",
    "Imported <imp@example.org>",
    "rsa2048",
    "sign",
    "never",
  ], { env });
  const fpr = (await run("gpg", ["--list-keys", "--with-colons"], { env }))
    .split("\n").find((l) => l.startsWith("fpr"))!.split(":")[9]!;
  const armored = await run("gpg", [
    "--batch",
    "--pinentry-mode",
    "loopback",
    "--passphrase",
    passphrase,
    "--armor",
    "--export-secret-keys",
    fpr,
  ], { env });
  return { armored, fingerprint: fpr, home };
}

const keysOf = async (a: TestApp, token?: string) =>
  await expectJson(
    await a.req("GET", "/api/v1/repos/stable/keys", token ? { token } : {}),
    200,
  );

dbTest(
  "generate a key, list it, export it three ways; no private material anywhere",
  async (db) => {
    const { a, s } = await setup(db);
    try {
      const res = await a.req("POST", "/api/v1/repos/stable/keys", {
        token: s,
        body: { generate: { algorithm: "eddsa-legacy" } },
      });
      const key = await expectJson(res, 201);
      assert.match(key.fingerprint, /^[0-9A-F]{40}$/);
      assert.deepEqual([key.algorithm, key.purpose, key.active], [
        "eddsa-legacy",
        "repo",
        true,
      ]);
      assert.deepEqual(key.userIds, ["Stable Apps signing key"]);
      assert.deepEqual(
        (await keysOf(a)).map((k: { fingerprint: string }) => k.fingerprint),
        [key.fingerprint],
      );

      const armored = await a.req(
        "GET",
        `/api/v1/repos/stable/keys/${key.fingerprint}`,
      );
      assert.equal(armored.headers.get("content-type"), "application/pgp-keys");
      const armorText = await armored.text();
      assert.match(armorText, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
      const binary = new Uint8Array(
        await (await a.req(
          "GET",
          `/api/v1/repos/stable/keys/${key.fingerprint}?format=binary`,
        )).arrayBuffer(),
      );
      const base64 = await (await a.req(
        "GET",
        `/api/v1/repos/stable/keys/${key.fingerprint.toLowerCase()}?format=base64`,
      )).text();
      assert.deepEqual(
        Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)),
        binary,
      );
      // GnuPG reads the binary export and finds the same fingerprint.
      const home = await Deno.makeTempDir();
      await Deno.chmod(home, 0o700);
      await Deno.writeFile(join(home, "k.gpg"), binary);
      const shown = await run("gpg", [
        "--batch",
        "--with-colons",
        "--show-keys",
        join(home, "k.gpg"),
      ], { env: { GNUPGHOME: home } });
      assert.match(shown, new RegExp(`fpr:+${key.fingerprint}:`));
      assert.doesNotMatch(shown, /^sec/m, "a public key only");

      const everything =
        JSON.stringify([key, await keysOf(a), await a.deps.audit.list({})]) +
        armorText;
      assert.doesNotMatch(everything, /PRIVATE KEY/);
      const [row] = await db.query<
        { sealed_private: string; public_key: string }
      >("SELECT sealed_private, public_key FROM signing_keys");
      const sealed = Uint8Array.from(
        atob(row!.sealed_private),
        (c) => c.charCodeAt(0),
      );
      assert.equal(sealed[0], 1, "sealed format version 1");
      // The sealed blob is not an OpenPGP packet stream (a secret-key packet starts with 0xc5 or 0x95).
      assert.ok(![0xc5, 0x95, 0x94].includes(sealed[1]!) || sealed.length < 50);
      const signer = await a.deps.repoKeys.signer(
        (await a.deps.db.query<{ id: number }>("SELECT id FROM repos"))[0]!.id,
        "repo",
      );
      assert.equal(signer?.fingerprint, key.fingerprint);
    } finally {
      await a.close();
    }
  },
);

dbTest(
  "import a GnuPG key with its passphrase; re-import is idempotent; a bad passphrase is a clear 400",
  async (db) => {
    const { a, s } = await setup(db);
    const gpg = await gnupgKey("s3cret pass");
    try {
      const noPass = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: { import: { armored: gpg.armored } },
        }),
        400,
      );
      assert.equal(
        noPass.detail,
        "The private key is protected; give its passphrase",
      );
      const bad = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: { import: { armored: gpg.armored, passphrase: "wrong" } },
        }),
        400,
      );
      assert.equal(bad.detail, "Wrong passphrase for the private key");
      const garbage = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: {
            import: {
              armored: "-----BEGIN PGP PRIVATE KEY BLOCK-----\nnope\n",
            },
          },
        }),
        400,
      );
      assert.ok(garbage.detail.length > 0);
      assert.deepEqual(await keysOf(a), [], "nothing stored by the failures");

      const body = {
        import: { armored: gpg.armored, passphrase: "s3cret pass" },
      };
      const first = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", { token: s, body }),
        201,
      );
      assert.equal(first.fingerprint, gpg.fingerprint);
      const again = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", { token: s, body }),
        200,
      );
      assert.deepEqual(again, first);
      assert.equal((await keysOf(a)).length, 1);
      assert.equal((await db.query("SELECT 1 FROM signing_keys")).length, 1);
      const audit = await a.deps.audit.list({ action: "key.import" });
      assert.deepEqual(audit.map((e) => e.details.added), [false, true]);
      assert.doesNotMatch(JSON.stringify(audit), /s3cret|PRIVATE/);
    } finally {
      await a.close();
      // gpg starts an agent per GNUPGHOME: stop it before removing its home.
      await run("gpgconf", ["--kill", "gpg-agent"], {
        env: { GNUPGHOME: gpg.home },
      }).catch(() => {});
      await Deno.remove(gpg.home, { recursive: true });
    }
  },
);

dbTest(
  "rotation: the new key signs from then on, the old one stays listed and exportable",
  async (db) => {
    const { a, s } = await setup(db);
    try {
      const k1 = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: { generate: { algorithm: "eddsa-legacy" } },
        }),
        201,
      );
      const k2 = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: { generate: { algorithm: "eddsa-legacy" } },
        }),
        201,
      );
      const build = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: { purpose: "build", generate: { algorithm: "eddsa-legacy" } },
        }),
        201,
      );
      const list = await keysOf(a);
      const byFpr = (f: string, p = "repo") =>
        list.find((k: { fingerprint: string; purpose: string }) =>
          k.fingerprint === f && k.purpose === p
        );
      assert.equal(byFpr(k2.fingerprint).active, true);
      assert.equal(byFpr(k1.fingerprint).active, false);
      assert.ok(byFpr(k1.fingerprint).retiredAt);
      assert.equal(
        byFpr(build.fingerprint, "build").active,
        true,
        "the build key is apart",
      );
      assert.equal(
        (await a.req("GET", `/api/v1/repos/stable/keys/${k1.fingerprint}`))
          .status,
        200,
      );
      const repoId =
        (await db.query<{ id: number }>("SELECT id FROM repos"))[0]!.id;
      assert.equal(
        (await a.deps.repoKeys.signer(repoId, "repo"))?.fingerprint,
        k2.fingerprint,
      );
      assert.equal(
        (await a.deps.repoKeys.signer(repoId, "build"))?.fingerprint,
        build.fingerprint,
      );
      // Re-activating the old key is a rotation back, not a new key.
      const back = await a.req("POST", "/api/v1/repos/stable/keys", {
        token: s,
        body: { generate: { algorithm: "eddsa-legacy" }, activate: false },
      });
      assert.equal((await expectJson(back, 201)).active, false);
      assert.equal(
        (await a.deps.repoKeys.signer(repoId, "repo"))?.fingerprint,
        k2.fingerprint,
      );
    } finally {
      await a.close();
    }
  },
);

dbTest("key routes: permissions and validation", async (db, t) => {
  const { a, s } = await setup(db);
  try {
    await expectJson(
      await a.req("POST", "/api/v1/repos", {
        token: s,
        body: { name: "priv", public: false },
      }),
      201,
    );
    await a.user("writer", "viewer", { stable: "write" });
    const w = await a.login("writer");
    const cases: [
      string,
      string | undefined,
      string,
      string,
      unknown,
      number,
    ][] = [
      ["repo writer adds a key", w, "POST", "/api/v1/repos/stable/keys", {
        generate: {},
      }, 403],
      ["anonymous adds a key", undefined, "POST", "/api/v1/repos/stable/keys", {
        generate: {},
      }, 401],
      ["both generate and import", s, "POST", "/api/v1/repos/stable/keys", {
        generate: {},
        import: { armored: "x" },
      }, 422],
      ["neither", s, "POST", "/api/v1/repos/stable/keys", {}, 422],
      ["unknown algorithm", s, "POST", "/api/v1/repos/stable/keys", {
        generate: { algorithm: "curve25519" },
      }, 422],
      ["unknown repo", s, "POST", "/api/v1/repos/nope/keys", {
        generate: { algorithm: "eddsa-legacy" },
      }, 404],
      [
        "anonymous lists a private repo's keys",
        undefined,
        "GET",
        "/api/v1/repos/priv/keys",
        undefined,
        404,
      ],
      [
        "bad fingerprint",
        s,
        "GET",
        "/api/v1/repos/stable/keys/XYZ",
        undefined,
        422,
      ],
      [
        "unknown fingerprint",
        s,
        "GET",
        `/api/v1/repos/stable/keys/${"A".repeat(40)}`,
        undefined,
        404,
      ],
      [
        "unknown export format",
        s,
        "GET",
        `/api/v1/repos/stable/keys/${"A".repeat(40)}?format=pem`,
        undefined,
        422,
      ],
    ];
    for (const [what, token, method, path, body, status] of cases) {
      await t.step(`${what} → ${status}`, async () => {
        const res = await a.req(method, path, {
          ...(token ? { token } : {}),
          ...(body === undefined ? {} : { body }),
        });
        assert.equal(res.status, status, await res.text());
      });
    }
  } finally {
    await a.close();
  }
});

dbTest(
  "GET /repo/<name>.flatpakrepo carries the repository's settings and keyring",
  async (db) => {
    const { a, s } = await setup(db);
    try {
      const unsigned = KeyFile.parse(
        await (await a.req("GET", "/repo/stable.flatpakrepo")).text(),
      );
      assert.equal(unsigned.get("Flatpak Repo", "GPGKey"), undefined);
      assert.equal(
        unsigned.get("Flatpak Repo", "DeploySideloadCollectionID"),
        undefined,
        "no collection ID without a key",
      );
      const k1 = await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: { generate: { algorithm: "eddsa-legacy" } },
        }),
        201,
      );
      const res = await a.req("GET", "/repo/stable.flatpakrepo");
      assert.equal(
        res.headers.get("content-type"),
        "application/vnd.flatpak.repo",
      );
      const text = await res.text();
      assert.match(text, /^\[Flatpak Repo\]\n/);
      const kf = KeyFile.parse(text);
      const get = (k: string) => kf.get("Flatpak Repo", k);
      assert.equal(get("Title"), "Stable Apps");
      assert.equal(get("Url"), "http://127.0.0.1:8080/repo/stable/");
      assert.equal(get("Homepage"), "https://example.org");
      assert.equal(get("Comment"), "Our apps");
      assert.equal(get("Description"), "Our apps\nMore text");
      assert.equal(get("DefaultBranch"), "stable");
      assert.equal(get("DeploySideloadCollectionID"), "org.example.Stable");
      const exported = new Uint8Array(
        await (await a.req(
          "GET",
          `/api/v1/repos/stable/keys/${k1.fingerprint}?format=binary`,
        )).arrayBuffer(),
      );
      assert.deepEqual(
        Uint8Array.from(atob(get("GPGKey")!), (c) => c.charCodeAt(0)),
        exported,
      );
      // After a rotation the keyring holds both keys.
      await expectJson(
        await a.req("POST", "/api/v1/repos/stable/keys", {
          token: s,
          body: { generate: { algorithm: "eddsa-legacy" } },
        }),
        201,
      );
      const rotated = KeyFile.parse(
        await (await a.req("GET", "/repo/stable.flatpakrepo")).text(),
      ).get("Flatpak Repo", "GPGKey")!;
      assert.ok(atob(rotated).length > exported.length);
      assert.equal((await a.req("GET", "/repo/nope.flatpakrepo")).status, 404);
    } finally {
      await a.close();
    }
  },
);
