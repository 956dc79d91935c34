/**
 * @module What `flatpak` and `ostree` clients fetch: `/repo/<name>.flatpakrepo` (specs/
 * ostree-repos.md §5.1) and the repository's files under `/repo/<name>/…`, byte for byte with the
 * caching classes of §0. A path is checked against the OSTree file grammar before it touches the
 * filesystem and must resolve inside the repository; files come with ETag/Last-Modified,
 * conditional GET and single Range (all in lib/http/repo_file.ts). Retired deltas stay
 * reachable for their hour of grace, and every GET served (200/206) is told to the download
 * statistics observer.
 *
 * The files are also served by {@link createRepoFileFastPath} straight on node:http, ahead of
 * the app: the same checks, answer and side effects, without building a `Request`, routing and
 * a `Response` for each of a pull's many small objects (bench/serve.ts).
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook } from "../lib/http/errors.ts";
import type { FastPath } from "../lib/http/node_server.ts";
import {
  answerRepoFile,
  type FileRequest,
  fileRequestOf,
  type RepoFileAnswer,
  serveRepoFile,
  writeRepoFileAnswer,
} from "../lib/http/repo_file.ts";
import { downloadPrincipal, gpgKeyValue } from "../lib/http/download_auth.ts";
import { safeRepoPath, SHORT_CACHE } from "../lib/http/repo_path.ts";
import { ReadyAnswers } from "../lib/http/ready_answers.ts";
import { recordRequest } from "../lib/http/request_log.ts";
import {
  FILE_SECURITY_HEADERS,
  requestIdFrom,
} from "../lib/http/security_headers.ts";
import type { HeaderReader } from "../lib/stats/observer.ts";
import { mayCountAsDownload } from "../lib/stats/counting.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { type Repo, repoStore } from "../lib/repos/repo_store.ts";
import { repoUrl } from "./repos/schema.ts";

const REPO_NAME = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
/** The route of repository files, as the metrics and the request log name it. */
export const REPO_FILE_ROUTE = `/repo/:name{${REPO_NAME}}/*`;
const REPO_NAME_RE = new RegExp(`^${REPO_NAME}$`);

/**
 * Whether `principal`-less or token-carrying request may read `repo`'s files: public ones
 * always, private ones with a download token for it. "invalid" for a bad token.
 */
async function mayDownload(
  deps: Deps,
  repo: Repo,
  authorization: string | undefined,
): Promise<boolean | "invalid"> {
  if (repo.public) return true;
  const p = await downloadPrincipal(
    authorization,
    deps.tokens,
    deps.config.tokenPrefix,
  );
  if (p === "invalid") return "invalid";
  return canReadRepo(p, repo);
}

/**
 * The answer for `rel` in `repo`, or undefined for a 404; a served GET (200/206) is told to the
 * download statistics, which must never cost a client its download.
 */
function answerFile(
  deps: Deps,
  repo: Repo,
  rel: string,
  req: FileRequest & { headers: HeaderReader },
): RepoFileAnswer | undefined {
  const dir = repoPaths(deps.config.dataDir).repo(repo.name);
  // update-repo moves replaced deltas to tmp/deltas/<same path> for an hour
  // (lib/builds/deltas.ts): a client that read the old delta index can still finish its pull.
  const roots = rel.startsWith("deltas/") ? [dir, join(dir, "tmp")] : [dir];
  // A private repository's files need credentials: no shared cache may keep them.
  const a = answerRepoFile(roots, rel, req, {
    privateCache: !repo.public,
    cache: deps.fileCache,
  });
  if (a && req.method === "GET" && (a.status === 200 || a.status === 206)) {
    try {
      deps.downloads?.observe(repo.name, rel, req.headers);
    } catch (err) {
      deps.logger.warn("Download observer failed", {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
  return a;
}

/** A request header as one string. */
function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

/** Asks for the whole file, unconditionally: its answer is the same 200 every time. */
function plain(req: IncomingMessage): boolean {
  const h = req.headers;
  return h.range === undefined && h["if-none-match"] === undefined &&
    h["if-modified-since"] === undefined;
}

/** The `.flatpakrepo` and file routes. */
export function createRepoFileRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  async function visibleRepo(
    c: Context<AppEnv>,
    name: string,
    cached = false,
  ): Promise<Repo | Response> {
    const repo = cached
      ? await deps.repoRows.get(name)
      : await repoStore.get(deps.db, name);
    if (!repo) return c.text("Not found", 404);
    const may = await mayDownload(deps, repo, c.req.header("authorization"));
    if (may === true) return repo;
    c.header("WWW-Authenticate", `Basic realm="flatyard ${name}"`);
    return c.text(
      may === "invalid"
        ? "Invalid download token"
        : "This repository needs a download token",
      401,
    );
  }

  app.get(
    "/repo/:file{[A-Za-z0-9][A-Za-z0-9._-]{0,63}\\.flatpakrepo}",
    async (c) => {
      const name = c.req.param("file").replace(/\.flatpakrepo$/, "");
      const repo = await visibleRepo(c, name);
      if (repo instanceof Response) return repo;
      const keyring = await deps.repoKeys.keyring(repo.id, "repo");
      const kf = KeyFile.parse("[Flatpak Repo]\n");
      const set = (k: string, v: string | null | undefined) =>
        kf.set("Flatpak Repo", k, v ?? undefined);
      set("Version", "1");
      set("Title", repo.title ?? repo.name);
      set("Url", `${repoUrl(repo, deps.config.baseUrl)}/`);
      set("Homepage", repo.homepage);
      set("Comment", repo.description?.split("\n")[0]);
      set("Description", repo.description);
      set("Icon", repo.iconUrl);
      set("DefaultBranch", repo.defaultBranch);
      if (keyring) {
        // Every key, retired ones too: commits signed before a rotation keep verifying.
        set("GPGKey", gpgKeyValue(keyring));
        // A collection ID needs a GPGKey (§5.1); flatpak >= 1.12.8 reads this key.
        set("DeploySideloadCollectionID", repo.collectionId);
      }
      return c.body(kf.toString(), 200, {
        "Content-Type": "application/vnd.flatpak.repo",
        "Cache-Control": SHORT_CACHE,
      });
    },
  );

  app.get(REPO_FILE_ROUTE, async (c) => {
    const name = c.req.param("name")!;
    const prefix = `/repo/${name}/`;
    const raw = new URL(c.req.url).pathname;
    if (!raw.startsWith(prefix)) return c.text("Not found", 404);
    const rel = safeRepoPath(raw.slice(prefix.length));
    if (rel === undefined) return c.text("Not found", 404);
    const repo = await visibleRepo(c, name, true);
    if (repo instanceof Response) return repo;
    const a = answerFile(deps, repo, rel, {
      ...fileRequestOf(c),
      headers: c.req.raw.headers,
    });
    if (!a) return c.text("Not found", 404);
    return serveRepoFile(c, a);
  });
  return app;
}

/**
 * Repository files straight on node:http, ahead of the app (see the module comment). It
 * answers only the plain case: a GET or HEAD without a body, a path that needs no decoding and
 * passes {@link safeRepoPath}, a repository that exists and that the request may read, and a
 * file that is there. Anything else (a 401, a 404, an odd path, the `.flatpakref` files) goes to
 * the app, which answers exactly as it would without this path. The answer, its headers, the
 * statistics, metrics and request log are the app route's: the same functions make them.
 */
export function createRepoFileFastPath(deps: Deps): FastPath {
  const ready = deps.fileCache.maxBytes > 0
    ? new ReadyAnswers(deps.fileCache)
    : undefined;

  /** The metrics and request log of an answered request. */
  const record = (
    req: IncomingMessage,
    path: string,
    status: number,
    requestId: string,
    started: number,
  ) =>
    recordRequest(deps, {
      requestId,
      method: req.method!,
      route: REPO_FILE_ROUTE,
      path,
      status,
      seconds: (performance.now() - started) / 1000,
    });

  /** Answers for `repo`, which the request may read; synchronous unless a large file streams. */
  function send(
    req: IncomingMessage,
    res: ServerResponse,
    repo: Repo,
    rel: string,
    path: string,
    started: number,
  ): boolean | Promise<boolean> {
    const method = req.method!;
    const get = (n: string) => header(req, n);
    const a = answerFile(deps, repo, rel, {
      method,
      header: get,
      headers: { get: (n) => get(n) ?? null },
    });
    if (!a) return false;
    if (
      ready && a.cached && method === "GET" && repo.public && plain(req) &&
      !mayCountAsDownload(rel)
    ) {
      // The same answer for the next plain GET of this path (lib/http/ready_answers.ts).
      const bytes = a.body as Uint8Array;
      ready.set(path, {
        repo: repo.name,
        headers: { ...FILE_SECURITY_HEADERS, ...a.headers },
        // A Buffer view: node:http would wrap a plain Uint8Array in one on every write.
        body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        cached: a.cached,
      });
    }
    const requestId = requestIdFrom(get("x-request-id"));
    const streaming = writeRepoFileAnswer(res, a, {
      "X-Request-Id": requestId,
      ...FILE_SECURITY_HEADERS,
    });
    if (!streaming) {
      record(req, path, a.status, requestId, started);
      return true;
    }
    return streaming.then(() => {
      record(req, path, a.status, requestId, started);
      return true;
    });
  }

  return (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method;
    if (method !== "GET" && method !== "HEAD") return false;
    const url = req.url ?? "";
    if (!url.startsWith("/repo/")) return false;
    if (
      req.headers["transfer-encoding"] !== undefined ||
      (req.headers["content-length"] ?? "0") !== "0"
    ) return false;
    const started = performance.now();
    const query = url.indexOf("?");
    const path = query < 0 ? url : url.slice(0, query);
    // The commonest request of a pull, answered as it was last time.
    const r = method === "GET" && plain(req) ? ready?.get(path) : undefined;
    if (r && deps.repoRows.peek(r.repo)?.public) {
      const requestId = requestIdFrom(header(req, "x-request-id"));
      res.writeHead(200, { "X-Request-Id": requestId, ...r.headers });
      res.end(r.body);
      record(req, path, 200, requestId, started);
      return true;
    }
    const slash = path.indexOf("/", 6);
    if (slash < 0) return false;
    const name = path.slice(6, slash);
    if (!REPO_NAME_RE.test(name)) return false;
    const rel = safeRepoPath(path.slice(slash + 1));
    if (rel === undefined) return false;
    const held = deps.repoRows.peek(name);
    // The common case, a public repository whose row is at hand, runs without a promise.
    if (held?.public) return send(req, res, held, rel, path, started);
    return (async () => {
      const repo = held ?? await deps.repoRows.get(name);
      if (
        !repo ||
        await mayDownload(deps, repo, header(req, "authorization")) !== true
      ) return false;
      return await send(req, res, repo, rel, path, started);
    })();
  };
}
