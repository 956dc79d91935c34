/**
 * @module What `flatpak` and `ostree` clients fetch: `/repo/<name>.flatpakrepo` (specs/
 * ostree-repos.md §5.1) and the repository's files under `/repo/<name>/…`, byte for byte with the
 * caching classes of §0. A path is checked against the OSTree file grammar before it touches the
 * filesystem and must resolve inside the repository (both in lib/http/repo_file.ts). (Range, conditional GET, download statistics
 * and the full private-repo rules come with the serving issue.)
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv, Principal } from "../lib/http/env.ts";
import { nativeValidationHook } from "../lib/http/errors.ts";
import {
  downloadToken,
  gpgKeyValue,
  safeRepoPath,
  serveRepoFile,
  SHORT_CACHE,
} from "../lib/http/repo_file.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { canReadRepo } from "../lib/repos/access.ts";
import { repoPaths } from "../lib/repos/repo_disk.ts";
import { type Repo, repoStore } from "../lib/repos/repo_store.ts";
import { TokenError } from "../lib/tokens/jwt.ts";
import { repoUrl } from "./repos_schema.ts";

/** The `.flatpakrepo` and file routes. */
export function createRepoFileRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  /** A download token on `/repo` is optional, but a bad one is an error (flat-manager §2.5). */
  async function downloadPrincipal(
    c: Context<AppEnv>,
  ): Promise<Principal | undefined | "invalid"> {
    const header = c.req.header("authorization");
    if (!header) return undefined;
    const token = downloadToken(header, deps.config.tokenPrefix);
    if (token === "invalid") return "invalid";
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
    const repo = await visibleRepo(c, name);
    if (repo instanceof Response) return repo;
    return serveRepoFile(
      c,
      [repoPaths(deps.config.dataDir).repo(repo.name)],
      rel,
      // A private repository's files need credentials: no shared cache may keep them.
      { privateCache: !repo.public },
    );
  };
  app.get("/repo/:name{[A-Za-z0-9][A-Za-z0-9._-]{0,63}}/*", serve);
  return app;
}
