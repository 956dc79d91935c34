/**
 * Detached metadata against real `ostree` 2022.7 and GnuPG: the `.commitmeta` we build matches
 * ostree's bytes, its signatures verify with `gpg --verify` and `ostree show`, other keys are
 * kept, and an `ostree.gpgsigs` of the wrong type is refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ostreeRepo, run } from "../../tests/support/ostree_fixture.ts";
import {
  decodeSignatures,
  encodeDetachedMetadata,
  GPG_SIGS_KEY,
  withGpgSignature,
} from "./detached_metadata.ts";
import { GVariantError, Variant } from "./gvariant.ts";

Deno.test("detached signatures interoperate with ostree gpg-sign, gpg --verify and ostree show", async (t) => {
  await using r = await ostreeRepo();
  const env = { GNUPGHOME: join(r.dir, "gnupg") };
  await Deno.mkdir(env.GNUPGHOME, { mode: 0o700 });
  const keys = join(r.dir, "keys"); // a keyring dir for ostree show: it reads *.gpg files
  await Deno.mkdir(keys);
  try {
    const fprs: string[] = [];
    for (const user of ["T <t@x>", "U <u@x>"]) {
      await run("gpg", [
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        user,
        "ed25519",
        "sign",
        "never",
      ], { env });
      const listing = await run("gpg", ["--with-colons", "--list-keys", user], {
        env,
      });
      fprs.push(listing.match(/^fpr:+([0-9A-F]{40}):/m)![1]!);
    }
    await run("gpg", [
      "--output",
      join(keys, "trusted.gpg"),
      "--export",
      ...fprs,
    ], { env });
    const commitFile = r.object(r.commit, "commit"),
      metaFile = r.object(r.commit, "commitmeta");
    await run("ostree", [
      `--repo=${r.repo}`,
      "gpg-sign",
      r.commit,
      fprs[0]!,
      `--gpg-homedir=${env.GNUPGHOME}`,
    ]);
    const signed = await Deno.readFile(metaFile);
    const { metadata, signatures } = decodeSignatures(signed);
    const ours = signatures[0]!;
    const other = join(r.dir, "other.sig");
    await run("gpg", [
      "--batch",
      "-u",
      fprs[1]!,
      "--detach-sign",
      "--output",
      other,
      commitFile,
    ], { env });
    const otherSig = await Deno.readFile(other);

    await t.step(
      "ostree's signature verifies over the exact .commit file",
      async () => {
        assert.equal(signatures.length, 1);
        assert.deepEqual([...metadata.keys()], [GPG_SIGS_KEY]);
        const sigFile = join(r.dir, "sig.bin");
        await Deno.writeFile(sigFile, ours);
        await run("gpg", ["--verify", sigFile, commitFile], { env });
        const tampered = join(r.dir, "tampered");
        await Deno.writeFile(
          tampered,
          (await Deno.readFile(commitFile)).map((b, i) => i === 0 ? b ^ 1 : b),
        );
        await assert.rejects(
          run("gpg", ["--verify", sigFile, tampered], { env }),
          /BAD signature/,
        );
      },
    );

    await t.step("building the same commitmeta gives ostree's bytes", () => {
      assert.deepEqual(withGpgSignature(undefined, ours), signed);
      assert.deepEqual(encodeDetachedMetadata(metadata), signed);
      assert.deepEqual(decodeSignatures(new Uint8Array()), {
        metadata: new Map(),
        signatures: [],
      });
    });

    await t.step(
      "a second signature is appended and ostree show verifies both",
      async () => {
        const both = withGpgSignature(signed, otherSig);
        assert.deepEqual(decodeSignatures(both).signatures, [ours, otherSig]);
        await Deno.writeFile(metaFile, both);
        const shown = await run("ostree", [
          `--repo=${r.repo}`,
          "show",
          r.commit,
          `--gpg-homedir=${keys}`,
        ]);
        assert.match(shown, /Found 2 signatures/);
        assert.match(
          shown,
          /Good signature from "T <t@x>"[^]*Good signature from "U <u@x>"/,
        );
        assert.deepEqual(
          withGpgSignature(both, otherSig),
          both,
          "the same signature again is not added",
        );
        assert.deepEqual(withGpgSignature(both, ours), both);
      },
    );

    await t.step(
      "other detached keys are kept, in order, and ostree reads them",
      async () => {
        const start = encodeDetachedMetadata(
          new Map([["xa.first", new Variant("s", "kept")]]),
        );
        const out = withGpgSignature(start, ours);
        const { metadata: kept, signatures: sigs } = decodeSignatures(out);
        assert.deepEqual([...kept.keys()], ["xa.first", GPG_SIGS_KEY]);
        assert.deepEqual(sigs, [ours]);
        await Deno.writeFile(metaFile, out);
        const shown = await run("ostree", [
          `--repo=${r.repo}`,
          "show",
          "--print-detached-metadata-key=xa.first",
          r.commit,
        ]);
        assert.equal(shown.trim(), "'kept'");
      },
    );

    await t.step(
      "ostree gpg-sign appends to the metadata we wrote",
      async () => {
        // (`ostree gpg-sign --delete` is no use here: 2022.7 reports "Signatures deleted: 0"
        // even for signatures it made itself.)
        await run("ostree", [
          `--repo=${r.repo}`,
          "gpg-sign",
          r.commit,
          fprs[1]!,
          `--gpg-homedir=${env.GNUPGHOME}`,
        ]);
        const after = decodeSignatures(await Deno.readFile(metaFile));
        assert.deepEqual(
          after.metadata.get("xa.first"),
          new Variant("s", "kept"),
        );
        assert.equal(after.signatures.length, 2);
        assert.deepEqual(after.signatures[0], ours);
      },
    );

    await t.step("ostree.gpgsigs of another type is refused", () => {
      const wrong = encodeDetachedMetadata(
        new Map([[GPG_SIGS_KEY, new Variant("as", ["x"])]]),
      );
      assert.throws(() => decodeSignatures(wrong), GVariantError);
      assert.throws(
        () => withGpgSignature(wrong, ours),
        /of type "aay", found "as"/,
      );
    });
  } finally {
    await run("gpgconf", ["--kill", "all"], { env });
  }
});
