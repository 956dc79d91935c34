import assert from "node:assert/strict";
import { join } from "node:path";
import { encode, Variant } from "../ostree/gvariant.ts";
import { BUNDLE_TYPE, BundleError, readBundleHeader } from "./bundle_header.ts";

const COMMIT =
  "9e616ef2be9453c4490fdba16fb35b91ef1a8d02e9bf57ad888d8f0278ca2e58";
const bytesOf = (hex: string) =>
  Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));

/** A superblock shaped like flatpak's bundles, with `padding` bytes of inline data. */
function bundle(
  metadata: Map<string, Variant>,
  padding = 0,
  to = bytesOf(COMMIT),
): Uint8Array {
  const commit = [
    new Map(),
    new Uint8Array(0),
    [],
    "subject",
    "body",
    0n,
    new Uint8Array(32),
    new Uint8Array(32),
  ];
  return encode(BUNDLE_TYPE, [
    metadata,
    1700000000n,
    new Uint8Array(0),
    to,
    commit,
    new Uint8Array(padding),
    [],
    [],
  ]);
}

Deno.test("readBundleHeader reads the ref and commit, and refuses what is not a bundle", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "flatyard-bundle-" });
  const file = async (bytes: Uint8Array) => {
    const path = join(dir, crypto.randomUUID());
    await Deno.writeFile(path, bytes);
    return path;
  };
  const ref = "app/org.example.Hello/x86_64/master";
  try {
    // Sizes that make the framing offsets 1, 2 and 4 bytes wide.
    for (const padding of [0, 300, 70_000]) {
      await t.step(`a bundle with ${padding} bytes of parts`, async () => {
        const header = await readBundleHeader(
          await file(bundle(
            new Map([
              ["ref", new Variant("s", ref)],
              ["origin", new Variant("s", "https://example.org")],
            ]),
            padding,
          )),
        );
        assert.deepEqual(header, { ref, commit: COMMIT });
      });
    }
    const refused: [string, Uint8Array][] = [
      ["an empty file", new Uint8Array(0)],
      ["text", new TextEncoder().encode("not a bundle at all\n".repeat(20))],
      ["no ref", bundle(new Map([["origin", new Variant("s", "x")]]))],
      [
        "a ref that is no string",
        bundle(new Map([["ref", new Variant("u", 7)]])),
      ],
      [
        "a ref of no app or runtime",
        bundle(new Map([["ref", new Variant("s", "../../etc")]])),
      ],
      [
        "a short checksum",
        bundle(
          new Map([["ref", new Variant("s", ref)]]),
          0,
          new Uint8Array(31),
        ),
      ],
      [
        "a truncated bundle",
        bundle(new Map([["ref", new Variant("s", ref)]]), 500).slice(0, 400),
      ],
    ];
    for (const [name, bytes] of refused) {
      await t.step(`refuses ${name}`, async () => {
        await assert.rejects(readBundleHeader(await file(bytes)), BundleError);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
