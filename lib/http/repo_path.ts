/**
 * @module Which repository files a client may fetch, and where they are on disk: the request
 * path grammar, the caching classes of specs/ostree-repos.md §0, and finding and opening a file
 * so that it never leaves the repository it was asked of (symlinks included). The HTTP answers
 * are lib/http/repo_file.ts's.
 */
import { join } from "node:path";

/** The caching class of content-addressed files. */
export const IMMUTABLE = "public, max-age=31536000, immutable";
/** The caching class of mutable repository files (summary, refs, config, `.flatpakrepo`). */
export const SHORT_CACHE = "public, max-age=300";

/** The caching class of a repository file (specs/ostree-repos.md §0, item 7). */
export function cacheControl(path: string): string {
  if (
    /^objects\/[0-9a-f]{2}\/[0-9a-f]{62}\.(commit|dirtree|dirmeta|filez)$/.test(
      path,
    )
  ) return IMMUTABLE;
  if (/^objects\/[0-9a-f]{2}\/[0-9a-f]{62}\.commitmeta$/.test(path)) {
    return "public, max-age=86400";
  }
  if (
    /^summaries\/[0-9a-f]{64}\.gz$/.test(path) || path.startsWith("deltas/")
  ) return IMMUTABLE;
  if (/^summaries\/[0-9a-f]{64}-[0-9a-f]{64}\.delta$/.test(path)) {
    return IMMUTABLE;
  }
  return SHORT_CACHE;
}

const SEGMENT = /^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/;
const SERVED_TOP = new Set([
  "config",
  "objects",
  "refs",
  "deltas",
  "delta-indexes",
  "summaries",
  "summary",
  "summary.sig",
  "summary.idx",
  "summary.idx.sig",
  "appstream",
]);

/**
 * The repository-relative path of a request, or undefined when it is not a file a client may
 * ask for: no percent-encoding (OSTree names never need it), no empty, dot or hidden segments,
 * only the top-level entries clients fetch (never `tmp/`, `state/` or `.lock`). `rootFile`
 * admits extra files at the top level, matched as a whole single segment (a build repository's
 * `.flatpakref` files).
 */
export function safeRepoPath(
  rest: string,
  options: { rootFile?: RegExp } = {},
): string | undefined {
  if (
    rest.length === 0 || rest.length > 1024 || rest.includes("%") ||
    rest.includes("\\")
  ) return undefined;
  const segments = rest.split("/");
  // 255: the longest file name Linux allows; a longer segment can only be an attack.
  if (!segments.every((s) => s.length <= 255 && SEGMENT.test(s))) {
    return undefined;
  }
  const top = segments[0]!;
  if (SERVED_TOP.has(top)) return segments.join("/");
  if (segments.length === 1 && options.rootFile?.test(top)) return top;
  return undefined;
}

/** How long a directory's resolved path is reused (see {@link openInside}). */
const DIR_TTL_MS = 1000;
/** More directories than this and the cache starts over (a repository has a few hundred). */
const DIR_CACHE_MAX = 10_000;
const realDirs = new Map<string, { real: string; until: number }>();

/** The resolved path of the directory `dir`, reused for DIR_TTL_MS; throws as realPathSync. */
function realDir(dir: string): string {
  const now = performance.now();
  const hit = realDirs.get(dir);
  if (hit && hit.until > now) return hit.real;
  const real = Deno.realPathSync(dir);
  if (realDirs.size >= DIR_CACHE_MAX) realDirs.clear();
  realDirs.set(dir, { real, until: now + DIR_TTL_MS });
  return real;
}

/** Whether `real` lies inside `realRoot` at a path the grammar allows (not tmp/, state/…). */
function allowedInside(
  realRoot: string,
  real: string,
  options: { rootFile?: RegExp },
): boolean {
  return real.startsWith(realRoot + "/") &&
    safeRepoPath(real.slice(realRoot.length + 1), options) !== undefined;
}

/**
 * Finds `rel` under `root`, if it exists there as a regular file that resolves inside the root
 * through a path the grammar allows. "missing" only when nothing is at that path: the caller
 * may then try another root; anything else that cannot be served is "refused".
 *
 * A symlink (to a file or a directory) that leads outside the repository serves nothing, and
 * neither does one that leads to a part clients never fetch (tmp/, state/, .lock). The file's
 * directory is resolved once per DIR_TTL_MS (resolving a path costs one system call per
 * component); the file itself is checked on every request: no symlink (else it is resolved in
 * full), a regular file, and then (openLocated) the very file that is opened (same inode).
 *
 * Synchronous on purpose: each async file-system call hops to Deno's blocking thread pool
 * (20–50 µs), which made these few metadata calls cost more than serving a small object
 * (bench/serve.ts). On a local file system they take microseconds, and nginx makes them
 * blocking too. Only regular files are opened, so a FIFO cannot block the event loop.
 */
export function locateInside(
  root: string,
  rel: string,
  options: { rootFile?: RegExp },
): { path: string; link: Deno.FileInfo } | "missing" | "refused" {
  const slash = rel.lastIndexOf("/");
  let realRoot: string;
  let path: string;
  let link: Deno.FileInfo;
  try {
    realRoot = realDir(root);
    const parent = slash < 0
      ? realRoot
      : realDir(join(root, rel.slice(0, slash)));
    path = `${parent}/${rel.slice(slash + 1)}`;
    if (!allowedInside(realRoot, path, options)) return "refused";
    link = Deno.lstatSync(path);
    if (link.isSymlink) {
      path = Deno.realPathSync(path);
      if (!allowedInside(realRoot, path, options)) return "refused";
      link = Deno.statSync(path);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "missing";
    return "refused";
  }
  return link.isFile ? { path, link } : "refused";
}

/** Opens the file {@link locateInside} found, if it is still that file. */
export function openLocated(
  path: string,
  link: Deno.FileInfo,
): { file: Deno.FsFile; info: Deno.FileInfo } | "refused" {
  try {
    const file = Deno.openSync(path, { read: true });
    const info = file.statSync();
    // Replaced between the check and the open (by a symlink, say): serve nothing.
    if (!info.isFile || info.ino !== link.ino || info.dev !== link.dev) {
      file.close();
      return "refused";
    }
    return { file, info };
  } catch {
    return "refused";
  }
}
