/**
 * @module Reads the ref and commit of a flatpak single-file bundle (`flatpak build-bundle`)
 * without loading it: a bundle is one GVariant of OSTree's static-delta superblock type, whose
 * metadata dictionary holds `ref` and whose fourth member is the commit checksum (flatpak
 * `common/flatpak-bundle.c`, `flatpak_bundle_load`). Only the framing offsets at the end of the
 * file and the members before the commit are read, so a multi-GiB bundle costs two small reads.
 */
import { decode, GVariantError, Variant } from "../ostree/gvariant.ts";

/** OSTREE_STATIC_DELTA_SUPERBLOCK_FORMAT; bundles are written as one value of this type. */
export const BUNDLE_TYPE =
  "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";

/**
 * Members with a framing offset: every variable-sized one but the last (metadata, from, to,
 * commit, dependencies, meta entries). `t` is fixed-size and has none.
 */
const FRAMED_MEMBERS = 6;

/** Metadata larger than this is not a bundle flatpak would write (appdata and icons are KiBs). */
const MAX_METADATA_BYTES = 64 * 1024 * 1024;

/** `app|runtime/<id>/<arch>/<branch>`, in flatpak's characters for each part. */
const REF = /^(app|runtime)\/[A-Za-z_][\w.-]*\/[A-Za-z0-9_]+\/[\w.-]+$/;

/** What a bundle says it holds. */
export interface BundleHeader {
  /** `app/<id>/<arch>/<branch>` or `runtime/…`. */
  ref: string;
  /** Checksum of the commit the bundle carries. */
  commit: string;
}

/** The file is not a flatpak bundle, or its header is malformed. */
export class BundleError extends Error {
  override name = "BundleError";
}

// GVariant framing offsets take the fewest bytes that can address the whole container.
function offsetSize(size: number): number {
  if (size <= 0xff) return 1;
  if (size <= 0xffff) return 2;
  if (size <= 0xffffffff) return 4;
  return 8;
}

function readLE(bytes: Uint8Array, at: number, width: number): number {
  let n = 0;
  for (let i = width - 1; i >= 0; i--) n = n * 256 + bytes[at + i]!;
  return n;
}

async function readAt(
  file: Deno.FsFile,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let at = 0;
  while (at < length) {
    const n = await file.read(buf.subarray(at));
    if (n === null) throw new BundleError("The bundle ends early");
    at += n;
  }
  return buf;
}

const hex = (b: Uint8Array) =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Reads the header of the bundle at `path`. Throws {@link BundleError} if it is not one. */
export async function readBundleHeader(path: string): Promise<BundleHeader> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const w = offsetSize(size);
  if (size < FRAMED_MEMBERS * w + 8 + 32) {
    throw new BundleError("The file is too small to be a flatpak bundle");
  }
  const tail = await readAt(
    file,
    size - FRAMED_MEMBERS * w,
    FRAMED_MEMBERS * w,
  );
  // The offset of framed member i is stored at size - w·(i+1): in reverse order.
  const end = (i: number) => readLE(tail, (FRAMED_MEMBERS - 1 - i) * w, w);
  const metadataEnd = end(0);
  const timestampStart = Math.ceil(metadataEnd / 8) * 8;
  const fromStart = timestampStart + 8;
  const fromEnd = end(1);
  const toEnd = end(2);
  if (
    metadataEnd > MAX_METADATA_BYTES || fromEnd < fromStart ||
    toEnd < fromEnd || toEnd > size - FRAMED_MEMBERS * w
  ) {
    throw new BundleError("The file is not a flatpak bundle: bad framing");
  }
  if (toEnd - fromEnd !== 32) {
    throw new BundleError(
      "The file is not a flatpak bundle: no commit checksum",
    );
  }
  const head = await readAt(file, 0, toEnd);
  let metadata;
  try {
    metadata = decode("a{sv}", head.subarray(0, metadataEnd));
  } catch (err) {
    if (err instanceof GVariantError) {
      throw new BundleError(
        `The file is not a flatpak bundle: its metadata is malformed (${err.message})`,
      );
    }
    throw err;
  }
  const ref = metadata instanceof Map ? metadata.get("ref") : undefined;
  if (
    !(ref instanceof Variant) || ref.type !== "s" ||
    typeof ref.value !== "string"
  ) {
    throw new BundleError("The file is not a flatpak bundle: it names no ref");
  }
  if (!REF.test(ref.value)) {
    throw new BundleError(
      `The bundle's ref "${
        ref.value.slice(0, 300)
      }" is not an app or runtime ref`,
    );
  }
  return { ref: ref.value, commit: hex(head.subarray(fromEnd, toEnd)) };
}
