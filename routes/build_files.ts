/**
 * @module Build repositories for testers (specs/flat-manager-api.md §3.3): `/build-repo/<id>/…`
 * serves `<data>/builds/<id>/…` byte for byte, objects the build does not have from the main
 * repository through its `parent` link, and `/build-repo/<id>.flatpakrepo` a remote file for it.
 * A build that is not public needs a download token for it (API secret, §2.1).
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { join } from "node:path";
import { type Build, buildStore } from "../lib/builds/build_store.ts";
import { buildPaths } from "../lib/builds/build_disk.ts";
import type { Deps } from "../lib/deps.ts";
import type { AppEnv } from "../lib/http/env.ts";
import { fm, nativeValidationHook } from "../lib/http/errors.ts";
import {
  answerRepoFile,
  fileRequestOf,
  serveRepoFile,
} from "../lib/http/repo_file.ts";
import { downloadToken, gpgKeyValue } from "../lib/http/download_auth.ts";
import { safeRepoPath, SHORT_CACHE } from "../lib/http/repo_path.ts";
import { KeyFile } from "../lib/ostree/keyfile.ts";
import { type Repo, repoStore } from "../lib/repos/repo_store.ts";
import type { Claims } from "../lib/tokens/claims.ts";
import { TokenError } from "../lib/tokens/jwt.ts";
import {
  checkSubAndScope,
  hasTokenPrefix,
  hasTokenRepo,
} from "../lib/tokens/matching.ts";

// What the commit job writes at a build repository's root: `<app or runtime id>.flatpakref`.
const FLATPAKREF = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\.flatpakref$/;
const ID = "[0-9]{1,9}";

/** `/build-repo/<id>/<path>` and `/build-repo/<id>.flatpakrepo`. */
export function createBuildFileRoutes(deps: Deps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: nativeValidationHook });

  /**
   * The build, if the caller may download it; otherwise throws flat-manager's errors (§3.3):
   * 404 for no such build, 401 for a missing or bad token, 403 for one that does not cover it.
   */
  async function downloadableBuild(
    c: Context<AppEnv>,
    rawId: string,
  ): Promise<{ build: Build; repo: Repo | undefined }> {
    c.set("errorStyle", "flat-manager");
    const build = await buildStore.get(deps.db, Number(rawId));
    if (!build) throw fm.notFound();
    const repo = await repoStore.get(deps.db, build.repo);
    // Flatyard has private repositories, flat-manager does not: a build of one is never public,
    // as the fallback to the main repository would hand out that repository's objects.
    if (build.publicDownload && repo?.public) return { build, repo };
    // flat-manager answers a missing token with 403 "No token specified"; a 401 with a Basic
    // challenge makes ostree and flatpak send the credentials of a remote's URL instead.
    const challenge = () =>
      c.header("WWW-Authenticate", `Basic realm="flatyard build ${build.id}"`);
    const header = c.req.header("authorization");
    const token = header
      ? downloadToken(header, deps.config.tokenPrefix)
      : undefined;
    if (token === undefined || token === "invalid") {
      challenge();
      throw fm.invalidToken(
        token ? "No token value in header" : "No token specified",
      );
    }
    let claims: Claims;
    try {
      claims = await deps.tokens.verify(token, "api");
    } catch (err) {
      // Bad signature, expired, revoked: flat-manager's 401, made by onError.
      if (err instanceof TokenError) challenge();
      throw err;
    }
    // §3.3's order: the repo, then sub and scope, then the app prefix.
    if (!hasTokenRepo(claims, build.repo)) {
      throw fm.insufficient("Not matching repo in token");
    }
    const denial = checkSubAndScope(claims, `build/${build.id}`, ["download"]);
    if (denial) throw fm.insufficient(denial);
    if (build.appId !== null && !hasTokenPrefix(claims, build.appId)) {
      throw fm.insufficient("Build's app ID not matching prefix in token");
    }
    return { build, repo };
  }

  app.get(`/build-repo/:file{${ID}\\.flatpakrepo}`, async (c) => {
    const id = c.req.param("file").replace(/\.flatpakrepo$/, "");
    const { build, repo } = await downloadableBuild(c, id);
    const root = buildPaths(deps.config.dataDir, build.id).root;
    // Published and purged builds have no repository left to point at.
    if (!repo || !await isDirectory(root)) throw fm.notFound();
    const keyring = await deps.repoKeys.keyring(repo.id, "build");
    const kf = KeyFile.parse("[Flatpak Repo]\n");
    kf.set("Flatpak Repo", "Version", "1");
    kf.set(
      "Flatpak Repo",
      "Title",
      `${repo.title ?? repo.name} build ${build.id}`,
    );
    kf.set(
      "Flatpak Repo",
      "Url",
      `${deps.config.baseUrl}/build-repo/${build.id}/`,
    );
    if (keyring) kf.set("Flatpak Repo", "GPGKey", gpgKeyValue(keyring));
    return c.body(kf.toString(), 200, {
      "Content-Type": "application/vnd.flatpak.repo",
      "Cache-Control": build.publicDownload && repo.public
        ? SHORT_CACHE
        : SHORT_CACHE.replace("public", "private"),
    });
  });

  app.get(`/build-repo/:id{${ID}}/*`, async (c) => {
    const id = c.req.param("id");
    const prefix = `/build-repo/${id}/`;
    const raw = new URL(c.req.url).pathname;
    if (!raw.startsWith(prefix)) return c.text("Not found", 404);
    const rel = safeRepoPath(raw.slice(prefix.length), {
      rootFile: FLATPAKREF,
    });
    if (rel === undefined) return c.text("Not found", 404);
    const { build, repo } = await downloadableBuild(c, id);
    const root = buildPaths(deps.config.dataDir, build.id).root;
    // Only objects fall back to the main repository (flat-manager falls back for every path):
    // its summary, signatures, refs or config would describe the main repository, and a client
    // would mix them with the build's (say, the main summary.sig beside the build's summary).
    const roots = rel.startsWith("objects/")
      ? [root, join(root, "parent")]
      : [root];
    const a = answerRepoFile(roots, rel, fileRequestOf(c), {
      ...(FLATPAKREF.test(rel)
        ? { contentType: "application/vnd.flatpak.ref" }
        : {}),
      privateCache: !(build.publicDownload && repo?.public),
      rootFile: FLATPAKREF,
    });
    return a ? serveRepoFile(c, a) : c.text("Not found", 404);
  });
  return app;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
