/**
 * @module What `flatpak` and `ostree` clients fetch: `/repo/<name>.flatpakrepo` (specs/
 * ostree-repos.md §5.1) and the repository's files under `/repo/<name>/…`, byte for byte with the
 * caching classes of §0. A path is checked against the OSTree file grammar before it touches the
 * filesystem and must resolve inside the repository. (Range, conditional GET, download statistics
 * and the full private-repo rules come with the serving issue.)
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { join } from "node:path";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv, Principal } from "../lib/http/env.ts";
import { nativeValidationHook } from "../lib/http/errors.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { type Repo, repoStore } from "../lib/repos/repo_store.ts";
import { TokenError } from "../lib/tokens/jwt.ts";
import { repoUrl } from "./repos_schema.ts";

const IMMUTABLE = "public, max-age=31536000, immutable";
const SHORT = "public, max-age=300";

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
  return SHORT;
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
 * only the top-level entries clients fetch (never `tmp/`, `state/` or `.lock`).
 */
export function safeRepoPath(rest: string): string | undefined {
  if (
    rest.length === 0 || rest.length > 1024 || rest.includes("%") ||
    rest.includes("\\")
  ) return undefined;
  const segments = rest.split("/");
  if (!segments.every((s) => SEGMENT.test(s))) return undefined;
  if (!SERVED_TOP.has(segments[0]!)) return undefined;
  return segments.join("/");
}

/** The `.flatpakrepo` and file routes. */
export function createRepoFileRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  /** A download token on `/repo` is optional, but a bad one is an error (flat-manager §2.5). */
  async function downloadPrincipal(
    c: Context<AppEnv>,
  ): Promise<Principal | undefined | "invalid"> {
    const header = c.req.header("authorization");
    if (!header) return undefined;
    let token: string | undefined;
    if (header.startsWith("Bearer ")) token = header.slice(7).trim();
    else if (header.startsWith("Basic ")) {
      // flatpak puts credentials from the remote URL in basic auth: the token is the password.
      try {
        const decoded = atob(header.slice(6).trim());
        token = decoded.slice(decoded.indexOf(":") + 1);
      } catch {
        return "invalid";
      }
    }
    if (!token) return "invalid";
    try {
      return { kind: "token", claims: await deps.tokens.verify(token, "repo") };
    } catch (err) {
      if (err instanceof TokenError) return "invalid";
      throw err;
    }
  }

  async function visibleRepo(
    c: Context<AppEnv>,
    name: string,
  ): Promise<Repo | Response> {
    const repo = await repoStore.get(deps.db, name);
    if (!repo) return c.text("Not found", 404);
    if (repo.public) return repo;
    const p = await downloadPrincipal(c);
    if (p !== "invalid" && canReadRepo(p, repo)) return repo;
    c.header("WWW-Authenticate", `Basic realm="flatyard ${name}"`);
    return c.text(
      p === "invalid"
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
        set(
          "GPGKey",
          btoa(Array.from(keyring, (b) => String.fromCharCode(b)).join("")),
        );
        // A collection ID needs a GPGKey (§5.1); flatpak >= 1.12.8 reads this key.
        set("DeploySideloadCollectionID", repo.collectionId);
      }
      return c.body(kf.toString(), 200, {
        "Content-Type": "application/vnd.flatpak.repo",
        "Cache-Control": SHORT,
      });
    },
  );

  const serve = async (c: Context<AppEnv>) => {
    const name = c.req.param("name")!;
    const prefix = `/repo/${name}/`;
    const raw = new URL(c.req.url).pathname;
    if (!raw.startsWith(prefix)) return c.text("Not found", 404);
    const rel = safeRepoPath(raw.slice(prefix.length));
    if (rel === undefined) return c.text("Not found", 404);
    const repo = await visibleRepo(c, name);
    if (repo instanceof Response) return repo;
    const root = repoPaths(deps.config.dataDir).repo(repo.name);
    let real: string;
    let realRoot: string;
    try {
      [real, realRoot] = await Promise.all([
        Deno.realPath(join(root, rel)),
        Deno.realPath(root),
      ]);
    } catch {
      return c.text("Not found", 404);
    }
    // A symlink that leads outside the repository serves nothing.
    if (!real.startsWith(realRoot + "/")) return c.text("Not found", 404);
    const file = await Deno.open(real, { read: true }).catch(() => undefined);
    if (!file) return c.text("Not found", 404);
    const info = await file.stat();
    if (!info.isFile) {
      file.close();
      return c.text("Not found", 404);
    }
    const headers = {
      // Clients ignore the type; never a Content-Encoding: summaries/*.gz must reach them as is.
      "Content-Type": "application/octet-stream",
      "Content-Length": String(info.size),
      "Cache-Control": cacheControl(rel),
      ...(info.mtime ? { "Last-Modified": info.mtime.toUTCString() } : {}),
    };
    if (c.req.method === "HEAD") {
      file.close();
      return c.body(null, 200, headers);
    }
    return c.body(file.readable, 200, headers);
  };
  app.get("/repo/:name{[A-Za-z0-9][A-Za-z0-9._-]{0,63}}/*", serve);
  return app;
}
