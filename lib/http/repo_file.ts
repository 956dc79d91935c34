/**
 * @module Serving OSTree repository files over HTTP, shared by `/repo/<name>/…` and
 * `/build-repo/<id>/…`: the request path grammar, the caching classes of specs/ostree-repos.md
 * §0, download tokens from `Authorization`, and a streamed file response that never leaves the
 * repository it was asked of.
 */
import type { Context } from "hono";
import { join } from "node:path";

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
  if (!segments.every((s) => SEGMENT.test(s))) return undefined;
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

/**
 * Answers GET or HEAD with the file `rel` (already checked by {@link safeRepoPath}) of the
 * first of `roots` that has it, byte for byte with its caching class; 404 when none has it.
 * The next root is tried only when the file does not exist in one: a file that exists but
 * resolves outside its root (a symlink out), or is not a regular file, is a 404.
 * `privateCache`: the file needs credentials, so shared caches must not keep it.
 */
export async function serveRepoFile(
  c: Context,
  roots: readonly string[],
  rel: string,
  options: { contentType?: string; privateCache?: boolean } = {},
): Promise<Response> {
  for (const root of roots) {
    let real: string;
    let realRoot: string;
    try {
      realRoot = await Deno.realPath(root);
      real = await Deno.realPath(join(root, rel));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      return notFound(c);
    }
    // A symlink that leads outside the repository serves nothing.
    if (!real.startsWith(realRoot + "/")) return notFound(c);
    const file = await Deno.open(real, { read: true }).catch(() => undefined);
    if (!file) return notFound(c);
    const info = await file.stat();
    if (!info.isFile) {
      file.close();
      return notFound(c);
    }
    const headers = {
      // Clients ignore the type; never a Content-Encoding: summaries/*.gz must reach them as is.
      "Content-Type": options.contentType ?? "application/octet-stream",
      "Content-Length": String(info.size),
      "Cache-Control": options.privateCache
        ? cacheControl(rel).replace("public", "private")
        : cacheControl(rel),
      ...(info.mtime ? { "Last-Modified": info.mtime.toUTCString() } : {}),
    };
    if (c.req.method === "HEAD") {
      file.close();
      return c.body(null, 200, headers);
    }
    return c.body(file.readable, 200, headers);
  }
  return notFound(c);
}

/** Binary keyring bytes as a `.flatpakrepo`/`.flatpakref` `GPGKey` value. */
export function gpgKeyValue(keyring: Uint8Array): string {
  return btoa(Array.from(keyring, (b) => String.fromCharCode(b)).join(""));
}
