/**
 * @module Serving OSTree repository files over HTTP, shared by `/repo/<name>/…` and
 * `/build-repo/<id>/…`: the request path grammar, the caching classes of specs/ostree-repos.md
 * §0, download tokens from `Authorization`, and a streamed file response that never leaves the
 * repository it was asked of.
 */
// @ts-types="@types/fresh"
import fresh from "fresh";
import type { Context } from "hono";
import type { ServerResponse } from "node:http";
import { join } from "node:path";
// @ts-types="@types/range-parser"
import parseRange from "range-parser";
import type { TokenAuthenticator } from "../tokens/authenticator.ts";
import { TokenError } from "../tokens/jwt.ts";
import type { AppEnv, Principal } from "./env.ts";
import type { SmallFileCache } from "./small_file_cache.ts";

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

/** ETag and Last-Modified of a stat, computed once per stat (a held file reuses its stat). */
const validatorMemo = new WeakMap<
  Deno.FileInfo,
  { etag: string; lastModified: string | undefined }
>();
function validatorsOf(
  info: Deno.FileInfo,
): { etag: string; lastModified: string | undefined } {
  let v = validatorMemo.get(info);
  if (!v) {
    v = { etag: etagOf(info), lastModified: info.mtime?.toUTCString() };
    validatorMemo.set(info, v);
  }
  return v;
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
function locateInside(
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
function openLocated(
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

/** The request fields a file's answer depends on. */
export interface FileRequest {
  method: string;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
}

/** A file's part, read from disk as it is sent; the receiver closes the file. */
export interface FileRange {
  file: Deno.FsFile;
  start: number;
  length: number;
}

/** What to send for a repository file, independent of the HTTP stack that sends it. */
export interface RepoFileAnswer {
  status: 200 | 206 | 304 | 416;
  headers: Record<string, string>;
  /** Small files come read; larger ones (and any range not starting at 0) as an open file. */
  body: Uint8Array<ArrayBuffer> | FileRange | null;
}

/**
 * The answer to GET or HEAD for the file `rel` (already checked by {@link safeRepoPath}) of the
 * first of `roots` that has it, byte for byte with its caching class, a strong ETag and
 * Last-Modified; 304 when the client's copy is fresh (`If-None-Match`, `If-Modified-Since`),
 * 206 for a single satisfiable `Range`, 416 for an unsatisfiable one; undefined (a 404) when no
 * root has it. The next root is tried only when the file does not exist in one: a file that
 * exists but resolves outside its root (a symlink out), or is not a regular file, is a 404.
 * Bodies are never re-encoded (specs/ostree-repos.md §2.5).
 * `privateCache`: the file needs credentials, so shared caches must not keep it.
 */
export function answerRepoFile(
  roots: readonly string[],
  rel: string,
  req: FileRequest,
  options: {
    contentType?: string;
    privateCache?: boolean;
    rootFile?: RegExp;
    /** Where small immutable files are kept between requests. */
    cache?: SmallFileCache;
  } = {},
): RepoFileAnswer | undefined {
  const immutable = options.cache !== undefined &&
    cacheControl(rel) === IMMUTABLE;
  for (const root of roots) {
    const key = `${root}\0${rel}`;
    const recent = immutable ? options.cache!.recent(key) : undefined;
    if (recent) return answer({ ...recent, release() {} }, rel, req, options);
    const found = locateInside(
      root,
      rel,
      options.rootFile ? { rootFile: options.rootFile } : {},
    );
    if (found === "missing") continue;
    if (found === "refused") return undefined;
    const held = immutable ? options.cache!.get(key, found.link) : undefined;
    if (held) return answer({ ...held, release() {} }, rel, req, options);
    const opened = openLocated(found.path, found.link);
    if (opened === "refused") return undefined;
    const { file, info } = opened;
    return answer(
      {
        info,
        file,
        release: () => file.close(),
        keep: immutable
          ? (bytes) => options.cache!.put(key, info, bytes)
          : undefined,
      },
      rel,
      req,
      options,
    );
  }
  return undefined;
}

/** A file to answer with: read from memory, or open on disk (`release` closes it). */
interface Source {
  info: Deno.FileInfo;
  bytes?: Uint8Array<ArrayBuffer>;
  file?: Deno.FsFile;
  release(): void;
  /** Told the whole file's bytes when they were read. */
  keep?: ((bytes: Uint8Array<ArrayBuffer>) => void) | undefined;
}

/** The request fields of a Hono request. */
export function fileRequestOf(c: Context): FileRequest {
  return {
    method: c.req.method,
    header: (name) => c.req.raw.headers.get(name) ?? undefined,
  };
}

/** An answer of {@link answerRepoFile} as a Hono response. */
export function serveRepoFile(
  c: Context<AppEnv>,
  a: RepoFileAnswer,
): Response {
  c.set("fileResponse", true);
  if (a.body === null || a.status === 304) {
    return c.body(null, a.status, a.headers);
  }
  const body = a.body instanceof Uint8Array
    ? a.body
    : rangeStream(a.body.file, a.body.start, a.body.length);
  return c.body(body, a.status, a.headers);
}

function answer(
  src: Source,
  rel: string,
  req: FileRequest,
  options: { contentType?: string; privateCache?: boolean },
): RepoFileAnswer {
  const { info } = src;
  const cache = cacheControl(rel);
  const { etag, lastModified } = validatorsOf(info);
  const validators: Record<string, string> = {
    "Cache-Control": options.privateCache
      ? cache.replace("public", "private")
      : cache,
    ETag: etag,
    ...(lastModified ? { "Last-Modified": lastModified } : {}),
  };
  const ifNoneMatch = req.header("if-none-match");
  const ifModifiedSince = req.header("if-modified-since");
  if (
    (ifNoneMatch !== undefined || ifModifiedSince !== undefined) &&
    fresh(
      {
        "if-none-match": ifNoneMatch,
        "if-modified-since": ifModifiedSince,
        "cache-control": req.header("cache-control"),
      },
      { etag, "last-modified": lastModified },
    )
  ) {
    src.release();
    return { status: 304, headers: validators, body: null };
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
  const range = req.header("range");
  if (range && rangeApplies(req.header("if-range"), etag, lastModified)) {
    const parsed = parseRange(size, range, { combine: true });
    if (parsed === -1) {
      src.release();
      return {
        status: 416,
        headers: {
          ...validators,
          "Content-Range": `bytes */${size}`,
          "Content-Length": "0",
        },
        body: null,
      };
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
  if (req.method === "HEAD") {
    src.release();
    return { status, headers, body: null };
  }
  if (src.bytes) {
    return {
      status,
      headers,
      body: src.bytes.subarray(start, start + length),
    };
  }
  const file = src.file!;
  if (length <= SMALL_FILE && start === 0) {
    const bytes = readSmall(file, length);
    if (length === size) src.keep?.(bytes);
    return { status, headers, body: bytes };
  }
  return { status, headers, body: { file, start, length } };
}

/** Larger reads for large bodies on node:http: fewer trips to the file system's threads. */
const NODE_CHUNK = 256 * 1024;

/**
 * Sends an answer on a node:http response, `extra` headers first. A file body is read as the
 * socket drains, so a slow client costs one chunk of memory; a client that goes away stops the
 * reading, and a file that shrank under us cuts the connection rather than send a short body.
 */
export function writeRepoFileAnswer(
  res: ServerResponse,
  a: RepoFileAnswer,
  extra: Readonly<Record<string, string>>,
): Promise<void> | undefined {
  res.writeHead(a.status, { ...extra, ...a.headers });
  if (a.body === null || a.body instanceof Uint8Array) {
    // Synchronous: most answers are small files, sent in the tick their request arrived.
    res.end(a.body ?? undefined);
    return undefined;
  }
  return streamRange(res, a.body);
}

async function streamRange(
  res: ServerResponse,
  { file, start, length }: FileRange,
): Promise<void> {
  try {
    if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    let left = length;
    while (left > 0 && !res.destroyed) {
      const buf = new Uint8Array(Math.min(NODE_CHUNK, left));
      const n = await file.read(buf);
      if (n === null) break;
      left -= n;
      if (!res.write(n === buf.length ? buf : buf.subarray(0, n))) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
    }
    if (left > 0) res.destroy();
    else res.end();
  } finally {
    file.close();
  }
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
