/**
 * @module Which served repository files count as a download, and of what (specs/ecosystem.md
 * §3.3, after Flathub's statistics): one count per ref pulled, taken from the request headers
 * libostree sends for flatpak (specs/ostree-repos.md §2.1).
 */
import type { HeaderReader } from "./observer.ts";

/** One counted download. */
export interface Download {
  kind: "app" | "runtime";
  /** The app or runtime id. */
  name: string;
  arch: string;
  branch: string;
  /** An update (an earlier commit is installed), not a first install. */
  update: boolean;
  /** Fetched through a from→to static delta. */
  delta: boolean;
  /** Versions from the User-Agent (`libostree/2022.7 flatpak/1.14.10`); "" when not named. */
  ostreeVersion: string;
  flatpakVersion: string;
}

// `objects/XX/<62 hex>.commit`: the commit object, fetched once per pull without a delta.
const COMMIT_OBJECT = /^objects\/[0-9a-f]{2}\/[0-9a-f]{62}\.commit$/;
// `deltas/XX/<rest>/superblock`: the delta name is `<to>` (from scratch) or `<from>-<to>`, both
// in ostree's modified base64 (`/` written `_`), split after two characters.
const DELTA_SUPERBLOCK =
  /^deltas\/([A-Za-z0-9+_]{2})\/([A-Za-z0-9+_-]+)\/superblock$/;
// flatpak's ref grammar: `app|runtime/<id>/<arch>/<branch>`, ids of three or more elements.
const REF =
  /^(app|runtime)\/([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*){2,})\/([A-Za-z0-9_]+)\/([\w.-]+)$/;
const CHECKSUM = /^[0-9a-f]{64}$/;
// Flathub leaves these runtimes out: they come along with the app or runtime they extend.
const UNCOUNTED_SUFFIXES = [".Debug", ".Locale", ".Sources"];

/** Whether a request for `rel` (no leading slash) can count as a download, whatever its headers. */
export function mayCountAsDownload(rel: string): boolean {
  return COMMIT_OBJECT.test(rel) || DELTA_SUPERBLOCK.test(rel);
}

/**
 * What a served file counts as, or undefined when it counts as nothing.
 *
 * - Only the commit object and the delta superblock count: libostree fetches exactly one of
 *   them per ref pulled (the superblock when a delta exists, else the commit; §2.2 of
 *   ostree-repos.md). Flathub counts the superblock or the root dirtree instead; the commit
 *   stands in for the dirtree because telling a root dirtree apart needs a commit lookup, and
 *   both are fetched exactly once on a pull without a delta.
 * - The ref comes from `Flatpak-Ref` only. Without it (plain `ostree pull`, a browser) or when
 *   it is malformed, nothing counts: Flathub resolves such requests through the commit, which
 *   an origin server cannot do cheaply on the request path.
 * - An update is a download with a valid `Flatpak-Upgrade-From` commit, or one through a
 *   from→to delta (Flathub's `is_update = is_delta or update_from`).
 * - `.Debug`, `.Locale` and `.Sources` runtimes are not counted, as on Flathub.
 */
export function classifyDownload(
  path: string,
  headers: HeaderReader,
): Download | undefined {
  const rel = path.replace(/^\/+/, "");
  let delta = false;
  if (!COMMIT_OBJECT.test(rel)) {
    const m = DELTA_SUPERBLOCK.exec(rel);
    if (!m) return undefined;
    delta = m[2]!.includes("-");
  }
  const ref = REF.exec(headers.get("flatpak-ref")?.trim() ?? "");
  if (!ref) return undefined;
  const [, kind, name, arch, branch] = ref as unknown as [
    string,
    "app" | "runtime",
    string,
    string,
    string,
  ];
  if (kind === "runtime" && UNCOUNTED_SUFFIXES.some((s) => name.endsWith(s))) {
    return undefined;
  }
  const from = headers.get("flatpak-upgrade-from")?.trim() ?? "";
  const agent = headers.get("user-agent") ?? "";
  return {
    kind,
    name,
    arch,
    branch,
    update: delta || CHECKSUM.test(from),
    delta,
    ostreeVersion: version(agent, "libostree/"),
    flatpakVersion: version(agent, "flatpak/"),
  };
}

function version(agent: string, product: string): string {
  const word = agent.split(/\s+/).find((w) => w.startsWith(product));
  const v = word?.slice(product.length) ?? "";
  // Bounded and plain: it becomes a database key and a JSON key.
  return /^[\w.+~-]{1,32}$/.test(v) ? v : "";
}
