/** Signing keys against real GnuPG 2.2: generation, import of gpg keys, refusals, signatures. */
import assert from "node:assert/strict";
import * as openpgp from "openpgp";
import {
  armorPublicKey,
  createSigner,
  generateSigningKey,
  importSigningKey,
  KeyImportError,
  type SigningKeyMaterial,
} from "./keys.ts";

const data = new TextEncoder().encode(
  "the exact bytes of a .commit object\n\0\x01\xff",
);

/** Runs gpg in `home`; the environment keeps gpg off the user's own keyring. */
async function gpg(home: string, args: string[], stdin?: Uint8Array) {
  const child = new Deno.Command("gpg", {
    args: ["--batch", "--homedir", home, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  return {
    ok: out.success,
    stdout: out.stdout,
    text: new TextDecoder().decode(out.stdout),
  };
}

/** A throwaway GNUPGHOME (mode 0700, as gpg insists), its agent stopped afterwards. */
async function withGnupgHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = await Deno.makeTempDir({ prefix: "flatyard-gpg-" });
  await Deno.chmod(home, 0o700);
  try {
    return await fn(home);
  } finally {
    await new Deno.Command("gpgconf", {
      args: ["--homedir", home, "--kill", "gpg-agent"],
    })
      .output();
    await Deno.remove(home, { recursive: true });
  }
}

/** gpg's status lines for verifying `sig` over `signed` with only `publicKey` known. */
function gpgVerify(publicKey: Uint8Array, sig: Uint8Array, signed: Uint8Array) {
  return withGnupgHome(async (home) => {
    assert.ok(
      (await gpg(home, ["--import"], publicKey)).ok,
      "gpg --import of the public key",
    );
    await Deno.writeFile(`${home}/sig.bin`, sig);
    await Deno.writeFile(`${home}/data.bin`, signed);
    const packets = await gpg(home, ["--list-packets", `${home}/sig.bin`]);
    const status = await gpg(home, [
      "--status-fd",
      "1",
      "--verify",
      `${home}/sig.bin`,
      `${home}/data.bin`,
    ]);
    return { packets: packets.text, status: status.text };
  });
}

/** Signs `data` with the material's key and checks the result the way an ostree client does. */
async function assertGnupgVerifiesSignature(
  material: SigningKeyMaterial,
  algo: number,
) {
  const signer = await createSigner(material.privateKey);
  assert.equal(signer.fingerprint, material.fingerprint);
  const sig = await signer.sign(data);
  assert.ok((sig[0]! & 0x80) !== 0, "a binary packet, not armor");
  const { packets, status } = await gpgVerify(material.publicKey, sig, data);
  assert.match(
    packets,
    new RegExp(
      `:signature packet: algo ${algo}, [^]*?\\bversion 4, .*sigclass 0x00\\n`,
    ),
  );
  assert.match(packets, /digest algo (8|9|10),/); // SHA-256/384/512
  assert.match(status, /\[GNUPG:\] GOODSIG /);
  assert.match(
    status,
    new RegExp(`\\[GNUPG:\\] VALIDSIG \\w+ .* ${material.fingerprint}\\n`),
  );
  // The same signer signs again without re-parsing, and a changed byte must not verify.
  const again = await signer.sign(data);
  const tampered = data.slice();
  tampered[0] = tampered[0]! ^ 1;
  assert.match(
    (await gpgVerify(material.publicKey, again, tampered)).status,
    /BADSIG/,
  );
}

function assertV4(material: SigningKeyMaterial, algo: number) {
  assert.match(material.fingerprint, /^[0-9A-F]{40}$/);
  assert.equal(material.keyId, material.fingerprint.slice(-16));
  return openpgp.readKey({ binaryKey: material.publicKey }).then((key) => {
    assert.equal(key.keyPacket.version, 4);
    assert.equal(key.keyPacket.algorithm, algo);
  });
}

/** `gpg --quick-gen-key UID ALGO USAGE EXPIRE` in `home`, then its secret-key exports. */
async function gpgKey(
  home: string,
  uid: string,
  spec: string,
  pw = "",
  ...more: string[]
) {
  const loopback = ["--pinentry-mode", "loopback", "--passphrase", pw];
  const made = await gpg(home, [
    ...more,
    ...loopback,
    "--quick-gen-key",
    uid,
    ...spec.split(" "),
  ]);
  assert.ok(made.ok, `gpg --quick-gen-key ${spec}`);
  const listing = (await gpg(home, ["--with-colons", "--list-keys", uid])).text;
  const exported =
    (await gpg(home, [...loopback, "--export-secret-keys", uid])).stdout;
  return {
    fpr: listing.match(/^fpr:+([0-9A-F]{40}):/m)?.[1],
    binary: exported,
    armored:
      (await gpg(home, [...loopback, "--armor", "--export-secret-keys", uid]))
        .text,
    public: (await gpg(home, ["--export", uid])).stdout,
  };
}

Deno.test("generateSigningKey makes v4 keys whose signatures GnuPG verifies", async (t) => {
  const cases = [["eddsa-legacy", 22], ["rsa4096", 1]] as const;
  for (const [algorithm, algo] of cases) {
    await t.step(algorithm, async () => {
      const m = await generateSigningKey({
        algorithm,
        name: "Repo",
        email: "r@example.org",
      });
      await assertV4(m, algo);
      assert.equal(m.algorithm, algorithm);
      assert.deepEqual(m.userIds, ["Repo <r@example.org>"]);
      assert.equal(m.expiresAt, null);
      const secret = await openpgp.readPrivateKey({ binaryKey: m.privateKey });
      assert.ok(secret.isDecrypted(), "stored material carries no passphrase");
      assert.match(
        await armorPublicKey(m.publicKey),
        /^-----BEGIN PGP PUBLIC KEY BLOCK-----/,
      );
      await assertGnupgVerifiesSignature(m, algo);
    });
  }
});

Deno.test("importSigningKey takes keys made by GnuPG and signs as they would", async (t) => {
  await withGnupgHome(async (home) => {
    const cases = [
      ["rsa3072", "pw", "rsa3072", 1],
      ["ed25519", "", "eddsa-legacy", 22],
      ["dsa2048", "", "dsa2048", 17],
      ["nistp256", "", "ecdsa-p256", 19],
    ] as const;
    for (const [gpgAlgo, pw, name, algo] of cases) {
      await t.step(`${gpgAlgo}${pw ? " with a passphrase" : ""}`, async () => {
        const uid = `${gpgAlgo} <k@x>`;
        const key = await gpgKey(home, uid, `${gpgAlgo} sign never`, pw);
        const m = await importSigningKey(key.armored, pw || undefined);
        assert.equal(m.fingerprint, key.fpr);
        assert.equal(m.algorithm, name);
        assert.deepEqual(m.userIds, [uid]);
        await assertV4(m, algo);
        await assertGnupgVerifiesSignature(m, algo);
        // Deterministic material; binary and armor-as-bytes inputs give the same key.
        const asBytes = new TextEncoder().encode(key.armored);
        for (const input of [key.armored, key.binary, asBytes]) {
          const again = await importSigningKey(input, pw || undefined);
          assert.equal(again.fingerprint, m.fingerprint);
          assert.deepEqual(again.publicKey, m.publicKey);
          assert.deepEqual(again.privateKey, m.privateKey);
        }
      });
    }
  });
});

Deno.test("importSigningKey refuses keys flatpak clients cannot use", async (t) => {
  await withGnupgHome(async (home) => {
    const locked = await gpgKey(
      home,
      "Locked <l@x>",
      "ed25519 sign never",
      "pw",
    );
    const ed = await gpgKey(home, "Ed <e@x>", "ed25519 sign never");
    const past = ["--faked-system-time", "20200101T000000"];
    const expired = await gpgKey(
      home,
      "Old <o@x>",
      "ed25519 sign 1d",
      "",
      ...past,
    );
    const certOnly = await gpgKey(home, "Cert <c@x>", "ed25519 cert never");
    const openpgpKey = async (type: "curve25519" | "ecc", v6Keys: boolean) =>
      (await openpgp.generateKey({
        type,
        userIDs: [{ name: "J" }],
        config: { v6Keys },
      }))
        .privateKey;
    const { privateKey: revoked } = await openpgp.revokeKey({
      key: await openpgp.readPrivateKey({
        armoredKey: await openpgpKey("ecc", false),
      }),
    });
    const only =
      "only v4 RSA/DSA/ECDSA/legacy EdDSA keys work with flatpak clients";
    const fpr = '^Key "[0-9A-F]{40}"';
    const cases: [string, string | Uint8Array, string | undefined, RegExp][] = [
      [
        "garbage text",
        "hello, not a key",
        undefined,
        /^The input is not an OpenPGP key$/,
      ],
      [
        "a public key only",
        ed.public,
        undefined,
        RegExp(`${fpr} is only a public key; give`),
      ],
      [
        "two keys at once",
        new Uint8Array([...ed.binary, ...certOnly.binary]),
        undefined,
        /^The input holds 2 keys; give exactly one$/,
      ],
      [
        "a v4 RFC 9580 Ed25519 key (algorithm 27)",
        await openpgpKey("curve25519", false),
        undefined,
        RegExp(
          `${fpr} uses algorithm 27 \\(ed25519\\), which GnuPG 2.2 cannot verify; ${only}$`,
        ),
      ],
      [
        "a v6 key",
        await openpgpKey("curve25519", true),
        undefined,
        RegExp(
          `^Key "[0-9A-F]{64}" is a v6 key, which GnuPG 2.2 cannot read; ${only}$`,
        ),
      ],
      [
        "an expired key",
        expired.armored,
        undefined,
        RegExp(`${fpr} expired on 2020-01-02T00:`),
      ],
      ["a revoked key", revoked, undefined, RegExp(`${fpr} is revoked$`)],
      [
        "a certify-only key",
        certOnly.armored,
        undefined,
        RegExp(`${fpr} cannot sign data: `),
      ],
      [
        "a protected key without passphrase",
        locked.armored,
        undefined,
        /^The private key is protected; give its passphrase$/,
      ],
      [
        "a protected key with the wrong passphrase",
        locked.armored,
        "wrong",
        /^Wrong passphrase for the private key$/,
      ],
    ];
    for (const [name, input, passphrase, message] of cases) {
      await t.step(name, async () => {
        const err = await importSigningKey(input, passphrase).then(
          () => assert.fail("imported"),
          (e: unknown) => e,
        );
        assert.ok(err instanceof KeyImportError, String(err));
        assert.match(err.message, message);
        assert.doesNotMatch(
          err.message.replace(/"[0-9A-F]+"/g, ""), // quoted fingerprints are fine
          /[A-Za-z0-9+/=]{32}/,
          "no key material in the message",
        );
      });
    }
    // The right passphrase opens the same locked key.
    assert.equal(
      (await importSigningKey(locked.armored, "pw")).fingerprint,
      locked.fpr,
    );
  });
});
