/**
 * @module The header of a `.filez` object (specs/ostree-repos.md §4.4): `(tuuuusa(ayay))`, read
 * into what its checksum starts with, the `(uuuusa(ayay))` file header without the size, and
 * refused when libostree would refuse it. Used by the upload verifier (lib/ostree/verify.ts).
 */
import { bswap32, decode, encode, type Value } from "./gvariant.ts";

const FILEZ_HEADER = "(tuuuusa(ayay))";
const FILE_HEADER = "(uuuusa(ayay))";
const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFLNK = 0o120000;

const message = (e: unknown) => e instanceof Error ? e.message : String(e);

/** What the checksum covers of a `.filez` header but its size, or why it is refused. */
type ParsedHeader = { meta: Uint8Array; symlink: boolean } | {
  refused: string;
};
export type FilezHeader =
  | { meta: Uint8Array; symlink: boolean; size: bigint }
  | {
    refused: string;
  };

/**
 * Headers seen, by their bytes after the leading size: the objects of one upload mostly share
 * owner, mode and (no) xattrs, so most headers are decoded and re-encoded once. Bounded.
 */
const headerMemo = new Map<string, ParsedHeader>();
const MEMO_ENTRIES = 4096;
const MEMO_KEY_BYTES = 1024;

/**
 * Reads a `.filez` header `(tuuuusa(ayay))`: its content size, whether it is a symlink, and the
 * bytes the checksum starts with, the 8-byte length prefix and the `(uuuusa(ayay))` header
 * rebuilt without the size (§4.4). Everything but the size is the same for the same bytes
 * after the size (the size is a fixed 8 bytes at offset 0, and GVariant's framing offsets count
 * from the tuple's start), so it is kept in {@link headerMemo}.
 */
export function readFilezHeader(header: Uint8Array): FilezHeader {
  const keyed = header.length >= 8 && header.length - 8 <= MEMO_KEY_BYTES;
  const key = keyed ? String.fromCharCode(...header.subarray(8)) : "";
  let known = keyed ? headerMemo.get(key) : undefined;
  if (!known) {
    known = parseFilezHeader(header);
    if (keyed) {
      if (headerMemo.size >= MEMO_ENTRIES) {
        headerMemo.delete(headerMemo.keys().next().value!);
      }
      headerMemo.set(key, known);
    }
  }
  if ("refused" in known) return known;
  // ostree writes the size big-endian into the little-endian GVariant (§4.4).
  const size = new DataView(header.buffer, header.byteOffset, 8).getBigUint64(
    0,
    false,
  );
  return { meta: known.meta, symlink: known.symlink, size };
}

function parseFilezHeader(header: Uint8Array): ParsedHeader {
  let fields: Value[];
  try {
    fields = decode(FILEZ_HEADER, header) as Value[];
  } catch (e) {
    return { refused: `its header does not parse: ${message(e)}` };
  }
  const [, uid, gid, mode, rdev, target, xattrs] = fields;
  const type = bswap32(mode as number) & S_IFMT;
  const symlink = type === S_IFLNK;
  // libostree refuses these too ("Corrupted archive file"); and for a regular file it hashes an
  // empty target whatever the header holds, so a non-empty one would be bytes nothing checks.
  if (rdev !== 0) return { refused: "its header has a non-zero rdev" };
  if (type !== S_IFREG && type !== S_IFLNK) {
    return { refused: "it is neither a regular file nor a symlink" };
  }
  if (symlink === (target === "")) {
    return {
      refused: symlink ? "a symlink has no target" : "a file has a link target",
    };
  }
  const encoded = encode(FILE_HEADER, [uid!, gid!, mode!, 0, target!, xattrs!]);
  const meta = new Uint8Array(8 + encoded.length);
  new DataView(meta.buffer).setUint32(0, encoded.length);
  meta.set(encoded, 8);
  return { meta, symlink };
}
