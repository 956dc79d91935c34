/** Sealing private keys at rest: round trip, and every way opening must fail. */
import assert from "node:assert/strict";
import { seal, SealError, unseal } from "./sealed.ts";

const master = crypto.getRandomValues(new Uint8Array(32));
const secret = new TextEncoder().encode(
  "-----BEGIN PGP PRIVATE KEY BLOCK----- not really",
);
const context = "signing-key:stable:1";

Deno.test("seal then unseal gives the plaintext back, with a fresh IV each time", async () => {
  const a = await seal(master, secret, context);
  const b = await seal(master, secret, context);
  assert.equal(a[0], 1);
  assert.equal(a.length, 1 + 12 + secret.length + 16);
  assert.notDeepEqual(a.subarray(1, 13), b.subarray(1, 13));
  assert.deepEqual(await unseal(master, a, context), secret);
  assert.deepEqual(await unseal(master, b, context), secret);
  assert.deepEqual(
    await unseal(master, await seal(master, new Uint8Array(), ""), ""),
    new Uint8Array(),
  );
});

Deno.test("the AES key is derived, not the master key itself", async () => {
  const sealed = await seal(master, secret, context);
  const raw = await crypto.subtle.importKey("raw", master, "AES-GCM", false, [
    "decrypt",
  ]);
  await assert.rejects(() =>
    crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: sealed.slice(1, 13),
        additionalData: new TextEncoder().encode(context),
      },
      raw,
      sealed.slice(13),
    )
  );
});

Deno.test("unseal refuses anything but the exact sealed bytes, key and context", async (t) => {
  const sealed = await seal(master, secret, context);
  const flip = (i: number) => {
    const copy = sealed.slice();
    copy[i] = copy[i]! ^ 0x01;
    return copy;
  };
  const other = crypto.getRandomValues(new Uint8Array(32));
  const version2 = sealed.slice();
  version2[0] = 2;
  const cases: [string, Uint8Array, Uint8Array, string, RegExp][] = [
    ["a wrong master key", other, sealed, context, /wrong master key/],
    [
      "another row's context",
      master,
      sealed,
      "signing-key:stable:2",
      /wrong context/,
    ],
    ["a flipped IV byte", master, flip(5), context, /tampered/],
    ["a flipped ciphertext byte", master, flip(20), context, /tampered/],
    [
      "a flipped tag byte",
      master,
      flip(sealed.length - 1),
      context,
      /tampered/,
    ],
    [
      "a truncated tag",
      master,
      sealed.subarray(0, sealed.length - 1),
      context,
      /tampered/,
    ],
    [
      "data cut to the header",
      master,
      sealed.subarray(0, 20),
      context,
      /^Sealed data is truncated \(20 bytes\)$/,
    ],
    [
      "nothing at all",
      master,
      new Uint8Array(),
      context,
      /truncated \(0 bytes\)/,
    ],
    ["version 2", master, version2, context, /^Unknown sealed data version 2$/],
    [
      "a 16-byte master key",
      master.subarray(0, 16),
      sealed,
      context,
      /^The master key must be 32 bytes, not 16$/,
    ],
  ];
  for (const [name, key, data, ctx, message] of cases) {
    await t.step(name, async () => {
      const err = await unseal(key, data, ctx).then(
        () => assert.fail("unsealed"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SealError, String(err));
      assert.match(err.message, message);
    });
  }
});
