/**
 * @module Answering HTTP requests for OSTree repository files, shared by `/repo/<name>/…` and
 * `/build-repo/<id>/…`: validators, conditional GET and Range, small files from memory, the
 * answer as a Hono response or written on node:http. Which paths are served and how a file is
 * found safely is lib/http/repo_path.ts's; who may download, lib/http/download_auth.ts's.
 */
// @ts-types="@types/fresh"
import fresh from "fresh";
import type { Context } from "hono";
import type { ServerResponse } from "node:http";
// @ts-types="@types/range-parser"
import parseRange from "range-parser";
import type { AppEnv } from "./env.ts";
import type { CachedFile, SmallFileCache } from "./small_file_cache.ts";
import {
  cacheControl,
  IMMUTABLE,
  locateInside,
  openLocated,
} from "./repo_path.ts";
import { pipeBody } from "./node_request.ts";

/** Files up to this size are read in one go: no stream machinery for the many small objects. */
const SMALL_FILE = 64 * 1024;
/** Reads of large bodies: few trips to the file system's threads, little memory per client. */
const CHUNK = 256 * 1024;

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
  /** A 200 whose body is a file held in memory: that entry (it says how long it stays good). */
  cached?: CachedFile;
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
  const recheckMs = immutable ? options.cache!.recheckMsFor(rel) : 0;
  for (const root of roots) {
    const key = `${root}\0${rel}`;
    const recent = immutable ? options.cache!.recent(key) : undefined;
    if (recent) {
      return answer(
        { ...recent, cached: recent, release() {} },
        rel,
        req,
        options,
      );
    }
    const found = locateInside(
      root,
      rel,
      options.rootFile ? { rootFile: options.rootFile } : {},
    );
    if (found === "missing") continue;
    if (found === "refused") return undefined;
    const held = immutable
      ? options.cache!.get(key, found.link, recheckMs)
      : undefined;
    if (held) {
      return answer({ ...held, cached: held, release() {} }, rel, req, options);
    }
    const opened = openLocated(found.path, found.link);
    if (opened === "refused") return undefined;
    const { file, info } = opened;
    return answer(
      {
        info,
        file,
        release: () => file.close(),
        keep: immutable
          ? (bytes) => options.cache!.put(key, info, bytes, recheckMs)
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
  /** The memory cache's entry the bytes are. */
  cached?: CachedFile;
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
      ...(status === 200 && src.cached ? { cached: src.cached } : {}),
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

/**
 * Sends an answer on a node:http response, `extra` headers first. A file body streams through
 * the server's own pipe (back-pressure, and the file closed when the client goes away).
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
  const gone = new AbortController();
  const onClose = () => gone.abort();
  res.once("close", onClose);
  const { file, start, length } = a.body;
  return pipeBody(res, rangeStream(file, start, length), gone.signal)
    .finally(() => {
      res.off("close", onClose);
      res.end();
    });
}
