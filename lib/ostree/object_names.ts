/**
 * @module The file names a build upload accepts, and where each lands in the upload repository:
 * the grammar of `specs/flat-manager-api.md` §5.3 ("Filename rules").
 */

/** Object kinds an upload may carry; the loose file kinds of an archive repository. */
export type ObjectExt = "dirmeta" | "dirtree" | "filez" | "commit";

/** An upload file name, parsed. `relPath` is relative to the upload repository's root. */
export type UploadName =
  | {
    kind: "object";
    /** The 64 lowercase hex digits. */
    checksum: string;
    ext: ObjectExt;
    /** `objects/<checksum[0..2]>/<checksum[2..]>.<ext>` */
    relPath: string;
  }
  | {
    kind: "delta";
    /** ostree's delta name: `<to>` or `<from>-<to>`, each 43 characters of modified base64. */
    delta: string;
    /** `superblock` or a part number. */
    part: string;
    /** `deltas/<delta[0..2]>/<delta[2..]>/<part>` */
    relPath: string;
  };

// Exactly one dot, lowercase hex only: `.file` (bare repos), `.commitmeta` and `.sig` are refused
// as flat-manager refuses them (§5.3), and an uppercase name would be a second file for one object.
const OBJECT = /^([0-9a-f]{64})\.(dirmeta|dirtree|filez|commit)$/;

// ostree's modified base64 of a sha256 (standard alphabet, '/' → '_', no padding) is 43
// characters; a from-to delta joins two with '-' at index 43 (specs/ostree-repos.md §6). The
// alphabet has no '/' or '.', so a delta name can never climb out of `deltas/` nor name '..'.
const B64 = "[A-Za-z0-9+_]{43}";
const DELTA_NAME = new RegExp(`^${B64}(?:-${B64})?$`);

// flat-manager takes `superblock` or "all digits", and "all digits" is vacuously true of the
// empty string, so it accepts `<name>..delta` and stores it at `deltas/xx/<rest>/`: the delta
// directory's own path. Renaming a temporary file over that path fails or replaces the directory,
// and no ostree delta has such a part, so it is refused here. Part numbers are capped at 10
// digits: ostree numbers parts with a guint32 (at most 4294967295), and the cap keeps an absurdly
// long "number" from reaching the filesystem as a name it rejects (ENAMETOOLONG).
const DELTA_PART = /^(?:superblock|[0-9]{1,10})$/;

/**
 * Parses an upload file name (`specs/flat-manager-api.md` §5.3): `<64 hex>.<ext>` for an object,
 * `<delta name>.<part>.delta` for a static-delta part. Returns undefined for any other name,
 * which the upload answers with `Invalid upload filename`.
 */
export function parseUploadName(name: string): UploadName | undefined {
  const object = OBJECT.exec(name);
  if (object) {
    const checksum = object[1]!, ext = object[2] as ObjectExt;
    return {
      kind: "object",
      checksum,
      ext,
      relPath: `objects/${checksum.slice(0, 2)}/${checksum.slice(2)}.${ext}`,
    };
  }
  const pieces = name.split(".");
  if (pieces.length !== 3 || pieces[2] !== "delta") return undefined;
  const [delta, part] = pieces as [string, string, string];
  if (!DELTA_NAME.test(delta) || !DELTA_PART.test(part)) return undefined;
  return {
    kind: "delta",
    delta,
    part,
    relPath: `deltas/${delta.slice(0, 2)}/${delta.slice(2)}/${part}`,
  };
}
