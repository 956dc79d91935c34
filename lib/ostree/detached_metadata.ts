/**
 * @module OSTree detached metadata (`.commitmeta`, `summary.sig`) and the GnuPG signatures it
 * carries under `ostree.gpgsigs` (specs/ostree-repos.md §3.1).
 */
import { decode, encode, GVariantError, Variant } from "./gvariant.ts";

/** The detached-metadata key of the GnuPG signatures, an `aay`. */
export const GPG_SIGS_KEY = "ostree.gpgsigs";

/** Serializes detached metadata (`a{sv}`) with its keys in the Map's order. */
export function encodeDetachedMetadata(
  metadata: Map<string, Variant>,
): Uint8Array<ArrayBuffer> {
  return encode("a{sv}", metadata);
}

/**
 * Parses detached metadata (an empty file is an empty `a{sv}`). `metadata` has every key,
 * `ostree.gpgsigs` included. Throws {@link GVariantError} if `ostree.gpgsigs` is not an `aay`.
 */
export function decodeSignatures(
  commitmeta: Uint8Array,
): { metadata: Map<string, Variant>; signatures: Uint8Array[] } {
  // The type string guarantees string keys and Variant values.
  const metadata = decode("a{sv}", commitmeta) as Map<string, Variant>;
  const sigs = metadata.get(GPG_SIGS_KEY);
  if (sigs && sigs.type !== "aay") {
    throw new GVariantError(
      `Expected "${GPG_SIGS_KEY}" of type "aay", found "${sigs.type}"`,
    );
  }
  return { metadata, signatures: sigs ? sigs.value as Uint8Array[] : [] };
}

/**
 * Adds a detached signature to `existing` detached metadata (or to none), keeping the other keys
 * and their order. Signature bytes already present are not added again.
 */
export function withGpgSignature(
  existing: Uint8Array | undefined,
  signature: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const { metadata, signatures } = decodeSignatures(
    existing ?? new Uint8Array(),
  );
  const same = (s: Uint8Array) =>
    s.length === signature.length && s.every((x, i) => x === signature[i]);
  if (!signatures.some(same)) {
    metadata.set(
      GPG_SIGS_KEY,
      new Variant("aay", [...signatures, signature.slice()]),
    );
  }
  return encodeDetachedMetadata(metadata);
}
