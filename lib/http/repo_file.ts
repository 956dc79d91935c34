/**
 * @module Serving OSTree repository files over HTTP, shared by `/repo/<name>/…` and
 * `/build-repo/<id>/…`: the request path grammar, the caching classes of specs/ostree-repos.md
 * §0, download tokens from `Authorization`, and a streamed file response that never leaves the
 * repository it was asked of.
 */
// @ts-types="@types/fresh"
import fresh from "fresh";
import type { Context } from "hono";
import { join } from "node:path";
// @ts-types="@types/range-parser"
import parseRange from "range-parser";
import type { TokenAuthenticator } from "../tokens/authenticator.ts";
import { TokenError } from "../tokens/jwt.ts";
import type { Principal } from "./env.ts";

const IMMUTABLE = "public, max-age=31536000, immutable";
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

/**
 * The token of an `Authorization` header on a download: `Bearer <token>`, or basic auth with
 * the token as the password (flatpak sends credentials from a remote's URL that way). A token
 * may start with the configured prefix (specs/flat-manager-api.md §2.1). "invalid" for a header
 * that carries no token.
 */
export function downloadToken(
  header: string,
  tokenPrefix?: string,
): string | "invalid" {
  let token: string | undefined;
  if (header.startsWith("Bearer ")) token = header.slice(7).trim();
  else if (header.startsWith("Basic ")) {
    try {
      const decoded = atob(header.slice(6).trim());
      token = decoded.slice(decoded.indexOf(":") + 1);
    } catch {
      return "invalid";
    }
  }
  if (!token) return "invalid";
  if (tokenPrefix && token.startsWith(tokenPrefix)) {
    token = token.slice(tokenPrefix.length);
  }
  return token === "" ? "invalid" : token;
}

const notFound = (c: Context) => c.text("Not found", 404);

/** Files up to this size are read in one go: no stream machinery for the many small objects. */
const SMALL_FILE = 64 * 1024;
const CHUNK = 64 * 1024;

/**
 * A strong validator from the file's identity: inode, modification time and size, as nginx
 * and send do. Publishing writes summaries and refs by rename (a new inode), so a changed file
 * gets a new tag even within the same millisecond.
 */
function etagOf(info: Deno.FileInfo): string {
  const ino = (info.ino ?? 0).toString(16);
  const mtime = (info.mtime?.getTime() ?? 0).toString(16);
  return `"${ino}-${mtime}-${info.size.toString(16)}"`;
}

/**
 * Whether a `Range` header applies: no `If-Range`, or one that still names this file (an ETag
 * compared strongly, or the exact Last-Modified date, RFC 9110 §13.1.5).
 */
function rangeApplies(
  ifRange: string | undefined,
  etag: string,
  lastModified: string | undefined,
): boolean {
  if (ifRange === undefined) return true;
  const v = ifRange.trim();
  if (v.startsWith('"')) return v === etag;
  return lastModified !== undefined && v === lastModified;
}

/** Reads `length` bytes of `file` from `start` as a stream that closes the file when done. */
function rangeStream(
  file: Deno.FsFile,
  start: number,
  length: number,
): ReadableStream<Uint8Array> {
  let left = length;
  let positioned = start === 0;
  const close = () => {
    try {
      file.close();
    } catch { /* already closed */ }
  };
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      try {
        if (!positioned) {
          await file.seek(start, Deno.SeekMode.Start);
          positioned = true;
        }
        const buf = new Uint8Array(Math.min(CHUNK, left));
        const n = await file.read(buf);
        // A file truncated under us ends the body early; the client sees a short read.
        if (n === null) {
          close();
          ctl.close();
          return;
        }
        left -= n;
        ctl.enqueue(n === buf.length ? buf : buf.subarray(0, n));
        if (left === 0) {
          close();
          ctl.close();
        }
      } catch (err) {
        close();
        ctl.error(err);
      }
    },
    cancel: close,
  });
}

/** Reads exactly `length` bytes of a small file and closes it (synchronous: see openInside). */
function readSmall(file: Deno.FsFile, length: number): Uint8Array<ArrayBuffer> {
  try {
    const buf = new Uint8Array(length);
    let at = 0;
    while (at < length) {
      const n = file.readSync(buf.subarray(at));
      if (n === null || n === 0) break;
      at += n;
    }
    return at === length ? buf : buf.slice(0, at);
  } finally {
    file.close();
  }
}

/**
 * Opens `rel` under `root`, if it exists there as a regular file that resolves inside the root
 * through a path the grammar allows. "missing" only when nothing is at that path: the caller
 * may then try another root; anything else that cannot be served is "refused".
 *
 * Synchronous on purpose: each async file-system call hops to Deno's blocking thread pool
 * (20–50 µs), which made these few metadata calls cost more than serving a small object
 * (bench/serve.ts). On a local file system they take microseconds, and nginx makes them
 * blocking too. Only regular files are opened, so a FIFO cannot block the event loop.
 */
function openInside(
  root: string,
  rel: string,
  options: { rootFile?: RegExp },
): { file: Deno.FsFile; info: Deno.FileInfo } | "missing" | "refused" {
  let real: string;
  let realRoot: string;
  try {
    realRoot = Deno.realPathSync(root);
    real = Deno.realPathSync(join(root, rel));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "missing";
    return "refused";
  }
  // A symlink (to a file or a directory) that leads outside the repository serves nothing,
  // and neither does one that leads to a part clients never fetch (tmp/, state/, .lock).
  if (!real.startsWith(realRoot + "/")) return "refused";
  if (safeRepoPath(real.slice(realRoot.length + 1), options) === undefined) {
    return "refused";
  }
  try {
    if (!Deno.statSync(real).isFile) return "refused";
    const file = Deno.openSync(real, { read: true });
    const info = file.statSync();
    if (!info.isFile) {
      file.close();
      return "refused";
    }
    return { file, info };
  } catch {
    return "refused";
  }
}

/**
 * Answers GET or HEAD with the file `rel` (already checked by {@link safeRepoPath}) of the
 * first of `roots` that has it, byte for byte with its caching class, a strong ETag and
 * Last-Modified; 304 when the client's copy is fresh (`If-None-Match`, `If-Modified-Since`),
 * 206 for a single satisfiable `Range`, 416 for an unsatisfiable one; 404 when no root has it.
 * The next root is tried only when the file does not exist in one: a file that exists but
 * resolves outside its root (a symlink out), or is not a regular file, is a 404.
 * Bodies stream from disk and are never re-encoded (specs/ostree-repos.md §2.5).
 * `privateCache`: the file needs credentials, so shared caches must not keep it.
 */
export function serveRepoFile(
  c: Context,
  roots: readonly string[],
  rel: string,
  options: {
    contentType?: string;
    privateCache?: boolean;
    rootFile?: RegExp;
  } = {},
): Response {
  for (const root of roots) {
    const opened = openInside(
      root,
      rel,
      options.rootFile ? { rootFile: options.rootFile } : {},
    );
    if (opened === "missing") continue;
    if (opened === "refused") return notFound(c);
    return respond(c, opened.file, opened.info, rel, options);
  }
  return notFound(c);
}

function respond(
  c: Context,
  file: Deno.FsFile,
  info: Deno.FileInfo,
  rel: string,
  options: { contentType?: string; privateCache?: boolean },
): Response {
  const cache = cacheControl(rel);
  const etag = etagOf(info);
  const lastModified = info.mtime?.toUTCString();
  const validators: Record<string, string> = {
    "Cache-Control": options.privateCache
      ? cache.replace("public", "private")
      : cache,
    ETag: etag,
    ...(lastModified ? { "Last-Modified": lastModified } : {}),
  };
  const req = c.req.raw.headers;
  const ifNoneMatch = req.get("if-none-match");
  const ifModifiedSince = req.get("if-modified-since");
  if (
    (ifNoneMatch !== null || ifModifiedSince !== null) &&
    fresh(
      {
        "if-none-match": ifNoneMatch ?? undefined,
        "if-modified-since": ifModifiedSince ?? undefined,
        "cache-control": req.get("cache-control") ?? undefined,
      },
      { etag, "last-modified": lastModified },
    )
  ) {
    file.close();
    return c.body(null, 304, validators);
  }
  const headers: Record<string, string> = {
    // Clients ignore the type (§2.5); octet-stream also keeps CDNs from compressing on the fly.
    // Never a Content-Encoding: summaries/*.gz must reach clients as is.
    "Content-Type": options.contentType ?? "application/octet-stream",
    "Accept-Ranges": "bytes",
    ...validators,
  };
  const size = info.size;
  let start = 0;
  let length = size;
  let status: 200 | 206 = 200;
  const range = req.get("range");
  if (
    range && rangeApplies(req.get("if-range") ?? undefined, etag, lastModified)
  ) {
    const parsed = parseRange(size, range, { combine: true });
    if (parsed === -1) {
      file.close();
      return c.body(null, 416, {
        ...validators,
        "Content-Range": `bytes */${size}`,
      });
    }
    // A malformed header, another unit or several ranges: the whole file (RFC 9110 §14.2).
    if (parsed !== -2 && parsed.type === "bytes" && parsed.length === 1) {
      const only = parsed[0]!;
      start = only.start;
      length = only.end - only.start + 1;
      status = 206;
      headers["Content-Range"] = `bytes ${only.start}-${only.end}/${size}`;
    }
  }
  headers["Content-Length"] = String(length);
  if (c.req.method === "HEAD") {
    file.close();
    return c.body(null, status, headers);
  }
  if (length <= SMALL_FILE && start === 0) {
    return c.body(readSmall(file, length), status, headers);
  }
  return c.body(rangeStream(file, start, length), status, headers);
}

/** Binary keyring bytes as a `.flatpakrepo`/`.flatpakref` `GPGKey` value. */
export function gpgKeyValue(keyring: Uint8Array): string {
  return btoa(Array.from(keyring, (b) => String.fromCharCode(b)).join(""));
}

/**
 * The principal of a download's `Authorization` header: none without one, "invalid" for a bad
 * one (a download token is optional, but a bad one is an error: specs/flat-manager-api.md §2.5).
 */
export async function downloadPrincipal(
  header: string | undefined,
  tokens: TokenAuthenticator,
  tokenPrefix: string | undefined,
): Promise<Principal | undefined | "invalid"> {
  if (!header) return undefined;
  const token = downloadToken(header, tokenPrefix);
  if (token === "invalid") return "invalid";
  try {
    return { kind: "token", claims: await tokens.verify(token, "repo") };
  } catch (err) {
    if (err instanceof TokenError) return "invalid";
    throw err;
  }
}
