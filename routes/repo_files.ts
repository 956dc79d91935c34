/**
 * @module What `flatpak` and `ostree` clients fetch: `/repo/<name>.flatpakrepo` (specs/
 * ostree-repos.md §5.1) and the repository's files under `/repo/<name>/…`, byte for byte with the
 * caching classes of §0. A path is checked against the OSTree file grammar before it touches the
 * filesystem and must resolve inside the repository; files come with ETag/Last-Modified,
 * conditional GET and single Range (all in lib/http/repo_file.ts). Retired deltas stay
 * reachable for their hour of grace, and every GET served (200/206) is told to the download
 * statistics observer.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { join } from "node:path";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { nativeValidationHook } from "../lib/http/errors.ts";
import {
  downloadPrincipal,
  gpgKeyValue,
  safeRepoPath,
  serveRepoFile,
  SHORT_CACHE,
} from "../lib/http/repo_file.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { type Repo, repoStore } from "../lib/repos/repo_store.ts";
import { repoUrl } from "./repos_schema.ts";

/** How long a repository row is reused for file requests. */
const REPO_TTL_MS = 1000;

/** The `.flatpakrepo` and file routes. */
export function createRepoFileRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  // Repository rows for file requests, kept for REPO_TTL_MS: a pull makes hundreds of
  // requests, and a database round trip per file costs more than serving the file
  // (bench/serve.ts). A change of visibility or a deletion takes effect within that time.
  const rows = new Map<string, { repo: Repo; until: number }>();
  async function cachedRepo(name: string): Promise<Repo | undefined> {
    const now = performance.now();
    const hit = rows.get(name);
    if (hit && hit.until > now) return hit.repo;
    const repo = await repoStore.get(deps.db, name);
    // Only repositories that exist are kept: a new one is served at once.
    if (repo) rows.set(name, { repo, until: now + REPO_TTL_MS });
    else rows.delete(name);
    return repo;
  }

  async function visibleRepo(
    c: Context<AppEnv>,
    name: string,
    cached = false,
  ): Promise<Repo | Response> {
    const repo = cached
      ? await cachedRepo(name)
      : await repoStore.get(deps.db, name);
    if (!repo) return c.text("Not found", 404);
    if (repo.public) return repo;
    const p = await downloadPrincipal(
      c.req.header("authorization"),
      deps.tokens,
      deps.config.tokenPrefix,
    );
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

  const serve = async (c: Context<AppEnv>) => {
    const name = c.req.param("name")!;
    const prefix = `/repo/${name}/`;
    const raw = new URL(c.req.url).pathname;
    if (!raw.startsWith(prefix)) return c.text("Not found", 404);
    const rel = safeRepoPath(raw.slice(prefix.length));
    if (rel === undefined) return c.text("Not found", 404);
    const repo = await visibleRepo(c, name, true);
    if (repo instanceof Response) return repo;
    const dir = repoPaths(deps.config.dataDir).repo(repo.name);
    // update-repo moves replaced deltas to tmp/deltas/<same path> for an hour
    // (lib/builds/deltas.ts): a client that read the old delta index can still finish its pull.
    const roots = rel.startsWith("deltas/") ? [dir, join(dir, "tmp")] : [dir];
    const res = serveRepoFile(
      c,
      roots,
      rel,
      // A private repository's files need credentials: no shared cache may keep them.
      { privateCache: !repo.public },
    );
    if (
      c.req.method === "GET" && (res.status === 200 || res.status === 206)
    ) {
      try {
        deps.downloads?.observe(repo.name, rel, c.req.raw.headers);
      } catch (err) {
        // Statistics must never cost a client its download.
        deps.logger.warn("Download observer failed", {
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    return res;
  };
  app.get("/repo/:name{[A-Za-z0-9][A-Za-z0-9._-]{0,63}}/*", serve);
  return app;
}
